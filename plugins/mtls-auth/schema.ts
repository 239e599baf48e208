export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    forwardSubject: {
      anyOf: [{ type: 'boolean', const: false }, { type: 'string', pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" }],
      default: false,
      description: 'A request header that carries the verified certificate subject (CN) upstream, or false. Whatever the client sent under that name is removed'
    }
  }
} as const

export interface MtlsAuthConfig {
  forwardSubject: false | string
}

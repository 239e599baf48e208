const headerName = { type: 'string', pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" } as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    headers: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: headerName,
      default: ['apikey', 'x-api-key'],
      description: 'Request headers that may carry the key'
    },
    query: { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,64}$', description: 'A query parameter that may carry the key (off unless set)' },
    hideCredentials: { type: 'boolean', default: true, description: 'Remove the key from the request before it goes upstream' },
    realm: { type: 'string', pattern: '^[\\x20\\x21\\x23-\\x5B\\x5D-\\x7E]{1,64}$', default: 'tollgate', description: 'realm of the WWW-Authenticate challenge' }
  }
} as const

export interface KeyAuthConfig {
  headers: string[]
  query?: string
  hideCredentials: boolean
  realm: string
}

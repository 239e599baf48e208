export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    header: { type: 'string', pattern: '^[A-Za-z0-9-]+$', default: 'x-request-id', description: 'Header that carries the id, both ways' },
    trustIncoming: { type: 'boolean', default: true, description: "Keep a client's id when it is well-formed; otherwise always make a new one" },
    echo: { type: 'boolean', default: true, description: 'Send the id back in the response' }
  }
} as const

export interface RequestIdConfig { header: string, trustIncoming: boolean, echo: boolean }

import { methodsSchema } from '../../src/auth/per-method.js'

const scope = { type: 'string', pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,128}$' } as const
const scopes = { type: 'array', minItems: 1, uniqueItems: true, items: scope } as const

const rule = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    anyOf: { ...scopes, description: 'The consumer needs at least one of these scopes' },
    allOf: { ...scopes, description: 'The consumer needs every one of these scopes' }
  }
} as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...rule.properties,
    methods: methodsSchema(rule),
    realm: { type: 'string', pattern: '^[\\x20\\x21\\x23-\\x5B\\x5D-\\x7E]{1,64}$', default: 'tollgate', description: 'realm of the WWW-Authenticate challenge' }
  }
} as const

export interface ScopeRule { anyOf?: string[], allOf?: string[] }
export interface ScopesConfig extends ScopeRule { methods?: Record<string, ScopeRule>, realm: string }

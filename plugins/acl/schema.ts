import { methodsSchema } from '../../src/auth/per-method.js'

const group = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$' } as const
const groups = { type: 'array', minItems: 1, uniqueItems: true, items: group } as const

const rule = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    allow: { ...groups, description: 'The consumer must be in one of these groups' },
    deny: { ...groups, description: 'A consumer in any of these groups is refused (deny wins)' }
  }
} as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...rule.properties,
    methods: methodsSchema(rule)
  }
} as const

export interface AclRule { allow?: string[], deny?: string[] }
export interface AclConfig extends AclRule { methods?: Record<string, AclRule> }

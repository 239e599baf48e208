/**
 * The config of the require-header example. Defaults live here, not in code: ajv fills them
 * in before create() runs, so create() always sees a complete config. Unknown properties are
 * errors, so a typo such as `alow` stops the gateway at startup instead of silently letting
 * every value through.
 */
export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    header: {
      type: 'string',
      pattern: '^[A-Za-z0-9-]+$',
      default: 'x-tenant',
      description: 'The request header that must be present (any case)'
    },
    pattern: {
      type: 'string',
      minLength: 1,
      format: 'regex',
      description: 'A JavaScript regular expression (u flag) the whole value must match; it is anchored for you'
    },
    allow: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string', minLength: 1 },
      description: 'The only values let through (exact, case-sensitive); others get 403'
    },
    maxLength: {
      type: 'integer',
      minimum: 1,
      maximum: 8192,
      default: 256,
      description: 'Longer values are malformed (400) without running the pattern'
    },
    forward: {
      type: 'boolean',
      default: true,
      description: 'Send the header upstream, exactly as checked; false removes it'
    },
    enforce: {
      type: 'boolean',
      default: true,
      description: 'false is shadow mode: log what would be denied, and let it through'
    }
  }
} as const

/** The config as create() receives it: validated, defaults filled in. */
export interface RequireHeaderConfig {
  header: string
  pattern?: string
  allow?: string[]
  maxLength: number
  forward: boolean
  enforce: boolean
}

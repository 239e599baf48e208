const methodName = { type: 'string', pattern: '^[A-Z]{1,20}$' } as const
/** A JSON Schema for one part of the request; checked for real when create() compiles it. */
const requestSchema = { type: 'object' } as const
/** `type/subtype`, `type/*`, `type/*+suffix` or `*\/*`, as RFC 9110 tokens. */
const mediaRange = { type: 'string', pattern: "^(\\*/\\*|[A-Za-z0-9!#$%&'+.^_`|~-]+/(\\*|\\*\\+[A-Za-z0-9!#$%&'+.^_`|~-]+|[A-Za-z0-9!#$%&'*+.^_`|~-]+))$" } as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    body: { ...requestSchema, description: 'JSON Schema for the JSON request body; a body must then be JSON (see contentTypes)' },
    query: { ...requestSchema, description: 'JSON Schema for the query string as an object (a repeated name is an array); types coerced' },
    params: { ...requestSchema, description: "JSON Schema for the route pattern's :name segments as an object; types coerced" },
    headers: { ...requestSchema, description: 'JSON Schema for the request headers as an object with lower-case names; types coerced' },
    openapi: {
      type: 'object',
      additionalProperties: false,
      required: ['file'],
      properties: {
        file: { type: 'string', minLength: 1, description: 'An OpenAPI 3.0 or 3.1 document, YAML or JSON (relative to the config file)' },
        operationId: { type: 'string', minLength: 1, description: 'The operation whose schemas apply' },
        path: { type: 'string', pattern: '^/', description: 'Or: the path template as the document writes it (/orders/{id})...' },
        method: { type: 'string', pattern: '^[A-Za-z]{1,20}$', description: '...and the method' }
      },
      description: "Take the schemas from one operation of an OpenAPI document (instead of body/query/params/headers)"
    },
    draft: { type: 'string', enum: ['07', '2020-12'], default: '07', description: 'JSON Schema dialect of the inline schemas' },
    contentTypes: {
      type: 'array',
      minItems: 1,
      maxItems: 32,
      uniqueItems: true,
      items: mediaRange,
      default: ['application/json', 'application/*+json'],
      description: 'Media types a body may be sent as when a body schema is set (415 otherwise); a charset other than utf-8 is refused'
    },
    bodyRequired: {
      type: 'array',
      uniqueItems: true,
      items: methodName,
      default: ['POST', 'PUT', 'PATCH'],
      description: 'Methods whose requests must carry a body when a body schema is set (other methods may, and it is then checked)'
    },
    maxBodySize: { type: 'integer', minimum: 2, maximum: 67108864, default: 1048576, description: 'Bytes of body read for validation; a larger body is refused with 413' },
    maxDepth: { type: 'integer', minimum: 1, maximum: 1000, default: 32, description: 'Nesting of arrays and objects in the body, refused before parsing' },
    maxElements: { type: 'integer', minimum: 1, maximum: 10000000, default: 10000, description: 'Members of any one array or object in the body, refused before parsing' },
    rejectDuplicateKeys: { type: 'boolean', default: true, description: 'Refuse a body object that names a key twice (parsers disagree on which one wins)' },
    rejectProtoKeys: { type: 'boolean', default: true, description: "Refuse '__proto__' keys, and 'prototype' keys in a 'constructor' object, anywhere in the body" },
    allErrors: { type: 'boolean', default: false, description: 'Report every violation, not just the first (costs more on large bodies)' },
    maxErrors: { type: 'integer', minimum: 1, maximum: 100, default: 10, description: 'Violations listed in the 400 answer, at most' },
    exposeErrors: { type: 'boolean', default: true, description: 'List the violations (pointer and message) in the 400 answer; false: only the reason code' },
    regExpEngine: { type: 'string', enum: ['linear', 'native'], default: 'linear', description: "'linear': patterns run in time linear in the input (no lookaround or backreferences); 'native': V8's backtracking engine" },
    enforce: { type: 'boolean', default: true, description: 'false: shadow mode, violations are logged and the request goes on' }
  }
} as const

export type Draft = '07' | '2020-12'
type JsonSchema = Record<string, unknown>

export interface RequestValidatorConfig {
  body?: JsonSchema
  query?: JsonSchema
  params?: JsonSchema
  headers?: JsonSchema
  openapi?: { file: string, operationId?: string, path?: string, method?: string }
  draft: Draft
  contentTypes: string[]
  bodyRequired: string[]
  maxBodySize: number
  maxDepth: number
  maxElements: number
  rejectDuplicateKeys: boolean
  rejectProtoKeys: boolean
  allErrors: boolean
  maxErrors: number
  exposeErrors: boolean
  regExpEngine: 'linear' | 'native'
  enforce: boolean
}

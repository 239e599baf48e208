export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    destination: { type: 'string', minLength: 1, default: 'stdout', description: "'stdout', 'stderr', or a file path (relative to the config file)" },
    headers: {
      type: 'array',
      items: { type: 'string', pattern: '^[A-Za-z0-9-]+$' },
      default: [],
      description: 'Request headers to include in each line'
    },
    redact: {
      type: 'array',
      items: { type: 'string', pattern: '^[A-Za-z0-9-]+$' },
      default: [],
      description: 'More header names whose values are replaced by [redacted] (Authorization, Cookie and API-key headers always are)'
    },
    query: { type: 'boolean', default: false, description: 'Log the query parameters (credential parameters of key-auth and jwt-auth, and those in redactQuery, as [redacted])' },
    redactQuery: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 128 },
      default: [],
      description: 'More query parameter names (decoded) whose values are replaced by [redacted]'
    },
    redactFields: {
      type: 'array',
      items: { type: 'string', pattern: '^[A-Za-z_$][A-Za-z0-9_$]*(\\.[A-Za-z_$][A-Za-z0-9_$]*)*$' },
      default: [],
      description: 'Fields of the line to replace by [redacted] (pino redact paths: consumer, client, path ...)'
    },
    sampleRate: { type: 'number', minimum: 0, maximum: 1, default: 1, description: 'Share of successful (< 400) requests logged; denials, errors and aborted requests are always logged' }
  }
} as const

export interface AccessLogConfig {
  destination: string
  headers: string[]
  redact: string[]
  query: boolean
  redactQuery: string[]
  redactFields: string[]
  sampleRate: number
}

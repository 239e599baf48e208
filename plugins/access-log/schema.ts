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
    }
  }
} as const

export interface AccessLogConfig { destination: string, headers: string[], redact: string[] }

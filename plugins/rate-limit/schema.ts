import { positiveDuration as duration } from '../../src/schema-parts.js'

const key = {
  type: 'string',
  pattern: '^(ip|consumer|route|header:[A-Za-z0-9-]+)$',
  description: 'ip, consumer, route, or header:NAME'
} as const

const limit = {
  type: 'object',
  additionalProperties: false,
  required: ['limit', 'window'],
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000000, description: 'Requests admitted per window' },
    window: { ...duration, description: 'Window length: 1s, 60s, 1h ... (number: milliseconds)' },
    algorithm: { type: 'string', enum: ['fixed-window', 'sliding-window', 'gcra'], default: 'sliding-window' },
    burst: { type: 'integer', minimum: 1, maximum: 1000000, description: 'gcra only: requests admitted at once (default: limit)' },
    name: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,32}$', description: 'Name in the RateLimit-Policy header' }
  }
} as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['limits'],
  properties: {
    limits: { type: 'array', minItems: 1, maxItems: 8, items: limit, description: 'Every limit must admit the request (10/s and 1000/h)' },
    key: {
      anyOf: [key, { type: 'array', minItems: 1, maxItems: 4, uniqueItems: true, items: key }],
      default: 'ip',
      description: 'What is counted: one key, or a combination'
    },
    id: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$', description: 'Stable policy id; counters are kept across reloads while the id and the limits stay the same. Default: derived from the route and the limits' },
    headers: { type: 'boolean', default: true, description: 'Send RateLimit-Policy / RateLimit and RateLimit-Limit/-Remaining/-Reset' },
    whenFull: { type: 'string', enum: ['deny', 'allow'], default: 'deny', description: 'When the counter table has no room for a new key: deny (429) or allow and log' },
    status: { type: 'integer', enum: [429, 503], default: 429 }
  }
} as const

export interface LimitSpec { limit: number, window: number | string, algorithm: 'fixed-window' | 'sliding-window' | 'gcra', burst?: number, name?: string }

export interface RateLimitConfig {
  limits: LimitSpec[]
  key: string | string[]
  id?: string
  headers: boolean
  whenFull: 'deny' | 'allow'
  status: number
}

import { positiveDuration as duration } from '../../src/schema-parts.js'

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    threshold: { type: 'integer', minimum: 1, maximum: 100000, default: 20, description: 'Bad responses to one client address within the window that block it (the one that reaches it blocks)' },
    window: { ...duration, default: '60s', description: 'Sliding window the bad responses are counted in: 10s, 1m, 1h ... (number: ms)' },
    blockFor: { ...duration, default: '15m', description: 'How long a block lasts' },
    statuses: {
      type: 'array',
      minItems: 1,
      maxItems: 6,
      uniqueItems: true,
      items: { type: 'integer', minimum: 400, maximum: 599 },
      default: [400, 401, 403, 429],
      description: 'Response statuses that count as bad (whoever answered them: a plugin, the gateway or the upstream)'
    },
    allow: { type: 'array', items: { type: 'string', minLength: 1 }, default: [], description: 'CIDRs never counted nor blocked (monitoring, your own offices)' },
    status: { type: 'integer', enum: [403, 429], default: 403, description: 'Status of the answer to a blocked client' },
    id: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$', description: 'Stable id of the strike counters (default: the route, or * for a global entry)' }
  }
} as const

export interface ThreatGuardConfig {
  threshold: number
  window: number | string
  blockFor: number | string
  statuses: number[]
  allow: string[]
  status: number
  id?: string
}

/** What prepare() hands to every worker: the allow list's set id in the shared IP table (-1: none). */
export interface ThreatGuardPrepared { allow: number }

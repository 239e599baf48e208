import { positiveDuration as duration } from '../schema-parts.js'

/**
 * The `cluster` block of the gateway config: many tollgate instances sharing rate-limit
 * counters, policy versions and the auto-block list through Redis. Added to the gateway
 * schema under the top-level key `cluster`; absent means a single instance (no Redis).
 */

export const clusterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['redis'],
  properties: {
    redis: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      description: 'redis://[user:pass@]host:port[/db], rediss:// (TLS), redis+cluster://h1:p1,h2:p2 (Redis Cluster), redis+sentinel://h1:p1,h2:p2/master[/db] (Sentinel)'
    },
    prefix: { type: 'string', pattern: '^[A-Za-z0-9:._-]{1,64}$', default: 'tollgate:', description: 'Prefix of every Redis key and channel; instances with the same prefix form one fleet' },
    mode: { type: 'string', enum: ['strict', 'fast'], default: 'strict', description: 'strict: each rate-limit decision is one atomic script on Redis (exact); fast: local counters decide, synchronised every syncInterval (bounded over-admission)' },
    onRedisDown: { type: 'string', enum: ['allow', 'deny'], default: 'deny', description: 'When Redis cannot answer within timeout: allow (fail open) or deny (503 GW_RATE_LIMIT_UNAVAILABLE)' },
    timeout: { ...duration, default: 50, description: 'Longest wait for a Redis answer on the request path (1ms to 10s)' },
    syncInterval: { ...duration, default: 100, description: 'fast mode: how often local counts are exchanged with Redis (10ms to 10s)' },
    instanceId: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$', description: 'This instance in status keys and logs; default: host name, pid and port' }
  }
} as const

/** The validated `cluster` block, durations in ms. */
export interface ClusterConfig {
  redis: string
  prefix: string
  mode: 'strict' | 'fast'
  onRedisDown: 'allow' | 'deny'
  timeout: number
  syncInterval: number
  instanceId?: string
}

/** Config keys that belong to one instance: never distributed to the fleet, kept on apply. */
export const INSTANCE_KEYS = ['listen', 'workers', 'admin', 'cluster', 'counters', 'logLevel'] as const

export const TIMEOUT_RANGE = { min: 1, max: 10_000 } as const
export const SYNC_RANGE = { min: 10, max: 10_000 } as const

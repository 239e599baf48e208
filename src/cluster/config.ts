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
    instanceId: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$', description: 'This instance in status keys and logs; default: host name, pid and port' },
    tls: {
      type: 'object',
      additionalProperties: false,
      description: 'TLS to Redis (rediss:// URLs only): the CA to verify it against and, for mutual TLS, a client certificate. Paths are relative to the config file.',
      properties: {
        ca: { type: 'string', minLength: 1, maxLength: 4096, description: "PEM file of the CA certificate(s) Redis's certificate must chain to (default: the system store)" },
        cert: { type: 'string', minLength: 1, maxLength: 4096, description: 'PEM file of the client certificate (with key), when Redis asks for one (tls-auth-clients)' },
        key: { type: 'string', minLength: 1, maxLength: 4096, description: "PEM file of the client certificate's private key" },
        servername: { type: 'string', minLength: 1, maxLength: 253, description: "The name Redis's certificate must carry (and SNI), when it is not the URL's host" }
      }
    }
  }
} as const

/** The `cluster.tls` block: absolute paths once the config is checked (src/config.ts). */
export interface ClusterTlsConfig {
  ca?: string
  cert?: string
  key?: string
  servername?: string
}

/** The validated `cluster` block, durations in ms. */
export interface ClusterConfig {
  redis: string
  prefix: string
  mode: 'strict' | 'fast'
  onRedisDown: 'allow' | 'deny'
  timeout: number
  syncInterval: number
  instanceId?: string
  tls?: ClusterTlsConfig
}

/** Config keys that belong to one instance: never distributed to the fleet, kept on apply. */
export const INSTANCE_KEYS = ['listen', 'workers', 'admin', 'cluster', 'counters', 'logLevel'] as const

export const TIMEOUT_RANGE = { min: 1, max: 10_000 } as const
export const SYNC_RANGE = { min: 10, max: 10_000 } as const

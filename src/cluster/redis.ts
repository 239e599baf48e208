import { Cluster, Redis } from 'ioredis'
import type { ClusterConfig } from './config.js'
import { parseRedisUrl } from './redis-url.js'
import { clusterTlsOptions } from './tls.js'

/** A standalone/Sentinel connection or a Redis Cluster: both take the same commands. */
export type RedisClient = Redis | Cluster

export interface ConnectOptions {
  /** Request-path connections: fail at once while disconnected (onRedisDown decides). */
  failFast: boolean
  /** A subscriber connection: no command timeout (it waits for messages). */
  subscriber?: boolean
  connectionName?: string
  /** ioredis auto-pipelining (default: on for request-path connections; see worker-link.ts). */
  autoPipelining?: boolean
}

/**
 * Reconnect forever, quickly at first and then once a second: an instance must come back by
 * itself when Redis does (no gateway restart), and a second is the longest a recovered Redis
 * goes unused.
 */
function retry (times: number): number {
  return Math.min(times * 50, 1000)
}

/**
 * A Redis connection for the cluster config. Commands never wait in an offline queue when
 * `failFast` (a limit must answer within `timeout`, not when Redis comes back), and every
 * command is bounded by `timeout` (ioredis `commandTimeout`) except on subscribers.
 */
export function connectRedis (cfg: ClusterConfig, opts: ConnectOptions): RedisClient {
  const target = parseRedisUrl(cfg.redis)
  // cluster.tls (a CA, a client certificate): only with a TLS URL (the config check says so).
  const tls = clusterTlsOptions(cfg.tls)
  const common = {
    enableOfflineQueue: !opts.failFast,
    maxRetriesPerRequest: opts.failFast ? 0 : 1,
    commandTimeout: opts.subscriber === true ? undefined : Math.max(cfg.timeout, opts.failFast ? 0 : 1000),
    connectTimeout: Math.max(1000, cfg.timeout * 4),
    connectionName: opts.connectionName,
    // The latency of a strict decision is one round trip; Nagle's algorithm would add to it.
    noDelay: true,
    retryStrategy: retry,
    autoResubscribe: true,
    // Commands issued in the same tick go out in one write: many requests, one syscall.
    enableAutoPipelining: opts.autoPipelining ?? (opts.failFast && opts.subscriber !== true),
    lazyConnect: false
  }
  if (target.kind === 'cluster') {
    return new Cluster(target.nodes, {
      enableOfflineQueue: common.enableOfflineQueue,
      enableAutoPipelining: common.enableAutoPipelining,
      clusterRetryStrategy: retry,
      redisOptions: {
        username: target.username,
        password: target.password,
        tls: target.tls ? tls : undefined,
        connectTimeout: common.connectTimeout,
        commandTimeout: common.commandTimeout,
        maxRetriesPerRequest: common.maxRetriesPerRequest,
        noDelay: true,
        connectionName: common.connectionName
      }
    })
  }
  if (target.kind === 'sentinel') {
    return new Redis({
      ...common,
      sentinels: target.sentinels,
      name: target.name,
      db: target.db,
      username: target.username,
      password: target.password,
      // rediss+sentinel://: TLS to the sentinels and to the master they name, same settings.
      tls: target.tls ? tls : undefined,
      enableTLSForSentinelMode: target.tls,
      sentinelTLS: target.tls ? tls : undefined
    })
  }
  // rediss://: ioredis turns TLS on from the scheme; these are its settings.
  return new Redis(target.url, /^rediss:/.test(target.url) ? { ...common, tls } : common)
}

/** Close without waiting for a Redis that may be gone. */
export function closeRedis (c: RedisClient): void {
  c.disconnect()
}

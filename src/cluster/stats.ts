import { isMainThread } from 'node:worker_threads'
import { openChannel } from './channel.js'

/**
 * The cluster's counters, metric-ready: monotonic counts (Prometheus counters) plus a few
 * gauges. Worker threads count locally and send their counts to the acceptor once a second;
 * `clusterStats()` in the acceptor is the whole process's view (at most a second behind).
 */
export interface ClusterCounts {
  /** Redis calls that failed or did not answer within cluster.timeout. */
  redisErrors: number
  /** Strict decisions answered by Redis. */
  strictDecisions: number
  /** Requests let through because Redis was down (onRedisDown: allow). */
  redisDownAllowed: number
  /** Requests refused with 503 because Redis was down (onRedisDown: deny). */
  redisDownDenied: number
  /** fast mode: counters synchronised with Redis, and remote admits counted in locally. */
  fastSyncs: number
  fastRemoteHits: number
  /** Policy versions this instance stored in Redis, applied from Redis, refused. */
  policyPublished: number
  policyApplied: number
  policyRefused: number
  /** Auto-block entries published by this instance and received from the fleet. */
  blocksPublished: number
  blocksReceived: number
  /** Block lifts this instance announced (admin API) and received from the fleet. */
  unblocksPublished: number
  unblocksReceived: number
}

export interface ClusterStats extends ClusterCounts {
  enabled: boolean
  instanceId: string | undefined
  mode: 'strict' | 'fast' | undefined
  /** 1 while the acceptor's Redis connection is ready. */
  redisUp: number
  /** The fleet policy version this instance runs (0: none yet). */
  policyVersion: number
}

function zero (): ClusterCounts {
  return { redisErrors: 0, strictDecisions: 0, redisDownAllowed: 0, redisDownDenied: 0, fastSyncs: 0, fastRemoteHits: 0, policyPublished: 0, policyApplied: 0, policyRefused: 0, blocksPublished: 0, blocksReceived: 0, unblocksPublished: 0, unblocksReceived: 0 }
}

let pending = zero()
let reporter: ReturnType<typeof setInterval> | undefined
const totals = zero()
const gauges: Omit<ClusterStats, keyof ClusterCounts> = { enabled: false, instanceId: undefined, mode: undefined, redisUp: 0, policyVersion: 0 }

/** Count an event in this thread. */
export function countCluster (name: keyof ClusterCounts, n = 1): void {
  if (isMainThread) {
    totals[name] += n
    return
  }
  pending[name] += n
  // Workers send their counts to the acceptor once a second, only while there are any.
  reporter ??= setInterval(flushWorkerCounts, 1000).unref()
}

let workerChannel: ReturnType<typeof openChannel> | undefined

function flushWorkerCounts (): void {
  const counts: Record<string, number> = {}
  let any = false
  for (const [k, v] of Object.entries(pending)) if (v !== 0) { counts[k] = v; any = true }
  if (!any) return
  pending = zero()
  workerChannel ??= openChannel()
  workerChannel.postMessage({ type: 'stats', counts })
}

/** Acceptor: add a worker's counts. */
export function addWorkerCounts (counts: Record<string, number>): void {
  for (const [k, v] of Object.entries(counts)) {
    if (k in totals && typeof v === 'number') totals[k as keyof ClusterCounts] += v
  }
}

/** Acceptor: set the gauges. */
export function setClusterGauges (g: Partial<typeof gauges>): void {
  Object.assign(gauges, g)
}

/**
 * The cluster counters of this process (call it in the acceptor, e.g. from /metrics):
 * counts since start and the current gauges. `enabled: false` without a cluster block.
 */
export function clusterStats (): ClusterStats {
  return { ...gauges, ...totals }
}

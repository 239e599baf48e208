import { toMs } from '../duration.js'

type Duration = number | string

/** A route's `upstream` as written: a URL, or a block of targets and policies. */
export type UpstreamConfig = string | {
  targets: Array<string | { url: string, weight?: number }>
  balance?: Balance
  hashOn?: string
  connections?: number
  bufferBody?: number
  healthCheck?: { path: string, interval?: Duration, timeout?: Duration, healthyThreshold?: number, unhealthyThreshold?: number, statuses?: number[] }
  passive?: { consecutiveFailures?: number, baseEjectionTime?: Duration, maxEjectionTime?: Duration, maxEjectionPercent?: number }
  retries?: { attempts?: number, backoff?: Duration, maxBackoff?: Duration, statuses?: number[], budgetPercent?: number, minRetryConcurrency?: number }
  breaker?: { maxConnections?: number, maxPending?: number, maxRequests?: number }
  tls?: { ca?: string, servername?: string, insecureSkipVerify?: boolean }
}

export type Balance = 'round-robin' | 'least-request' | 'consistent-hash'
export type HashOn = { kind: 'ip' } | { kind: 'consumer' } | { kind: 'header', name: string }

export interface HealthCheckSpec {
  path: string
  interval: number
  timeout: number
  healthyThreshold: number
  unhealthyThreshold: number
  /** Healthy statuses; empty: any 2xx. */
  statuses: readonly number[]
}

export interface PassiveSpec {
  /** 0: off. */
  consecutiveFailures: number
  baseEjectionTime: number
  maxEjectionTime: number
  maxEjectionPercent: number
}

export interface RetrySpec {
  attempts: number
  backoff: number
  maxBackoff: number
  statuses: ReadonlySet<number>
  budgetPercent: number
  minRetryConcurrency: number
}

export interface BreakerSpec { maxConnections: number, maxPending: number, maxRequests: number }

/** An upstream with every default filled in: what workers and the acceptor build from. */
export interface UpstreamSpec {
  targets: ReadonlyArray<{ url: string, weight: number }>
  balance: Balance
  hashOn: HashOn
  connections: number
  bufferBody: number
  healthCheck: HealthCheckSpec | undefined
  passive: PassiveSpec
  retries: RetrySpec
  breaker: BreakerSpec
}

/**
 * Defaults. Passive ejection follows Envoy's outlier detection (consecutive_5xx 5,
 * base_ejection_time 30 s, max_ejection_time 300 s, max_ejection_percent 10); the breaker
 * Envoy's circuit-breaker thresholds (1024 each); the retry budget Envoy's (20 %, at least
 * 3 in flight) with its backoff (25 ms base, 250 ms cap). Two retries, not undici's five: a
 * gateway multiplies every retry by its whole traffic.
 */
export const UPSTREAM_DEFAULTS = Object.freeze({
  connections: 128,
  bufferBody: 65536,
  healthCheck: { interval: 5000, timeout: 2000, healthyThreshold: 2, unhealthyThreshold: 3 },
  passive: { consecutiveFailures: 5, baseEjectionTime: 30_000, maxEjectionTime: 300_000, maxEjectionPercent: 10 },
  retries: { attempts: 2, backoff: 25, maxBackoff: 250, statuses: [502, 503, 504], budgetPercent: 20, minRetryConcurrency: 3 },
  breaker: { maxConnections: 1024, maxPending: 1024, maxRequests: 1024 }
})

function parseHashOn (v: string | undefined): HashOn {
  if (v === undefined || v === 'ip') return { kind: 'ip' }
  if (v === 'consumer') return { kind: 'consumer' }
  return { kind: 'header', name: v.slice('header:'.length).toLowerCase() }
}

/** The upstream block with defaults and durations in ms. The schema has checked its shape. */
export function upstreamSpec (u: UpstreamConfig): UpstreamSpec {
  if (typeof u !== 'string') return specOf(u)
  // A bare URL (most routes) always gives the same spec: every worker builds one per route
  // per policy update, so it is made once per thread.
  let spec = bareSpecs.get(u)
  if (spec === undefined) {
    if (bareSpecs.size >= BARE_SPECS_KEPT) bareSpecs.clear()
    spec = specOf(u)
    bareSpecs.set(u, spec)
  }
  return spec
}

const bareSpecs = new Map<string, UpstreamSpec>()
const BARE_SPECS_KEPT = 10_000

function specOf (u: UpstreamConfig): UpstreamSpec {
  const block = typeof u === 'string' ? { targets: [u] } : u
  const d = UPSTREAM_DEFAULTS
  const hc = block.healthCheck
  const p = block.passive ?? {}
  const r = block.retries ?? {}
  const b = block.breaker ?? {}
  return {
    targets: block.targets.map((t) => (typeof t === 'string' ? { url: t, weight: 1 } : { url: t.url, weight: t.weight ?? 1 })),
    balance: block.balance ?? 'round-robin',
    hashOn: parseHashOn(block.hashOn),
    connections: block.connections ?? d.connections,
    bufferBody: block.bufferBody ?? d.bufferBody,
    healthCheck: hc === undefined
      ? undefined
      : {
          path: hc.path,
          interval: Math.max(100, toMs(hc.interval ?? d.healthCheck.interval)),
          timeout: Math.max(1, toMs(hc.timeout ?? d.healthCheck.timeout)),
          healthyThreshold: hc.healthyThreshold ?? d.healthCheck.healthyThreshold,
          unhealthyThreshold: hc.unhealthyThreshold ?? d.healthCheck.unhealthyThreshold,
          statuses: hc.statuses ?? []
        },
    passive: {
      consecutiveFailures: p.consecutiveFailures ?? d.passive.consecutiveFailures,
      baseEjectionTime: toMs(p.baseEjectionTime ?? d.passive.baseEjectionTime),
      maxEjectionTime: toMs(p.maxEjectionTime ?? d.passive.maxEjectionTime),
      maxEjectionPercent: p.maxEjectionPercent ?? d.passive.maxEjectionPercent
    },
    retries: {
      attempts: r.attempts ?? d.retries.attempts,
      backoff: toMs(r.backoff ?? d.retries.backoff),
      maxBackoff: toMs(r.maxBackoff ?? d.retries.maxBackoff),
      statuses: new Set(r.statuses ?? d.retries.statuses),
      budgetPercent: r.budgetPercent ?? d.retries.budgetPercent,
      minRetryConcurrency: r.minRetryConcurrency ?? d.retries.minRetryConcurrency
    },
    breaker: {
      maxConnections: b.maxConnections ?? d.breaker.maxConnections,
      maxPending: b.maxPending ?? d.breaker.maxPending,
      maxRequests: b.maxRequests ?? d.breaker.maxRequests
    }
  }
}

/**
 * What identifies an upstream's shared state (health, ejections, in-flight counts): its
 * target URLs, in order, and its health check. A policy update that keeps these keeps the
 * state; weights, retries and breaker limits can change without losing it.
 */
export function upstreamKey (spec: UpstreamSpec): string {
  return JSON.stringify([spec.targets.map((t) => t.url), spec.healthCheck ?? null])
}

/** Cross-field checks the schema cannot express, as `/path: reason` lines. */
export function checkUpstream (u: UpstreamConfig, at: string): string[] {
  if (typeof u === 'string') return []
  const problems: string[] = []
  const spec = upstreamSpec(u)
  const seen = new Set<string>()
  spec.targets.forEach((t, i) => {
    const key = new URL(t.url).href
    if (seen.has(key)) problems.push(`${at}/targets/${i}: target '${t.url}' is listed twice`)
    seen.add(key)
  })
  if (u.hashOn !== undefined && spec.balance !== 'consistent-hash') problems.push(`${at}/hashOn: only used with balance: consistent-hash`)
  if (spec.retries.backoff > spec.retries.maxBackoff) problems.push(`${at}/retries/backoff: must not be greater than maxBackoff (${spec.retries.maxBackoff} ms)`)
  if (spec.passive.baseEjectionTime > spec.passive.maxEjectionTime) problems.push(`${at}/passive/baseEjectionTime: must not be greater than maxEjectionTime (${spec.passive.maxEjectionTime} ms)`)
  // Ejection deadlines live in 32-bit milliseconds in shared memory (see state.ts).
  if (spec.passive.maxEjectionTime > 86_400_000) problems.push(`${at}/passive/maxEjectionTime: must be at most 24h`)
  if (spec.healthCheck !== undefined && spec.healthCheck.timeout > spec.healthCheck.interval) problems.push(`${at}/healthCheck/timeout: must not be greater than interval (${spec.healthCheck.interval} ms)`)
  return problems
}

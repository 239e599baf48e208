import { H_ACTIVE, H_FIELDS, H_TUNNELS, T_EJECTED, T_EJECTIONS, T_FAILS, T_FIELDS, T_HEALTHY, T_INFLIGHT, T_UNTIL } from './state.js'
import type { SharedUpstream } from './state.js'

/**
 * What `GET /status` says about one target. `health` is, in this order of precedence:
 * - `unhealthy`: the active health check took it out (it stays out until it passes again);
 * - `ejected`: passive checks took it out until `ejectedUntil`;
 * - `half-open`: its ejection is over; the next request to it is a trial that brings it
 *   back (or ejects it again, for longer);
 * - `healthy`.
 */
export interface TargetStatus {
  url: string
  weight: number
  health: 'healthy' | 'unhealthy' | 'ejected' | 'half-open'
  /** ISO time the passive ejection ends; only while `ejected`. */
  ejectedUntil?: string
  /** Consecutive 5xx answers or connect failures, towards the next ejection. */
  consecutiveFailures: number
  /** Passive ejections so far (the nth lasts n x baseEjectionTime, capped). */
  ejections: number
  /** Requests in flight to this target, every worker. */
  inFlight: number
}

export interface UpstreamStatus {
  /** The routes that share this upstream's state (same targets, health check and TLS). */
  routes: string[]
  /** Whether the gateway probes its targets (healthCheck is set). */
  activeChecks: boolean
  /** Requests in flight to the upstream, every worker. */
  inFlight: number
  /** WebSocket tunnels open to it (counted against breaker.maxConnections). */
  tunnels: number
  targets: TargetStatus[]
}

/**
 * Read an upstream's shared state (state.ts) as /status shows it. The reads are separate
 * Atomics loads, not one snapshot: a target may change while it is read, which a status
 * page can live with; every field is itself consistent.
 */
export function readUpstreamStatus (shared: SharedUpstream, targets: ReadonlyArray<{ url: string, weight: number }>, routes: string[], activeChecks: boolean, now = Date.now()): UpstreamStatus {
  const a = new Int32Array(shared.sab)
  const rel = (now - shared.epoch) | 0
  const out: TargetStatus[] = targets.map((t, i) => {
    const at = (f: number): number => Atomics.load(a, H_FIELDS + i * T_FIELDS + f)
    const s: TargetStatus = { url: t.url, weight: t.weight, health: 'healthy', consecutiveFailures: at(T_FAILS), ejections: at(T_EJECTIONS), inFlight: at(T_INFLIGHT) }
    if (at(T_HEALTHY) === 0) {
      s.health = 'unhealthy'
    } else if (at(T_EJECTED) === 1) {
      // Times in the buffer are ms since its epoch, compared wrap-safe (see state.ts).
      const left = (at(T_UNTIL) - rel) | 0
      if (left > 0) {
        s.health = 'ejected'
        s.ejectedUntil = new Date(now + left).toISOString()
      } else {
        s.health = 'half-open'
      }
    }
    return s
  })
  return { routes, activeChecks, inFlight: Atomics.load(a, H_ACTIVE), tunnels: Atomics.load(a, H_TUNNELS), targets: out }
}

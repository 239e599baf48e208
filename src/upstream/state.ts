import type { BreakerSpec, PassiveSpec, RetrySpec } from './spec.js'

/*
 * An upstream's state shared by every thread: one small SharedArrayBuffer per upstream,
 * made by the acceptor (upstream/registry.ts) and sent to every worker with each generation
 * (a SharedArrayBuffer travels by reference through postMessage). The acceptor's health
 * prober writes the active-check verdicts; workers count requests and passive failures and
 * eject targets. An update that keeps the upstream (same targets, same health check) sends
 * the same buffer again, so health, ejections and counts survive it.
 *
 * Why shared memory and not messages: a worker reads a target's state on every pick, and a
 * passive ejection decided in one worker must hold in all (Envoy's outlier detection is per
 * cluster, not per worker). Every field is an Int32 read and written with Atomics.
 *
 *   header  [ACTIVE, PENDING, RETRIES, TUNNELS, EJECTED, -, -, -]
 *   target  [HEALTHY, FAILS, EJECTED, UNTIL, EJECTIONS, TRIAL, INFLIGHT, TRIAL_AT] x N
 *
 * Times are milliseconds since the buffer's epoch (sent beside it), kept in 32 bits and
 * compared with wrap-safe subtraction, so a gateway that runs for months is fine as long as
 * one ejection lasts less than 24 days (the config caps it at 24 h).
 */
export const H_ACTIVE = 0 // requests in flight to the upstream, every worker
export const H_PENDING = 1 // dispatched, not yet written to a connection
export const H_RETRIES = 2 // retries in flight
export const H_TUNNELS = 3 // WebSocket tunnels open (or opening), every worker
export const H_EJECTED = 4 // targets ejected now
export const H_FIELDS = 8

export const T_HEALTHY = 0 // active check verdict: 1 healthy, 0 not
export const T_FAILS = 1 // consecutive 5xx or connect failures
export const T_EJECTED = 2 // 1 while ejected (half-open included)
export const T_UNTIL = 3 // end of the ejection
export const T_EJECTIONS = 4 // ejections so far: the nth lasts n x base
export const T_TRIAL = 5 // 1 while a half-open trial request is out
export const T_INFLIGHT = 6 // requests in flight to this target
export const T_TRIAL_AT = 7 // when the trial started (a trial lost with its thread expires)
export const T_FIELDS = 8

/** A half-open trial that has not ended after this long is given up (its thread may be gone). */
const TRIAL_EXPIRY_MS = 60_000

export interface SharedUpstream { sab: SharedArrayBuffer, epoch: number, targets: number }

export function createSharedUpstream (targets: number): SharedUpstream {
  const sab = new SharedArrayBuffer((H_FIELDS + T_FIELDS * targets) * 4)
  const a = new Int32Array(sab)
  for (let i = 0; i < targets; i++) a[H_FIELDS + i * T_FIELDS + T_HEALTHY] = 1
  return { sab, epoch: Date.now(), targets }
}

/** A target may be picked (1), not (0), or once as a half-open trial (2). */
export const DOWN = 0
export const UP = 1
export const TRIAL = 2

/** What a worker does with an upstream's shared state. */
export class UpstreamState {
  readonly a: Int32Array
  readonly #epoch: number
  readonly targets: number
  passive: PassiveSpec
  breaker: BreakerSpec
  retries: RetrySpec

  constructor (shared: SharedUpstream, passive: PassiveSpec, breaker: BreakerSpec, retries: RetrySpec) {
    this.a = new Int32Array(shared.sab)
    this.#epoch = shared.epoch
    this.targets = shared.targets
    this.passive = passive
    this.breaker = breaker
    this.retries = retries
  }

  now (): number { return (Date.now() - this.#epoch) | 0 }

  #t (i: number, field: number): number { return H_FIELDS + i * T_FIELDS + field }

  /** UP, DOWN, or TRIAL when its ejection is over and no trial is out. */
  availability (i: number): number {
    const a = this.a
    if (Atomics.load(a, this.#t(i, T_HEALTHY)) === 0) return DOWN
    if (Atomics.load(a, this.#t(i, T_EJECTED)) === 0) return UP
    const now = this.now()
    if (((Atomics.load(a, this.#t(i, T_UNTIL)) - now) | 0) > 0) return DOWN
    if (Atomics.load(a, this.#t(i, T_TRIAL)) === 0) return TRIAL
    return ((now - Atomics.load(a, this.#t(i, T_TRIAL_AT))) | 0) > TRIAL_EXPIRY_MS ? TRIAL : DOWN
  }

  /** Take the half-open trial of target i; false when another request took it first. */
  claimTrial (i: number): boolean {
    const a = this.a
    const at = this.#t(i, T_TRIAL)
    const cur = Atomics.load(a, at)
    if (cur !== 0 && ((this.now() - Atomics.load(a, this.#t(i, T_TRIAL_AT))) | 0) <= TRIAL_EXPIRY_MS) return false
    if (Atomics.compareExchange(a, at, cur, 1) !== cur) return false
    Atomics.store(a, this.#t(i, T_TRIAL_AT), this.now())
    return true
  }

  /** A trial that ended without a verdict (the client left): another request may take it. */
  releaseTrial (i: number): void { Atomics.store(this.a, this.#t(i, T_TRIAL), 0) }

  inFlight (i: number): number { return Atomics.load(this.a, this.#t(i, T_INFLIGHT)) }

  /** An answer that is not a 5xx: the run of failures ends; a trial brings the target back. */
  success (i: number, trial: boolean): void {
    const a = this.a
    const fails = this.#t(i, T_FAILS)
    if (Atomics.load(a, fails) !== 0) Atomics.store(a, fails, 0)
    if (trial && Atomics.compareExchange(a, this.#t(i, T_EJECTED), 1, 0) === 1) {
      Atomics.sub(a, H_EJECTED, 1)
      Atomics.store(a, this.#t(i, T_TRIAL), 0)
    }
  }

  /**
   * A 5xx or a connect failure. Returns true when this call ejected the target. A failed
   * trial ejects it again, for longer. Ejections are capped at maxEjectionPercent of the
   * targets, but one target may always be ejected (Envoy does the same).
   */
  failure (i: number, trial: boolean): boolean {
    const p = this.passive
    if (p.consecutiveFailures === 0) return false
    const a = this.a
    if (trial) {
      this.#eject(i)
      Atomics.store(a, this.#t(i, T_TRIAL), 0)
      return true
    }
    const n = Atomics.add(a, this.#t(i, T_FAILS), 1) + 1
    if (n < p.consecutiveFailures) return false
    const ejected = Atomics.load(a, H_EJECTED)
    if (ejected > 0 && (ejected + 1) * 100 > p.maxEjectionPercent * this.targets) return false
    // One thread wins the ejection; the others' failures only count.
    if (Atomics.compareExchange(a, this.#t(i, T_EJECTED), 0, 1) !== 0) return false
    Atomics.add(a, H_EJECTED, 1)
    this.#eject(i)
    return true
  }

  #eject (i: number): void {
    const a = this.a
    const p = this.passive
    const n = Atomics.add(a, this.#t(i, T_EJECTIONS), 1) + 1
    const ms = Math.min(p.maxEjectionTime, p.baseEjectionTime * n)
    Atomics.store(a, this.#t(i, T_UNTIL), (this.now() + ms) | 0)
    Atomics.store(a, this.#t(i, T_FAILS), 0)
  }

  /** Start of an attempt on target i: counted against the breaker. A retry's slot in the
   *  budget was taken by reserveRetry() and is given back by end(). */
  begin (i: number): void {
    const a = this.a
    Atomics.add(a, H_ACTIVE, 1)
    Atomics.add(a, H_PENDING, 1)
    Atomics.add(a, this.#t(i, T_INFLIGHT), 1)
  }

  /** The attempt's request went onto a connection: no longer pending. */
  started (): void { Atomics.sub(this.a, H_PENDING, 1) }

  end (i: number, retry: boolean, pending: boolean): void {
    const a = this.a
    Atomics.sub(a, H_ACTIVE, 1)
    if (pending) Atomics.sub(a, H_PENDING, 1)
    Atomics.sub(a, this.#t(i, T_INFLIGHT), 1)
    if (retry) Atomics.sub(a, H_RETRIES, 1)
  }

  /** Which breaker limit a new attempt would break, or undefined. */
  overLimit (): 'requests' | 'pending' | undefined {
    const a = this.a
    if (Atomics.load(a, H_ACTIVE) >= this.breaker.maxRequests) return 'requests'
    if (Atomics.load(a, H_PENDING) >= this.breaker.maxPending) return 'pending'
    return undefined
  }

  /**
   * Envoy's retry budget: retries in flight stay under a share of the requests in flight.
   * The slot is taken when the retry is decided, not when it is sent after its backoff:
   * otherwise every failure of a burst would see the budget still free (G7). A CAS loop, so
   * two threads cannot both take the last slot.
   */
  reserveRetry (): boolean {
    const r = this.retries
    const a = this.a
    const limit = Math.max(r.minRetryConcurrency, Math.floor(Atomics.load(a, H_ACTIVE) * r.budgetPercent / 100))
    for (;;) {
      const cur = Atomics.load(a, H_RETRIES)
      if (cur >= limit) return false
      if (Atomics.compareExchange(a, H_RETRIES, cur, cur + 1) === cur) return true
    }
  }

  /**
   * A WebSocket tunnel holds one upstream connection for as long as it lives, outside the
   * undici pools the breaker's maxConnections sizes: tunnels are counted here instead, and a
   * new one over the limit is refused (503). A CAS loop, so two threads cannot both take
   * the last slot. False when the upstream has maxConnections tunnels already.
   */
  openTunnel (): boolean {
    const a = this.a
    const limit = this.breaker.maxConnections
    for (;;) {
      const cur = Atomics.load(a, H_TUNNELS)
      if (cur >= limit) return false
      if (Atomics.compareExchange(a, H_TUNNELS, cur, cur + 1) === cur) return true
    }
  }

  /** A tunnel taken by openTunnel() closed, or its handshake failed. */
  closeTunnel (): void { Atomics.sub(this.a, H_TUNNELS, 1) }

  /** A reserved retry that was never sent (the client left during the backoff). */
  releaseRetry (): void { Atomics.sub(this.a, H_RETRIES, 1) }

  /** The acceptor's prober: the active check's verdict. */
  setHealthy (i: number, healthy: boolean): void {
    Atomics.store(this.a, this.#t(i, T_HEALTHY), healthy ? 1 : 0)
  }

  /** For /status and tests: each target's state. */
  snapshot (): Array<{ healthy: boolean, ejected: boolean, fails: number, inFlight: number }> {
    const out = []
    for (let i = 0; i < this.targets; i++) {
      out.push({
        healthy: Atomics.load(this.a, this.#t(i, T_HEALTHY)) === 1,
        ejected: Atomics.load(this.a, this.#t(i, T_EJECTED)) === 1,
        fails: Atomics.load(this.a, this.#t(i, T_FAILS)),
        inFlight: Atomics.load(this.a, this.#t(i, T_INFLIGHT))
      })
    }
    return out
  }
}

// Rate-limit counters on the shared memory, from JS: compile a rule once (in a plugin's
// create()), then hit(rule, clientKey, now) per request. The counting itself is in WASM
// (wasm/assembly/rate-limit.ts: table layout, state encodings, the lock-free protocol and
// the f64 result encoding); this file hashes the key, calls it, and decodes the result into
// what the RateLimit-* and Retry-After headers need.
import { webcrypto } from 'node:crypto'
import type { HotPath } from '../shared-memory.js'
import { kTestInternals } from '../symbols.js'
import { hashKey, hashPrefix, sipKeyFromSeed, stringWords, type HashPrefix } from './hash.js'

/** The counting algorithm of a rule. */
export type RateLimitAlgorithm = 'fixed-window' | 'sliding-window' | 'gcra'

/** What a hit does when the counter table has no room for its key. */
export type WhenTableFull = 'deny' | 'allow'

/** A rate-limit rule as configured. */
export interface RateLimitRule {
  algorithm: RateLimitAlgorithm
  /**
   * fixed-window, sliding-window: hits admitted per window (1 to 4,194,303).
   * gcra: the sustained rate is `limit` per `windowMs` (1 to 2^32 - 1).
   */
  limit: number
  /** Window length in ms (1 to 2^32 - 1). */
  windowMs: number
  /** gcra only: hits admitted at once after a quiet spell (the bucket size). Default: limit. */
  burst?: number
  /**
   * When the key finds no room in the counter table: 'deny' (the default: answer as if
   * limited) or 'allow' (let it through uncounted). Either way the hit is counted in
   * RateLimitCounters.tableFullCount, and the result says tableFull.
   */
  whenFull?: WhenTableFull
}

/** A rule compiled by RateLimitCounters.rule(): pass it to hit(). */
export interface CompiledRule {
  readonly policyId: string
  readonly algorithm: RateLimitAlgorithm
  readonly limit: number
  readonly windowMs: number
  /** gcra: the bucket size; the window algorithms: equal to limit. */
  readonly burst: number
  readonly whenFull: WhenTableFull
  readonly [kAlgorithm]: number
  readonly [kPrefix]: HashPrefix
  readonly [kIntervalTicks]: number
  readonly [kIntervalMs]: number
  readonly [kTauMs]: number
}

/** The outcome of one hit, in the terms of the RateLimit-* and Retry-After headers. */
export interface RateLimitResult {
  /** Whether the request may go on. */
  admitted: boolean
  /** Hits that would still be admitted now (0 when rejected). */
  remaining: number
  /** Rejected: ms until a hit would be admitted, if no other hits come (exact). 0 when admitted. */
  retryAfterMs: number
  /**
   * ms until the quota is whole again (fixed window: the window's end; sliding window: the
   * current window's end; gcra: until the bucket is full: exact when rejected, and at most
   * one interval high when admitted).
   */
  resetMs: number
  /** The key found no room in the counter table; admitted follows the rule's whenFull. */
  tableFull: boolean
}

const kAlgorithm = Symbol('rate-limit.algorithm')
const kPrefix = Symbol('rate-limit.hash-prefix')
const kIntervalTicks = Symbol('rate-limit.interval-ticks')
const kIntervalMs = Symbol('rate-limit.interval-ms')
const kTauMs = Symbol('rate-limit.tau-ms')

const ALG_FIXED = 1
const ALG_SLIDING = 2
const ALG_GCRA = 3
const ALGORITHMS: Readonly<Record<RateLimitAlgorithm, number>> = {
  'fixed-window': ALG_FIXED,
  'sliding-window': ALG_SLIDING,
  gcra: ALG_GCRA
}

/** A GCRA state is a time in ticks of 2^-22 ms (wasm/assembly/rate-limit.ts). */
const TICKS_PER_MS = 2 ** 22
/** The window algorithms count in 22 bits. */
const WINDOW_LIMIT_MAX = 2 ** 22 - 1
const U32_MAX = 2 ** 32 - 1
/** Bounds rateLimitGcra checks: interval <= 2^53 ticks, burst * interval <= 2^60 ticks. */
const INTERVAL_TICKS_MAX = 2n ** 53n
const TAU_TICKS_MAX = 2n ** 60n
/**
 * Retry-After when the table has no room and the rule denies: when room comes back depends
 * on other keys' counters expiring, which no one hit can know; a second is a fair guess.
 */
const TABLE_FULL_RETRY_MS = 1000

function integerIn (name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

function randomSeedCandidate (): number {
  const word = new Uint32Array(1)
  do webcrypto.getRandomValues(word); while (word[0] === 0)
  return word[0]!
}

/** A fresh result object, for callers that keep one per request or per worker. */
export function newRateLimitResult (): RateLimitResult {
  return { admitted: false, remaining: 0, retryAfterMs: 0, resetMs: 0, tableFull: false }
}

/**
 * The rate-limit counters of the process's shared memory, as one thread uses them. Every
 * thread makes its own from its own HotPath; they count in the same table and hash alike
 * (the hash seed is in the memory's header).
 */
export class RateLimitCounters {
  /** Hits in this thread that found no room in the counter table (the table-full metric). */
  tableFullCount = 0
  readonly #hot: HotPath
  readonly #k0: number
  readonly #k1: number
  readonly #hash = new Uint32Array(2)

  constructor (hot: HotPath) {
    this.#hot = hot
    // The first thread to get here picks the process's seed; the others read it.
    const [k0, k1] = sipKeyFromSeed(hot.rateLimitSeed(randomSeedCandidate()))
    this.#k0 = k0
    this.#k1 = k1
  }

  /**
   * Checks and compiles a rule of policy `policyId`, once, at boot. Counters are keyed by
   * (policyId, algorithm, windowMs, client key): a new limit or burst keeps counting in the
   * same counters; a new algorithm or window starts afresh.
   */
  rule (policyId: string, rule: RateLimitRule): CompiledRule {
    if (typeof policyId !== 'string') throw new TypeError('policyId must be a string')
    const alg = ALGORITHMS[rule.algorithm]
    if (alg === undefined) {
      throw new RangeError(`algorithm must be one of ${Object.keys(ALGORITHMS).join(', ')}, got ${String(rule.algorithm)}`)
    }
    const windowMs = integerIn('windowMs', rule.windowMs, 1, U32_MAX)
    const whenFull = rule.whenFull ?? 'deny'
    if (whenFull !== 'deny' && whenFull !== 'allow') throw new RangeError(`whenFull must be 'deny' or 'allow', got ${String(whenFull)}`)
    let limit: number
    let burst: number
    let intervalTicks = 0
    if (alg === ALG_GCRA) {
      limit = integerIn('limit', rule.limit, 1, U32_MAX)
      burst = integerIn('burst', rule.burst ?? limit, 1, U32_MAX)
      // The emission interval windowMs / limit, rounded up to a whole tick: never faster
      // than configured, and off by under a tick (2^-22 ms) per hit.
      const ticks = (BigInt(windowMs) * BigInt(TICKS_PER_MS) + BigInt(limit) - 1n) / BigInt(limit)
      if (ticks > INTERVAL_TICKS_MAX || ticks * BigInt(burst) > TAU_TICKS_MAX) {
        throw new RangeError(`gcra: the interval windowMs / limit must be at most 2^31 ms and burst times it at most 2^38 ms (${windowMs} / ${limit}, burst ${burst})`)
      }
      intervalTicks = Number(ticks)
    } else {
      limit = integerIn('limit', rule.limit, 1, WINDOW_LIMIT_MAX)
      if (rule.burst !== undefined) throw new RangeError(`burst applies to gcra only, not ${rule.algorithm}`)
      burst = limit
    }
    return Object.freeze({
      policyId,
      algorithm: rule.algorithm,
      limit,
      windowMs,
      burst,
      whenFull,
      [kAlgorithm]: alg,
      [kPrefix]: hashPrefix(this.#k0, this.#k1, [...stringWords(policyId), alg, windowMs]),
      [kIntervalTicks]: intervalTicks,
      [kIntervalMs]: intervalTicks / TICKS_PER_MS,
      [kTauMs]: (intervalTicks / TICKS_PER_MS) * burst
    })
  }

  /**
   * Counts one request of client `key` against `rule` at time `now` (ms, Date.now(): the
   * same clock in every thread). A rejected request consumes nothing. Writes the outcome
   * to `out` and returns it: pass an object to reuse (nothing is then allocated), or leave
   * it out for a fresh one.
   */
  hit (rule: CompiledRule, key: string, now: number, out: RateLimitResult = newRateLimitResult()): RateLimitResult {
    const hash = this.#hash
    hashKey(rule[kPrefix], key, hash)
    return this.#hitHashed(rule, hash[0]!, hash[1]!, now, out)
  }

  /**
   * Gives back one hit that hit(rule, key, now) admitted, with the same `now`: for a request
   * that one rule admitted and a later rule rejected, so that it consumes no quota anywhere.
   * Returns whether a hit was given back. Nothing is given back once the counter's window
   * has ended (the count is gone anyway), or when another thread with a later clock has
   * already moved the counter to a later window (the hit may have been counted in either;
   * erring towards not giving back never admits more than the limit).
   */
  refund (rule: CompiledRule, key: string, now: number): boolean {
    const hash = this.#hash
    hashKey(rule[kPrefix], key, hash)
    const alg = rule[kAlgorithm]
    return this.#hot.rateLimitRefund(alg, hash[0]!, hash[1]!, now, alg === ALG_GCRA ? rule[kIntervalTicks] : rule.windowMs) === 1
  }

  /**
   * The sliding-window estimate of `key` under a sliding-window `rule` at `now`, counting
   * nothing: for reporting a count (threat-guard's block reasons), never for a decision.
   */
  count (rule: CompiledRule, key: string, now: number): number {
    if (rule[kAlgorithm] !== ALG_SLIDING) throw new RangeError(`count() needs a sliding-window rule, not ${rule.algorithm}`)
    const hash = this.#hash
    hashKey(rule[kPrefix], key, hash)
    return this.#hot.rateLimitSlidingCount(hash[0]!, hash[1]!, now, rule.windowMs)
  }

  #hitHashed (rule: CompiledRule, lo: number, hi: number, now: number, out: RateLimitResult): RateLimitResult {
    const hot = this.#hot
    const alg = rule[kAlgorithm]
    const code = alg === ALG_FIXED
      ? hot.rateLimitFixedWindow(lo, hi, now, rule.windowMs, rule.limit)
      : alg === ALG_SLIDING
        ? hot.rateLimitSlidingWindow(lo, hi, now, rule.windowMs, rule.limit)
        : hot.rateLimitGcra(lo, hi, now, rule[kIntervalTicks], rule.burst)
    if (code >= 0) {
      out.admitted = true
      out.remaining = code
      out.retryAfterMs = 0
      // gcra: the TAT is now + tau - (remaining + f) * T, 0 <= f < 1.
      out.resetMs = alg === ALG_GCRA ? rule[kTauMs] - code * rule[kIntervalMs] : windowEnd(now, rule.windowMs) - now
      out.tableFull = false
    } else if (code === -Infinity) {
      this.tableFullCount++
      const allow = rule.whenFull === 'allow'
      out.admitted = allow
      out.remaining = 0
      out.retryAfterMs = allow ? 0 : TABLE_FULL_RETRY_MS
      out.resetMs = out.retryAfterMs
      out.tableFull = true
    } else {
      out.admitted = false
      out.remaining = 0
      out.retryAfterMs = -code
      // gcra: retry = TAT + T - tau - now, and the bucket is full at TAT.
      out.resetMs = alg === ALG_GCRA ? -code + rule[kTauMs] - rule[kIntervalMs] : Math.max(-code, windowEnd(now, rule.windowMs) - now)
      out.tableFull = false
    }
    return out
  }

  /** For tests: a hit with the key's hash given (to aim keys at one probe range). */
  get [kTestInternals] (): { hitHashed: (rule: CompiledRule, lo: number, hi: number, now: number) => RateLimitResult } {
    return { hitHashed: (rule, lo, hi, now) => this.#hitHashed(rule, lo, hi, now, newRateLimitResult()) }
  }
}

/** The end (ms) of the window of length `windowMs` holding whole ms floor(now). */
function windowEnd (now: number, windowMs: number): number {
  return (Math.floor(Math.floor(now) / windowMs) + 1) * windowMs
}

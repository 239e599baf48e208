import { HashRing, hashString } from './hash-ring.js'
import { DOWN, TRIAL } from './state.js'
import type { UpstreamState } from './state.js'
import type { RequestContext } from '../types.js'

/** The key consistent hashing uses for a request. */
export type KeyOf = (ctx: RequestContext) => string

/** A pick: the target's index, and whether it is a half-open trial. -1: no target is usable. */
export interface Pick { index: number, trial: boolean }

export interface Balancer {
  /**
   * A usable target not in `tried` (when there is one; else any usable target), or index -1.
   */
  pick: (ctx: RequestContext, tried: ReadonlySet<number> | undefined) => Pick
}

const NONE: Pick = Object.freeze({ index: -1, trial: false })
const picks: Pick[] = []
function up (i: number): Pick {
  return (picks[i] ??= Object.freeze({ index: i, trial: false }))
}

/**
 * Settle a candidate: an UP target is taken; a TRIAL one only if this request wins its
 * half-open trial. Returns undefined when the candidate cannot be used.
 */
function settle (state: UpstreamState, i: number): Pick | undefined {
  const av = state.availability(i)
  if (av === DOWN) return undefined
  if (av === TRIAL) return state.claimTrial(i) ? { index: i, trial: true } : undefined
  return up(i)
}

/**
 * Smooth weighted round-robin (nginx's algorithm): every pick adds each target's weight to
 * its running score, takes the highest, and subtracts the total from the winner. Weights
 * 5,1,1 give a a b a c a a rather than a a a a a b c. Targets that are down (active check,
 * ejection) or already tried by this request take no part, as nginx skips failed peers.
 * Scores are per worker: with W workers the shares hold per worker, and so in total.
 */
export class RoundRobin implements Balancer {
  readonly #weights: number[]
  readonly #scores: number[]
  readonly #state: UpstreamState

  constructor (weights: readonly number[], state: UpstreamState) {
    this.#weights = [...weights]
    this.#scores = weights.map(() => 0)
    this.#state = state
  }

  pick (_ctx: RequestContext, tried: ReadonlySet<number> | undefined): Pick {
    const n = this.#weights.length
    const state = this.#state
    if (n === 1) return settle(state, 0) ?? NONE
    // At most n rounds: a candidate that turns out unusable (a trial lost to another
    // request) is left out and the pick is made again.
    let skip: Set<number> | undefined
    for (let round = 0; round < n; round++) {
      let best = -1
      let total = 0
      let fallback = -1
      for (let i = 0; i < n; i++) {
        if (skip?.has(i) === true || state.availability(i) === DOWN) continue
        if (tried?.has(i) === true) {
          if (fallback === -1) fallback = i
          continue
        }
        const w = this.#weights[i] as number
        this.#scores[i] = (this.#scores[i] as number) + w
        total += w
        if (best === -1 || (this.#scores[i] as number) > (this.#scores[best] as number)) best = i
      }
      if (best === -1) best = fallback
      if (best === -1) return NONE
      if (total > 0) this.#scores[best] = (this.#scores[best] as number) - total
      const p = settle(state, best)
      if (p !== undefined) return p
      ;(skip ??= new Set()).add(best)
    }
    return NONE
  }
}

/**
 * Least request by the power of two choices (Mitzenmacher; Envoy's LEAST_REQUEST): two
 * usable targets drawn at random, weighted, and the one with fewer requests in flight wins.
 * The counts are the shared ones, every worker's requests, so a slow target is seen slow by
 * all. Two random choices instead of a scan of all: O(1), and no herd on the one target that
 * looked least loaded a moment ago.
 */
export class LeastRequest implements Balancer {
  readonly #cumulative: number[]
  readonly #total: number
  readonly #state: UpstreamState

  constructor (weights: readonly number[], state: UpstreamState) {
    let sum = 0
    this.#cumulative = weights.map((w) => (sum += w))
    this.#total = sum
    this.#state = state
  }

  #draw (): number {
    const r = Math.random() * this.#total
    const c = this.#cumulative
    let i = 0
    while (i < c.length - 1 && r >= (c[i] as number)) i++
    return i
  }

  pick (_ctx: RequestContext, tried: ReadonlySet<number> | undefined): Pick {
    const state = this.#state
    const n = this.#cumulative.length
    const ok = (i: number): boolean => tried?.has(i) !== true && state.availability(i) !== DOWN
    let a = -1
    let b = -1
    // A few draws find two usable targets; when many are down, a scan finds what is left.
    for (let k = 0; k < 8 && b === -1; k++) {
      const i = this.#draw()
      if (!ok(i)) continue
      if (a === -1) a = i
      else if (i !== a) b = i
    }
    if (a === -1) {
      for (let i = 0; i < n; i++) if (ok(i)) { a = i; break }
    }
    if (a === -1) {
      // Everything usable was tried: any usable target.
      for (let i = 0; i < n; i++) if (state.availability(i) !== DOWN) { a = i; break }
      if (a === -1) return NONE
    }
    const best = b !== -1 && state.inFlight(b) < state.inFlight(a) ? b : a
    return settle(state, best) ?? (best === b ? settle(state, a) : undefined) ?? NONE
  }
}

/**
 * Consistent hashing on a ring of virtual nodes (hash-ring.ts): a key goes to the first
 * target clockwise from its hash that is usable, so a target that is down or removed moves
 * only its own keys, spread over the others, and a target added takes only the keys that
 * now land on its points: about 1/N of them.
 */
export class ConsistentHash implements Balancer {
  readonly #ring: HashRing
  readonly #state: UpstreamState
  readonly #keyOf: KeyOf

  constructor (urls: readonly string[], weights: readonly number[], state: UpstreamState, keyOf: KeyOf) {
    this.#ring = new HashRing(urls, weights)
    this.#state = state
    this.#keyOf = keyOf
  }

  pick (ctx: RequestContext, tried: ReadonlySet<number> | undefined): Pick {
    const state = this.#state
    const h = hashString(this.#keyOf(ctx))
    let found: Pick | undefined
    this.#ring.walk(h, (i) => {
      if (tried?.has(i) === true) return false
      found = settle(state, i)
      return found !== undefined
    })
    if (found === undefined && tried !== undefined) this.#ring.walk(h, (i) => { found = settle(state, i); return found !== undefined })
    return found ?? NONE
  }
}

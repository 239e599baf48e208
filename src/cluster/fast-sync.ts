import type { Logger } from 'pino'
import { RateLimitCounters } from '../rate-limit/counters.js'
import type { CompiledRule, RateLimitAlgorithm } from '../rate-limit/counters.js'
import type { HotPath } from '../shared-memory.js'
import { clientKeyPart, policyDigest } from './keys.js'
import type { DeltaItem } from './channel.js'
import type { ClusterConfig } from './config.js'
import type { RedisClient } from './redis.js'
import { FAST_SYNC } from './scripts.js'
import { countCluster } from './stats.js'

type SyncCommand = (key: string, instance: string, add: number, ttlMs: number) => Promise<number>

/** Counters synced per round at most; more active keys wait for the next round (oldest first). */
const MAX_PER_ROUND = 20_000
/** Counters tracked at most; beyond it new keys are counted locally only until room frees. */
const MAX_TRACKED = 100_000

interface Tracked {
  rule: CompiledRule
  key: string
  redisKey: string
  /** Local admits not yet reported to Redis. */
  pending: number
  /** The other instances' total as last read: what has been counted in locally already. */
  seenOthers: number
  /** Until when (ms) the counter keeps being synced without local traffic: its window. */
  activeUntil: number
}

/**
 * fast mode, in the acceptor: the process's local admits (sent by its workers) are added to
 * a fleet counter in Redis every syncInterval, and what the other instances admitted since
 * the last round is counted into the local WASM counters, so that local decisions see the
 * fleet's traffic one round late. A counter keeps being synced for one window after its last
 * local admit, so an instance learns of the others' traffic on a key it has seen lately even
 * while it has none of its own.
 *
 * Remote admits are counted in with ordinary hits at the acceptor's `now` (the local
 * counter then holds local + remote admits, up to its limit); the fleet counter is a running
 * total per instance (a Redis hash, expiring a window after the last round), so a lost round
 * is caught up by the next.
 */
export class FastSync {
  readonly #cfg: ClusterConfig
  readonly #instance: string
  readonly #log: Logger
  readonly #counters: RateLimitCounters
  readonly #sync: SyncCommand
  readonly #redis: RedisClient
  readonly #rules = new Map<string, CompiledRule>()
  readonly #tracked = new Map<string, Tracked>()
  #timer: ReturnType<typeof setInterval> | undefined
  #running = false
  #onResult: (ok: boolean, err?: Error) => void

  constructor (cfg: ClusterConfig, instance: string, redis: RedisClient, hot: HotPath, log: Logger, onResult: (ok: boolean, err?: Error) => void) {
    this.#cfg = cfg
    this.#instance = instance
    this.#log = log
    this.#counters = new RateLimitCounters(hot)
    this.#redis = redis
    redis.defineCommand('tollgateFastSync', { lua: FAST_SYNC, numberOfKeys: 1 })
    this.#sync = (redis as unknown as { tollgateFastSync: SyncCommand }).tollgateFastSync.bind(redis)
    this.#onResult = onResult
    this.#timer = setInterval(() => { void this.round() }, cfg.syncInterval)
    this.#timer.unref()
  }

  #rule (policyId: string, algorithm: string, limit: number, windowMs: number, burst: number | undefined): CompiledRule {
    const id = `${policyId}\u0000${algorithm}`
    let r = this.#rules.get(id)
    if (r === undefined) {
      r = this.#counters.rule(policyId, { algorithm: algorithm as RateLimitAlgorithm, limit, windowMs, burst })
      this.#rules.set(id, r)
    }
    return r
  }

  /** Workers' admits since their last batch. */
  add (items: DeltaItem[]): void {
    const now = Date.now()
    for (const [policyId, algorithm, limit, windowMs, burst, key, n] of items) {
      const id = policyId + '\u0000' + key
      let t = this.#tracked.get(id)
      if (t === undefined) {
        if (this.#tracked.size >= MAX_TRACKED) continue
        let rule: CompiledRule
        try {
          rule = this.#rule(policyId, algorithm, limit, windowMs, burst)
        } catch (err) {
          this.#log.warn({ err: (err as Error).message }, 'cluster: fast sync could not compile a rule')
          continue
        }
        const digest = policyDigest(policyId)
        t = { rule, key, redisKey: `${this.#cfg.prefix}fast:{${clientKeyPart(key)}}:${digest}`, pending: 0, seenOthers: 0, activeUntil: 0 }
        this.#tracked.set(id, t)
      }
      t.pending += n
      t.activeUntil = now + Math.max(windowMs, 1000)
    }
  }

  /** One sync round: every tracked counter, pipelined (ioredis sends one tick's commands in one write). */
  async round (): Promise<void> {
    if (this.#running) return
    this.#running = true
    try {
      const now = Date.now()
      const batch: Tracked[] = []
      for (const [id, t] of this.#tracked) {
        if (t.pending === 0 && t.activeUntil < now) {
          this.#tracked.delete(id)
          continue
        }
        batch.push(t)
        if (batch.length >= MAX_PER_ROUND) break
      }
      if (batch.length === 0) return
      // Not connected: report it and keep the counts for a later round (no offline queue).
      if (this.#redis.status !== 'ready') {
        this.#onResult(false)
        return
      }
      let failed: Error | undefined
      await Promise.all(batch.map(async (t) => {
        const add = t.pending
        try {
          const others = await this.#sync(t.redisKey, this.#instance, add, t.rule.windowMs * 2 + 1000)
          t.pending -= add
          countCluster('fastSyncs')
          // Fewer than seen: the fleet counter expired and started again.
          const fresh = others >= t.seenOthers ? others - t.seenOthers : others
          t.seenOthers = others
          this.#countIn(t, fresh)
        } catch (err) {
          failed = err as Error
        }
      }))
      if (failed !== undefined) countCluster('redisErrors')
      this.#onResult(failed === undefined, failed)
    } finally {
      this.#running = false
    }
  }

  /** Count `n` remote admits into the local counter (up to its limit: beyond, it is full anyway). */
  #countIn (t: Tracked, n: number): void {
    const now = Date.now()
    for (let i = 0; i < n; i++) {
      if (!this.#counters.hit(t.rule, t.key, now).admitted) break
      countCluster('fastRemoteHits')
    }
  }

  close (): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
  }
}

import type { Logger } from 'pino'
import type { ClusterConfig } from './config.js'
import { DELTAS_CHANNEL_NAME, openChannel } from './channel.js'
import type { DeltaItem } from './channel.js'
import type { RedisClient } from './redis.js'
import { parseRedisUrl } from './redis-url.js'
import { STRICT_LIMIT, STRICT_LIMIT_BATCH } from './scripts.js'
import { countCluster } from './stats.js'
import { threadId } from 'node:worker_threads'

/** Redis down: one log line per this many ms, with a count of what was not logged. */
const LOG_EVERY_MS = 10_000

/** fast mode: one limit's local admits since the last flush, by client key. */
interface Recorder {
  policyId: string
  algorithm: string
  limit: number
  windowMs: number
  burst: number | undefined
  counts: Map<string, number>
}

type LimitCommand = (...keysThenArgv: Array<string | number>) => Promise<number[]>
type BatchCommand = (numKeys: number, keysThenArgv: Array<string | number>) => Promise<number[][]>

/** Decisions sent in one batch at most (a busier turn of the loop sends several batches). */
const MAX_BATCH = 256

/** A strict decision waiting for the end of this turn of the event loop. */
interface Queued {
  keys: string[]
  argv: ReadonlyArray<string | number>
  /** The caller's handler, then the promise the request waits on. */
  decided: Decided
  resolve: () => void
  reject: (err: unknown) => void
}

/** What a strict decision's caller does with the script's reply (undefined: Redis could not decide). */
type Decided = (reply: number[] | undefined) => void

/**
 * A worker thread's side of cluster mode, one per thread (per cluster config).
 *
 * strict: the thread's own Redis connection. One connection per worker rather than one per
 * process with message passing: a strict decision is on the request path, and a hop to the
 * acceptor and back would add two thread hand-offs to every request and make the acceptor's
 * event loop a bottleneck for every worker; a connection per thread costs Redis a client
 * per worker (instances x workers in all), which it handles by the thousand. The decisions
 * of one turn of the event loop go out as one script run (#enqueue); on Redis Cluster, one
 * command each, auto-pipelined per master.
 *
 * fast: the thread's admits, batched and sent to the acceptor every syncInterval; the
 * acceptor syncs them with Redis once for the whole process (the local counters are shared
 * by the process's threads, so remote admits must be counted in once per process, not once
 * per thread).
 */
export class WorkerLink {
  readonly cfg: ClusterConfig
  readonly #log: Logger
  #redis: RedisClient | undefined
  /** STRICT_LIMIT defined once per key count (see #limitFor), by key count. */
  readonly #limits: Array<LimitCommand | undefined> = []
  /** strict on one Redis server (not Redis Cluster): decisions batched per loop turn (#enqueue). */
  readonly #batching: boolean
  #batch: BatchCommand | undefined
  #queue: Queued[] = []
  #scheduled = false
  #down = false
  #everReady = false
  #lastLog = 0
  #suppressed = 0
  /** fast mode: Redis as the acceptor last reported it (optimistic until it says). */
  #fastUp = true
  #recorders: Recorder[] = []
  #flushTimer: ReturnType<typeof setInterval> | undefined
  #channel: ReturnType<typeof openChannel>
  #deltaChannel: ReturnType<typeof openChannel> | undefined

  constructor (cfg: ClusterConfig, log: Logger) {
    this.cfg = cfg
    this.#log = log
    this.#channel = openChannel((m) => { if (m.type === 'redis') this.#fastUp = m.up })
    this.#batching = parseRedisUrl(cfg.redis).kind !== 'cluster'
  }

  /** strict: connect on first use (not in a dry run, which never decides anything). */
  #connect (): RedisClient {
    if (this.#redis !== undefined) return this.#redis
    // Loaded by workerLink() before a strict link is made (see there).
    // Batching: our own batches replace ioredis's auto-pipelining, which keeps one pipeline
    // in flight per connection, so a decision made while one is out waited a whole round
    // trip before it was even sent. Ours are sent at once, several in flight if need be
    // (Redis answers in order).
    const redis = (redisModule as RedisModule).connectRedis(this.cfg, { failFast: true, autoPipelining: !this.#batching, connectionName: `tollgate:${this.cfg.instanceId ?? process.pid}:worker:${threadId}` })
    if (this.#batching) {
      redis.defineCommand('tollgateLimitBatch', { lua: STRICT_LIMIT_BATCH })
      this.#batch = (redis as unknown as { tollgateLimitBatch: BatchCommand }).tollgateLimitBatch.bind(redis)
    }
    redis.on('error', (err: Error) => this.#unavailable(err))
    redis.on('ready', () => {
      this.#everReady = true
      if (this.#down) this.#log.info({ suppressed: this.#suppressed }, 'cluster: Redis reachable again; rate limits are fleet-wide again')
      this.#down = false
      this.#suppressed = 0
    })
    this.#redis = redis
    return redis
  }

  /**
   * The script as a command of a fixed key count (a request has one key per limit, 1 to 8).
   * Fixed rather than passed per call: ioredis's auto-pipelining on Redis Cluster groups
   * commands by the slot of their first argument, which must then be the first key, not the
   * key count (with the count first, commands for different masters went into one pipeline
   * and Redis Cluster refused it).
   */
  #limitFor (redis: RedisClient, n: number): LimitCommand {
    let cmd = this.#limits[n]
    if (cmd === undefined) {
      const name = `tollgateLimit${n}`
      redis.defineCommand(name, { lua: STRICT_LIMIT, numberOfKeys: n })
      cmd = (redis as unknown as Record<string, LimitCommand>)[name]?.bind(redis) as LimitCommand
      this.#limits[n] = cmd
    }
    return cmd
  }

  #unavailable (err: Error | undefined): void {
    const now = Date.now()
    if (!this.#down || now - this.#lastLog >= LOG_EVERY_MS) {
      this.#log.warn({ err: err?.message, suppressed: this.#suppressed, onRedisDown: this.cfg.onRedisDown }, `cluster: Redis unavailable; rate limits ${this.cfg.onRedisDown === 'allow' ? 'let requests through (fail open)' : 'answer 503'} until it is back`)
      this.#lastLog = now
      this.#suppressed = 0
    } else {
      this.#suppressed++
    }
    this.#down = true
  }

  /**
   * One strict decision (scripts.ts STRICT_LIMIT): `decided` gets the script's reply, or
   * undefined when Redis did not answer within cluster.timeout or is not connected (never
   * waits for it). Returns undefined when `decided` was called at once (Redis known down),
   * else a promise that settles once it has been called: the handler runs in the same
   * callback as the reply, not one promise hop later.
   */
  strict (keys: string[], argv: ReadonlyArray<string | number>, decided: Decided): Promise<void> | undefined {
    const redis = this.#connect()
    if (redis.status !== 'ready') {
      // The first connection of this thread is still being made (a gateway just started):
      // wait for it, within the timeout, rather than call Redis down.
      if (!this.#everReady && !this.#down) return this.#whenReady().then((ok) => ok ? this.#decide(redis, keys, argv, decided) : decided(undefined))
      if (!this.#down) this.#unavailable(undefined)
      decided(undefined)
      return undefined
    }
    return this.#decide(redis, keys, argv, decided)
  }

  #decide (redis: RedisClient, keys: string[], argv: ReadonlyArray<string | number>, decided: Decided): Promise<void> {
    return this.#batching ? this.#enqueue(keys, argv, decided) : this.#call(this.#limitFor(redis, keys.length), keys, argv, decided)
  }

  /**
   * One Redis server: the decisions this thread makes in one turn of its event loop (the
   * requests its sockets delivered in one poll) go out as one script run, sent when the
   * turn's I/O callbacks are done (setImmediate, as ioredis's auto-pipelining does): one
   * command, one write, one reply to parse for all of them, instead of one of each per
   * request. Exact all the same: the script decides them one after the other (scripts.ts
   * STRICT_LIMIT_BATCH).
   */
  #enqueue (keys: string[], argv: ReadonlyArray<string | number>, decided: Decided): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ keys, argv, decided, resolve, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(this.#sendQueued)
      }
    })
  }

  readonly #sendQueued = (): void => {
    this.#scheduled = false
    const q = this.#queue
    this.#queue = []
    if (q.length <= MAX_BATCH) this.#sendBatch(q)
    else for (let i = 0; i < q.length; i += MAX_BATCH) this.#sendBatch(q.slice(i, i + MAX_BATCH))
  }

  #sendBatch (items: Queued[]): void {
    const args: Array<string | number> = []
    for (const it of items) for (const k of it.keys) args.push(k)
    const numKeys = args.length
    for (const it of items) {
      args.push(it.keys.length)
      for (const a of it.argv) args.push(a)
    }
    ;(this.#batch as BatchCommand)(numKeys, args).then((replies) => {
      countCluster('strictDecisions', items.length)
      for (let i = 0; i < items.length; i++) settle(items[i] as Queued, replies[i])
    }, (err: Error) => {
      // Not connected any more, or no answer within the timeout: onRedisDown for all of them.
      countCluster('redisErrors')
      this.#unavailable(err)
      for (const it of items) settle(it, undefined)
    })
  }

  /** Strict mode, worker mode: connect now, not at the first request. */
  warm (): void { this.#connect() }

  #whenReady (): Promise<boolean> {
    const redis = this.#redis as RedisClient
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer)
        redis.off('ready', onReady)
        resolve(ok)
      }
      const onReady = (): void => done(true)
      const timer = setTimeout(() => done(false), this.cfg.timeout)
      redis.once('ready', onReady)
    })
  }

  /** Redis Cluster: one command per decision (its keys' slot picks the master; auto-pipelined per master). */
  #call (limit: LimitCommand, keys: string[], argv: ReadonlyArray<string | number>, decided: Decided): Promise<void> {
    return limit(...keys, ...argv).then((r) => {
      countCluster('strictDecisions')
      decided(r)
    }, (err: Error) => {
      countCluster('redisErrors')
      this.#unavailable(err)
      decided(undefined)
    })
  }

  /** fast mode: whether Redis is up, as the acceptor's sync sees it. */
  get fastUp (): boolean { return this.#fastUp }

  /**
   * fast mode: the counter of one limit's local admits, made once per limit at create time.
   * The returned function is on the request path: one Map update keyed by the client key as
   * it is (no per-request key string built from the policy id, no array); the policy's
   * fields are attached at the flush, once per client and round.
   */
  recorder (policyId: string, algorithm: string, limit: number, windowMs: number, burst: number | undefined): { record: (key: string) => void, close: () => void } {
    const r: Recorder = { policyId, algorithm, limit, windowMs, burst, counts: new Map() }
    this.#recorders.push(r)
    const counts = r.counts
    return {
      record: (key) => {
        counts.set(key, (counts.get(key) ?? 0) + 1)
        this.#flushTimer ??= setInterval(() => this.#flush(), Math.max(5, Math.floor(this.cfg.syncInterval / 2))).unref()
      },
      // The plugin instance is gone (a new generation): its admits so far are sent, then
      // it is forgotten.
      close: () => {
        this.#flush()
        this.#recorders = this.#recorders.filter((x) => x !== r)
      }
    }
  }

  #flush (): void {
    let items: DeltaItem[] | undefined
    for (const r of this.#recorders) {
      if (r.counts.size === 0) continue
      items ??= []
      for (const [key, n] of r.counts) items.push([r.policyId, r.algorithm, r.limit, r.windowMs, r.burst, key, n])
      r.counts.clear()
    }
    if (items === undefined) return
    this.#deltaChannel ??= openChannel(undefined, DELTAS_CHANNEL_NAME)
    this.#deltaChannel.postMessage({ type: 'deltas', items })
  }

  close (): void {
    this.#flush()
    if (this.#flushTimer !== undefined) clearInterval(this.#flushTimer)
    this.#channel.close()
    this.#deltaChannel?.close()
    if (this.#redis !== undefined) redisModule?.closeRedis(this.#redis)
  }
}

/** Run a queued decision's handler, then let its request go on (a handler that throws fails its request only). */
function settle (it: Queued, reply: number[] | undefined): void {
  try {
    it.decided(reply)
    it.resolve()
  } catch (err) {
    it.reject(err)
  }
}

const links = new Map<string, WorkerLink>()

type RedisModule = typeof import('./redis.js')
/**
 * The Redis client, loaded only by a thread that makes strict decisions: a fast-mode worker
 * never talks to Redis (its acceptor does), so it never loads ioredis (its code and heap).
 */
let redisModule: RedisModule | undefined

/** This thread's link for a cluster config (made once; a changed config gets a new one). */
export async function workerLink (cfg: ClusterConfig, log: Logger): Promise<WorkerLink> {
  if (cfg.mode === 'strict') redisModule ??= await import('./redis.js')
  const id = JSON.stringify(cfg)
  let l = links.get(id)
  if (l === undefined) {
    l = new WorkerLink(cfg, log)
    links.set(id, l)
  }
  return l
}

/** Close every link of this thread (at drain). */
export function closeWorkerLinks (): void {
  for (const l of links.values()) l.close()
  links.clear()
}

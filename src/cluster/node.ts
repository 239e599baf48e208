import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Control } from '../control/gateway-control.js'
import type { HotPath } from '../shared-memory.js'
import { DELTAS_CHANNEL_NAME, openChannel } from './channel.js'
import type { ClusterMessage } from './channel.js'
import type { ClusterConfig } from './config.js'
import { FastSync } from './fast-sync.js'
import { names } from './keys.js'
import { ClusterControl, PolicySync } from './policy-sync.js'
import { closeRedis, connectRedis } from './redis.js'
import type { RedisClient } from './redis.js'
import { redactRedisUrl } from './redis-url.js'
import { addWorkerCounts, countCluster, setClusterGauges } from './stats.js'

/** Redis down: one log line per this many ms from the acceptor. */
const LOG_EVERY_MS = 10_000
/** How often the acceptor tells its workers whether Redis is up (fast mode's onRedisDown). */
const STATE_EVERY_MS = 1000

/** The default instance id: host, pid and port (unique on a host, readable in status keys). */
export function defaultInstanceId (port: number): string {
  return `${hostname()}-${process.pid}-${port}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)
}

/**
 * The acceptor's side of cluster mode: one command connection (policy versions, status keys,
 * fast-mode sync, blocks) and one subscriber connection (policy and block announcements).
 * Workers have their own connections for strict decisions (worker-link.ts).
 */
export class ClusterNode {
  readonly cfg: ClusterConfig
  readonly instanceId: string
  readonly #log: Logger
  readonly #redis: RedisClient
  readonly #sub: RedisClient
  readonly #names: ReturnType<typeof names>
  readonly #channel: ReturnType<typeof openChannel>
  readonly #deltaChannel: ReturnType<typeof openChannel> | undefined
  readonly #fast: FastSync | undefined
  readonly #stateTimer: ReturnType<typeof setInterval>
  #policy: PolicySync | undefined
  #up = false
  #everUp = false
  #lastLog = 0
  #suppressed = 0
  #closed = false

  constructor (cfg: ClusterConfig, opts: { log: Logger, hotPath: HotPath, port: number }) {
    this.cfg = cfg
    this.instanceId = cfg.instanceId ?? defaultInstanceId(opts.port)
    this.#log = opts.log.child({ cluster: this.instanceId })
    this.#names = names(cfg.prefix)
    this.#redis = connectRedis(cfg, { failFast: false, connectionName: `tollgate:${this.instanceId}:acceptor` })
    this.#sub = connectRedis(cfg, { failFast: false, subscriber: true, connectionName: `tollgate:${this.instanceId}:sub` })
    this.#redis.on('error', (err: Error) => this.#down(err))
    this.#sub.on('error', () => {})
    this.#redis.on('ready', () => this.#ready())
    this.#redis.on('close', () => { if (this.#up) this.#down(undefined) })
    // The subscription back: announcements made while it was down were missed (a block
    // lift among them), so the block list is read again too.
    this.#sub.on('ready', () => {
      void this.#policy?.catchUp()
      if (this.#up) void this.#replayBlocks()
    })
    void this.#sub.subscribe(this.#names.policyChannel, this.#names.blocksChannel).catch(() => {})
    this.#sub.on('message', (channel: string, message: string) => this.#onAnnounce(channel, message))
    this.#channel = openChannel((m) => this.#onThreadMessage(m))
    this.#fast = cfg.mode === 'fast'
      ? new FastSync(cfg, this.instanceId, this.#redis, opts.hotPath, this.#log, (ok, err) => { if (ok) this.#ready(); else this.#down(err) })
      : undefined
    this.#deltaChannel = this.#fast === undefined ? undefined : openChannel((m) => { if (m.type === 'deltas') this.#fast?.add(m.items) }, DELTAS_CHANNEL_NAME)
    this.#stateTimer = setInterval(() => this.#channel.postMessage({ type: 'redis', up: this.#up }), STATE_EVERY_MS)
    this.#stateTimer.unref()
    setClusterGauges({ enabled: true, instanceId: this.instanceId, mode: cfg.mode, redisUp: 0 })
    this.#log.info({ redis: redactRedisUrl(cfg.redis), prefix: cfg.prefix, mode: cfg.mode, onRedisDown: cfg.onRedisDown, timeoutMs: cfg.timeout }, 'cluster: joining the fleet through Redis')
  }

  /** The control plane the admin API, the watcher and signals should use. */
  control (inner: Control): ClusterControl {
    this.#policy = new PolicySync(inner, this.#redis, this.cfg.prefix, this.instanceId, this.#log)
    if (this.#redis.status === 'ready') void this.#policy.catchUp().then(async () => await this.#policy?.heartbeat())
    return new ClusterControl(inner, this.#policy)
  }

  #ready (): void {
    if (this.#up || this.#closed) return
    this.#up = true
    setClusterGauges({ redisUp: 1 })
    this.#channel.postMessage({ type: 'redis', up: true })
    if (this.#everUp) this.#log.info({ suppressed: this.#suppressed }, 'cluster: Redis reachable again; resynchronising')
    else this.#log.info('cluster: Redis connected')
    this.#everUp = true
    this.#suppressed = 0
    void this.#policy?.catchUp().then(async () => await this.#policy?.heartbeat())
    void this.#replayBlocks()
  }

  #down (err: Error | undefined): void {
    if (this.#closed) return
    // ioredis reports errors of a connection it is still using (a timeout): only a lost
    // connection is "down".
    if (this.#redis.status === 'ready' && this.#fast === undefined) return
    const now = Date.now()
    if (this.#up || now - this.#lastLog >= LOG_EVERY_MS) {
      this.#log.warn({ err: err?.message, suppressed: this.#suppressed, onRedisDown: this.cfg.onRedisDown }, 'cluster: Redis unavailable; reconnecting')
      this.#lastLog = now
      this.#suppressed = 0
    } else {
      this.#suppressed++
    }
    if (this.#up) countCluster('redisErrors')
    this.#up = false
    setClusterGauges({ redisUp: 0 })
    this.#channel.postMessage({ type: 'redis', up: false })
  }

  #onAnnounce (channel: string, message: string): void {
    if (channel === this.#names.policyChannel) {
      this.#policy?.onAnnounce(message)
      return
    }
    if (channel === this.#names.blocksChannel) {
      let m: { ip?: unknown, until?: unknown, origin?: unknown, lift?: unknown }
      try { m = JSON.parse(message) as typeof m } catch { return }
      if (typeof m.ip !== 'string') return
      if (m.lift === true) {
        if (m.origin !== this.instanceId) countCluster('unblocksReceived')
        this.#channel.postMessage({ type: 'unblock', ip: m.ip })
        return
      }
      if (typeof m.until !== 'number') return
      if (m.origin !== this.instanceId) countCluster('blocksReceived')
      this.#channel.postMessage({ type: 'block', ip: m.ip, until: m.until })
    }
  }

  #onThreadMessage (m: ClusterMessage): void {
    if (m.type === 'stats') addWorkerCounts(m.counts)
    else if (m.type === 'block-publish') void this.#publishBlock(m.ip, m.until)
  }

  async #publishBlock (ip: string, until: number): Promise<void> {
    try {
      await this.#redis.zadd(this.#names.blocks, until, ip)
      await this.#redis.zremrangebyscore(this.#names.blocks, '-inf', Date.now())
      await this.#redis.publish(this.#names.blocksChannel, JSON.stringify({ ip, until, origin: this.instanceId }))
      countCluster('blocksPublished')
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cluster: could not publish an auto-block; it applies to this instance only')
      // Still this instance's threads.
      this.#channel.postMessage({ type: 'block', ip, until })
    }
  }

  /**
   * Lift a block fleet-wide (the admin API's DELETE /blocks/:ip): remove the stored entry so
   * that no (re)connect replays it, and announce the lift so every instance takes the
   * address out of its table (this one too, through its own subscription). Both in one
   * MULTI: an entry is never gone from the set without the lift being announced. Resolves
   * with whether Redis had the entry; rejects when Redis cannot be reached (nothing done).
   */
  async unblock (ip: string, asWritten = ip): Promise<boolean> {
    if (this.#redis.status !== 'ready') throw new Error(`Redis is ${this.#redis.status}`)
    const r = await this.#redis.multi()
      // The canonical form, and the text as the admin wrote it (an entry stored by another
      // version may have another spelling of the address).
      .zrem(this.#names.blocks, ip, asWritten)
      .publish(this.#names.blocksChannel, JSON.stringify({ ip, lift: true, origin: this.instanceId }))
      .exec()
    const failed = r?.find(([err]) => err !== null)?.[0]
    if (r === null || failed != null) throw failed ?? new Error('the lift was not applied by Redis')
    countCluster('unblocksPublished')
    return Number(r[0]?.[1]) > 0
  }

  /**
   * On (re)connect: the blocks still in force, to every thread, and then the whole list
   * (onFleetSync), so that blocks lifted while this instance did not hear are lifted here.
   */
  async #replayBlocks (): Promise<void> {
    try {
      const askedAt = Date.now()
      const flat = await this.#redis.zrangebyscore(this.#names.blocks, askedAt, '+inf', 'WITHSCORES')
      const ips: string[] = []
      for (let i = 0; i + 1 < flat.length; i += 2) {
        ips.push(flat[i] as string)
        this.#channel.postMessage({ type: 'block', ip: flat[i] as string, until: Number(flat[i + 1]) })
      }
      this.#channel.postMessage({ type: 'blocks-in-force', ips, askedAt })
    } catch {}
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#stateTimer)
    this.#fast?.close()
    if (this.#fast !== undefined) await this.#fast.round().catch(() => {})
    this.#channel.close()
    this.#deltaChannel?.close()
    closeRedis(this.#sub)
    closeRedis(this.#redis)
  }
}

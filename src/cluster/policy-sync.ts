import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Control } from '../control/gateway-control.js'
import type { Actor, ConfigVersion, GatewayControl, GatewayStatus, UpdateResult } from '../control/types.js'
import { INSTANCE_KEYS } from './config.js'
import { names } from './keys.js'
import type { RedisClient } from './redis.js'
import { POLICY_PUBLISH } from './scripts.js'
import { countCluster, setClusterGauges } from './stats.js'

/** Actors of updates that came from the fleet: `cluster:v7`. Never published again (no loops). */
export const CLUSTER_ACTOR = 'cluster:'
/** Policy versions kept in Redis. */
const KEEP_VERSIONS = 50

type PublishCommand = (versionKey: string, versionsKey: string, json: string, channel: string, keep: number, origin: string) => Promise<number>

interface StoredVersion { policy: Record<string, unknown>, origin: string, actor: string, at: string }

function pick (raw: unknown, keys: readonly string[], keep: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (raw === null || typeof raw !== 'object') return out
  for (const [k, v] of Object.entries(raw)) if (keys.includes(k) === keep) out[k] = v
  return out
}

/**
 * Policy distribution. An update applied here (admin API, file, SIGHUP, rollback) is stored
 * in Redis as a new fleet version (without the instance's own settings: listen, workers,
 * admin, cluster, counters, logLevel) and announced on `<prefix>policy`. Every other
 * instance fetches it, puts its own settings back, and applies it through the same path as
 * a local PUT (checked whole; refused whole, audited); applied or refused, it says so in
 * `<prefix>instance:<id>`. On (re)connect an instance compares the stored version with the
 * one it last handled and catches up. Updates received from the fleet are never published
 * again (their actor is `cluster:v<N>`), so nothing loops.
 */
export class PolicySync {
  readonly #inner: Control
  readonly #redis: RedisClient
  readonly #instance: string
  readonly #log: Logger
  readonly #names: ReturnType<typeof names>
  readonly #publish: PublishCommand
  /** The newest fleet version this instance has handled (applied, refused or published). */
  #handled = 0
  /** The fleet version it runs. */
  #running = 0
  /** A local update Redis was down for: published when it is back. */
  #unpublished: { raw: unknown, actor: string } | undefined
  #queue: Promise<unknown> = Promise.resolve()

  constructor (inner: Control, redis: RedisClient, prefix: string, instance: string, log: Logger) {
    this.#inner = inner
    this.#redis = redis
    this.#instance = instance
    this.#log = log
    this.#names = names(prefix)
    redis.defineCommand('tollgatePolicyPublish', { lua: POLICY_PUBLISH, numberOfKeys: 2 })
    this.#publish = (redis as unknown as { tollgatePolicyPublish: PublishCommand }).tollgatePolicyPublish.bind(redis)
  }

  /** One at a time, in order: publishes and catch-ups never interleave. */
  #serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return run
  }

  /** After a local update was applied: store it in Redis as the fleet's newest version. */
  published (raw: unknown, actor: string): Promise<void> {
    return this.#serial(async () => {
      const stored: StoredVersion = { policy: pick(raw, INSTANCE_KEYS, false), origin: this.#instance, actor, at: new Date().toISOString() }
      try {
        const v = await this.#publish(this.#names.policyVersion, this.#names.policyVersions, JSON.stringify(stored), this.#names.policyChannel, KEEP_VERSIONS, this.#instance)
        this.#unpublished = undefined
        this.#handled = Math.max(this.#handled, v)
        this.#running = v
        countCluster('policyPublished')
        this.#log.info({ clusterVersion: v, actor }, 'cluster: policy stored in Redis and announced to the fleet')
        await this.#status({ version: v })
      } catch (err) {
        this.#unpublished = { raw, actor }
        this.#log.warn({ err: (err as Error).message }, 'cluster: Redis unavailable; this policy update is applied here only, and will be published when Redis is back')
      }
    })
  }

  /** A version announcement from the channel. */
  onAnnounce (message: string): void {
    let m: { version?: unknown, origin?: unknown }
    try { m = JSON.parse(message) as typeof m } catch { return }
    if (typeof m.version !== 'number') return
    if (m.origin === this.#instance || m.version <= this.#handled) return
    void this.catchUp()
  }

  /** (Re)connected, or announced: publish what waited for Redis, then apply the newest version if it is new here. */
  catchUp (): Promise<void> {
    return this.#serial(async () => {
      try {
        if (this.#unpublished !== undefined) {
          const u = this.#unpublished
          this.#unpublished = undefined
          // Only if nothing newer was decided meanwhile (it is still what runs here).
          if (JSON.stringify(this.#inner.current().raw) === JSON.stringify(u.raw)) {
            void this.published(u.raw, u.actor)
            return
          }
        }
        const latest = Number(await this.#redis.get(this.#names.policyVersion) ?? 0)
        if (!(latest > this.#handled)) return
        const json = await this.#redis.hget(this.#names.policyVersions, String(latest))
        if (json === null) return
        const stored = JSON.parse(json) as StoredVersion
        this.#handled = latest
        if (stored.origin === this.#instance) {
          this.#running = latest
          return
        }
        await this.#applyFleetVersion(latest, stored)
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'cluster: could not read the fleet policy version; will retry on reconnect or the next announcement')
      }
    })
  }

  async #applyFleetVersion (v: number, stored: StoredVersion): Promise<void> {
    const own = pick(this.#inner.current().raw, INSTANCE_KEYS, true)
    const merged = { ...stored.policy, ...own }
    const actor = `${CLUSTER_ACTOR}v${v}`
    const r = await this.#inner.apply(merged, actor, { reason: `cluster version ${v} from ${stored.origin}`, source: `<cluster version ${v} from ${stored.origin}>` })
    if (r.ok) {
      this.#running = v
      countCluster('policyApplied')
      this.#log.info({ clusterVersion: v, origin: stored.origin, configVersion: r.version, ms: Math.round(r.ms) }, 'cluster: fleet policy version applied')
      await this.#status({ version: v, configVersion: r.version })
    } else {
      countCluster('policyRefused')
      this.#log.error({ clusterVersion: v, origin: stored.origin, code: r.code, problems: r.problems }, 'cluster: fleet policy version refused here; this instance keeps running its current config')
      await this.#status({ lastRefusal: JSON.stringify({ version: v, origin: stored.origin, code: r.code, message: r.message, problems: r.problems, at: new Date().toISOString() }) })
    }
  }

  /** `<prefix>instance:<id>`: the version it runs, and its last refusal. */
  async #status (fields: Record<string, string | number>): Promise<void> {
    setClusterGauges({ policyVersion: this.#running })
    try {
      const key = this.#names.instance(this.#instance)
      await this.#redis.hset(key, { version: this.#running, seen: this.#handled, host: hostname(), pid: process.pid, updatedAt: new Date().toISOString(), ...fields })
      await this.#redis.pexpire(key, 7 * 24 * 3600 * 1000)
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cluster: could not write the instance status key')
    }
  }

  /** For the status key on connect. */
  heartbeat (): Promise<void> { return this.#status({}) }
}

/**
 * The control plane with the fleet in it: every local update that is applied is published
 * (except those that came from the fleet); everything else is the local Control's.
 */
export class ClusterControl implements GatewayControl {
  readonly #inner: Control
  readonly #sync: PolicySync

  constructor (inner: Control, sync: PolicySync) {
    this.#inner = inner
    this.#sync = sync
  }

  current (): ConfigVersion { return this.#inner.current() }
  versions (): ConfigVersion[] { return this.#inner.versions() }
  validate (raw: unknown, source: string): Promise<UpdateResult> { return this.#inner.validate(raw, source) }
  status (): GatewayStatus { return this.#inner.status() }

  async apply (raw: unknown, actor: Actor, opts?: { ifMatch?: number, reason?: string, source?: string }): Promise<UpdateResult> {
    const r = await this.#inner.apply(raw, actor, opts)
    if (r.ok && !actor.startsWith(CLUSTER_ACTOR)) await this.#sync.published(raw, actor)
    return r
  }

  async rollback (version: number, actor: Actor): Promise<UpdateResult> {
    const r = await this.#inner.rollback(version, actor)
    if (r.ok) await this.#sync.published(this.#inner.current().raw, actor)
    return r
  }
}

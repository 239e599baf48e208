import type { Logger } from 'pino'
import type { Acceptor, SharedState } from '../acceptor.js'
import { createSharedState, prepareConfig } from '../acceptor.js'
import { codes, GatewayError } from '../errors.js'
import type { PurgeSelector } from '../cache-purge.js'
import { VERSION } from '../version.js'
import type { AuditLog } from './audit.js'
import { summarize } from './diff.js'
import type { Actor, ConfigVersion, GatewayControl, GatewayStatus, StagedVersion, UpdateResult, Versions } from './types.js'

function refused (err: unknown): UpdateResult {
  if (err instanceof GatewayError) {
    const problems = err.details.length > 0 ? [...err.details] : [err.message]
    const status = err.code === 'GW_ERR_CONFIG_INVALID' || err.code === 'GW_ERR_CONFIG_PARSE' ? 400 : err.statusCode
    return { ok: false, code: err.code, message: err.message, problems, status }
  }
  const message = (err as Error)?.message ?? String(err)
  return { ok: false, code: codes.GW_ERR_UPDATE_FAILED.code, message, problems: [message], status: 500 }
}

/**
 * The running gateway as the control plane sees it: every policy update, whatever its
 * trigger (admin API, file watch, SIGHUP, rollback), goes through apply(): one at a time,
 * checked whole, published to every worker in two phases, stored as a version, audited.
 */
export class Control implements GatewayControl {
  readonly #acceptor: Acceptor
  readonly #store: Versions
  readonly #audit: AuditLog | undefined
  readonly #log: Logger
  readonly #dir: string
  #validation: Promise<SharedState> | undefined

  constructor (acceptor: Acceptor, store: Versions, audit: AuditLog | undefined, log: Logger, configDir: string) {
    this.#acceptor = acceptor
    this.#store = store
    this.#audit = audit
    this.#log = log
    this.#dir = configDir
  }

  current (): ConfigVersion {
    const v = this.#store.latest()
    if (v === undefined) throw new Error('no config version stored')
    return v
  }

  versions (): ConfigVersion[] { return this.#store.list() }

  /** Checks run on a memory of their own, so a dry run never waits for or touches live tables. */
  async validate (raw: unknown, source: string): Promise<UpdateResult> {
    const started = performance.now()
    try {
      this.#validation ??= createSharedState()
      await prepareConfig({ source, dir: this.#dir, value: raw }, this.#log, await this.#validation)
      const before = this.#store.latest()
      return { ok: true, version: before?.version ?? 0, generation: this.#acceptor.generation, summary: summarize(before?.raw, raw), ms: performance.now() - started }
    } catch (err) {
      return refused(err)
    }
  }

  apply (raw: unknown, actor: Actor, opts: { ifMatch?: number, reason?: string, source?: string } = {}): Promise<UpdateResult> {
    return this.#acceptor.serialize(async () => await this.#apply(raw, actor, opts))
  }

  async #apply (raw: unknown, actor: Actor, opts: { ifMatch?: number, reason?: string, source?: string }): Promise<UpdateResult> {
    const started = performance.now()
    const before = this.#store.latest()
    const action = opts.reason?.startsWith('rollback') === true ? 'rollback' : opts.reason?.startsWith('patch') === true ? 'patch' : 'apply'
    const summary = summarize(before?.raw, raw)
    if (opts.ifMatch !== undefined && before !== undefined && opts.ifMatch !== before.version) {
      const err = codes.GW_ERR_CONFIG_CONFLICT(opts.ifMatch, before.version)
      this.#audit?.record({ actor, action, result: 'refused', versionBefore: before.version, summary, reason: err.message })
      this.#acceptor.metrics?.configUpdate('refused')
      return refused(err)
    }
    let generation: number
    let staged: StagedVersion | undefined
    const timings = { prepareMs: 0, publishMs: 0, storeMs: 0 }
    try {
      const next = await this.#acceptor.prepareNext({ source: opts.source ?? `<${actor}>`, dir: this.#dir, value: raw })
      timings.prepareMs = Math.round(performance.now() - started)
      // The version is written (to a temporary file, synced) while the workers build, and
      // must be on disk before any of them switches; it is renamed into place after.
      const staging = this.#store.stage({ raw, appliedAt: new Date().toISOString(), actor, reason: opts.reason ?? action, generation: this.#acceptor.generation + 1 })
      staging.catch(() => {})
      try {
        generation = await this.#acceptor.publish(next, async () => { staged = await staging })
      } catch (err) {
        void staging.then(async (s) => await s.abandon(), () => {})
        throw err
      }
      timings.publishMs = Math.round(performance.now() - started) - timings.prepareMs
    } catch (err) {
      const r = refused(err)
      if (!r.ok) {
        this.#log.warn({ actor, code: r.code, problems: r.problems }, 'policy update refused; the running config stays')
        this.#audit?.record({ actor, action, result: r.status === 400 || r.status === 409 ? 'refused' : 'failed', versionBefore: before?.version, summary, reason: r.message, problems: r.problems })
        // Refused: found bad before anything changed. Rolled back: it got as far as the
        // workers (some built it), and was dropped everywhere; the running config stays.
        this.#acceptor.metrics?.configUpdate(r.status === 400 || r.status === 409 ? 'refused' : 'rolled_back')
      }
      return r
    }
    const v = await (staged as StagedVersion).commit()
    this.#audit?.record({ actor, action, result: 'applied', versionBefore: before?.version, versionAfter: v.version, generation, summary })
    this.#acceptor.metrics?.configUpdate('applied')
    const ms = performance.now() - started
    timings.storeMs = Math.round(ms) - timings.prepareMs - timings.publishMs
    this.#log.info({ actor, version: v.version, generation, ms: Math.round(ms), ...timings }, 'policy update applied')
    return { ok: true, version: v.version, generation, summary, ms }
  }

  async rollback (version: number, actor: Actor): Promise<UpdateResult> {
    const v = this.#store.get(version)
    if (v === undefined) return refused(codes.GW_ERR_VERSION_NOT_FOUND(version))
    return await this.apply(v.raw, actor, { reason: `rollback to ${version}` })
  }

  async purgeCache (selector: PurgeSelector): Promise<{ workers: number, entries: number }> {
    return await this.#acceptor.purgeCache(selector)
  }

  status (): GatewayStatus {
    return {
      version: VERSION,
      uptimeS: Math.round((Date.now() - this.#acceptor.startedAt) / 1000),
      configVersion: this.#store.latest()?.version ?? 0,
      generation: this.#acceptor.generation,
      workers: this.#acceptor.workers(),
      listen: this.#acceptor.listening,
      upstreams: this.#acceptor.upstreams()
    }
  }
}

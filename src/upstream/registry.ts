import type { Logger } from 'pino'
import { Pool } from 'undici'
import type { GatewayConfig, RouteConfig } from '../config-schema.js'
import { upstreamKey, upstreamSpec } from './spec.js'
import type { HealthCheckSpec } from './spec.js'
import { createSharedUpstream, H_FIELDS, T_FIELDS, T_HEALTHY } from './state.js'
import type { SharedUpstream } from './state.js'
import { readUpstreamStatus } from './status.js'
import { upstreamConnectTls } from '../tls/upstream.js'
import type { UpstreamConnectTls } from '../tls/upstream.js'
import type { UpstreamStatus } from './status.js'

/**
 * What identifies a route's upstream state. The same targets reached with other TLS
 * settings (another CA, name, or none) are another upstream: a route whose CA is wrong must
 * not eject the target for the others.
 */
function stateKey (route: RouteConfig): string {
  const tls = typeof route.upstream === 'string' ? undefined : route.upstream.tls
  return upstreamKey(upstreamSpec(route.upstream)) + (tls === undefined ? '' : JSON.stringify(tls))
}

/**
 * The acceptor's side of upstream state: one shared buffer per distinct upstream (state.ts),
 * and the active health checks, run here once per gateway rather than once per worker. A
 * policy update calls sync(): upstreams whose key (targets + health check + TLS) is unchanged keep
 * their buffer and their prober; new ones get fresh state (every target healthy until
 * probed); those no route uses any more stop being probed.
 */
export class UpstreamRegistry {
  readonly #log: Logger
  readonly #entries = new Map<string, { shared: SharedUpstream, prober: Prober | undefined }>()

  constructor (log: Logger) {
    this.#log = log
  }

  /**
   * Route name -> its upstream's shared state, for a generation message. Only adds: what the
   * running generation uses stays until retain() is called once the update is applied.
   */
  sync (config: GatewayConfig, configDir: string): Record<string, SharedUpstream> {
    const out: Record<string, SharedUpstream> = {}
    for (const route of config.routes) {
      const spec = upstreamSpec(route.upstream)
      const key = stateKey(route)
      let e = this.#entries.get(key)
      if (e === undefined) {
        const shared = createSharedUpstream(spec.targets.length)
        const hc = spec.healthCheck
        const log = this.#log.child({ upstream: route.name })
        const prober = hc === undefined ? undefined : new Prober(spec.targets.map((t) => t.url), hc, shared, log, this.#probeTls(route, configDir, log))
        e = { shared, prober }
        this.#entries.set(key, e)
      }
      out[route.name] = e.shared
    }
    return out
  }

  /**
   * Probes of https:// targets connect as the route's requests do (its CA, servername,
   * verification): with the system store alone, a target behind a private CA would fail
   * every probe and be taken out. The CA file was read when the config was checked; if it
   * cannot be read now, probes verify against the system store (and fail: deny on doubt).
   */
  #probeTls (route: RouteConfig, configDir: string, log: Logger): UpstreamConnectTls | undefined {
    const tls = typeof route.upstream === 'string' ? undefined : route.upstream.tls
    try {
      return upstreamConnectTls(tls, configDir)
    } catch (err) {
      log.error({ err: { message: (err as Error).message } }, 'upstream tls.ca unreadable for health checks; probes use the system CA store')
      return tls === undefined ? undefined : { rejectUnauthorized: tls.insecureSkipVerify !== true, ...(tls.servername === undefined ? {} : { servername: tls.servername }) }
    }
  }

  /** Stop probing upstreams `config` does not use (after an update was applied, or refused). */
  retain (config: GatewayConfig): void {
    // The same key as sync(): with the TLS part, or an upstream with a tls block would lose
    // its state (and its prober) at every update.
    const used = new Set(config.routes.map(stateKey))
    for (const [key, e] of this.#entries) {
      if (used.has(key)) continue
      void e.prober?.stop()
      this.#entries.delete(key)
    }
  }

  /**
   * Every upstream `config` uses, as GET /status shows it: routes that share one state are
   * one entry; targets and weights as the first of those routes names them.
   */
  status (config: GatewayConfig): UpstreamStatus[] {
    const byKey = new Map<string, { route: RouteConfig, routes: string[] }>()
    for (const route of config.routes) {
      const key = stateKey(route)
      const seen = byKey.get(key)
      if (seen === undefined) byKey.set(key, { route, routes: [route.name] })
      else seen.routes.push(route.name)
    }
    const out: UpstreamStatus[] = []
    for (const [key, { route, routes }] of byKey) {
      const e = this.#entries.get(key)
      if (e === undefined) continue
      const spec = upstreamSpec(route.upstream)
      out.push(readUpstreamStatus(e.shared, spec.targets, routes, e.prober !== undefined))
    }
    return out
  }

  async close (): Promise<void> {
    await Promise.all([...this.#entries.values()].map(async (e) => await e.prober?.stop()))
    this.#entries.clear()
  }
}

/**
 * Active HTTP probes of every target of one upstream: GET `path` every `interval`; an answer
 * with a healthy status within `timeout` is a pass. `unhealthyThreshold` failures in a row
 * take a target out, `healthyThreshold` passes in a row bring it back (Envoy's health
 * checker). Probes of a target never overlap: the next is scheduled when one ends.
 */
class Prober {
  readonly #urls: readonly string[]
  readonly #hc: HealthCheckSpec
  readonly #a: Int32Array
  readonly #log: Logger
  readonly #pools: Pool[]
  readonly #timers: Array<NodeJS.Timeout | undefined>
  readonly #runs: number[]
  #stopped = false

  constructor (urls: readonly string[], hc: HealthCheckSpec, shared: SharedUpstream, log: Logger, tls: UpstreamConnectTls | undefined) {
    this.#urls = urls
    this.#hc = hc
    this.#a = new Int32Array(shared.sab)
    this.#log = log
    this.#pools = urls.map((u) => new Pool(new URL(u).origin, { connections: 1, connect: { timeout: hc.timeout, ...(new URL(u).protocol === 'https:' ? tls : undefined) }, headersTimeout: hc.timeout, bodyTimeout: hc.timeout, keepAliveTimeout: Math.min(4000, hc.interval) }))
    this.#runs = urls.map(() => 0)
    this.#timers = urls.map((_, i) => this.#schedule(i, 0))
  }

  #schedule (i: number, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => { void this.#probe(i) }, ms)
    t.unref()
    return t
  }

  #healthyStatus (status: number): boolean {
    const s = this.#hc.statuses
    return s.length === 0 ? status >= 200 && status < 300 : s.includes(status)
  }

  async #probe (i: number): Promise<void> {
    if (this.#stopped) return
    const url = new URL(this.#urls[i] as string)
    const base = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')
    let pass = false
    try {
      const res = await (this.#pools[i] as Pool).request({ path: base + this.#hc.path, method: 'GET', headers: { host: url.host, 'user-agent': 'tollgate-health-check' }, signal: AbortSignal.timeout(this.#hc.timeout) })
      await res.body.dump({ limit: 65536 }).catch(() => {})
      pass = this.#healthyStatus(res.statusCode)
    } catch {
      pass = false
    }
    if (this.#stopped) return
    // Consecutive passes count up, failures down; crossing a threshold flips the verdict.
    const run = this.#runs[i] as number
    const next = pass ? (run > 0 ? run + 1 : 1) : (run < 0 ? run - 1 : -1)
    this.#runs[i] = next
    const at = H_FIELDS + i * T_FIELDS + T_HEALTHY
    const healthy = Atomics.load(this.#a, at) === 1
    if (healthy && next <= -this.#hc.unhealthyThreshold) {
      Atomics.store(this.#a, at, 0)
      this.#log.warn({ target: this.#urls[i] }, 'upstream target failed its health check: taken out')
    } else if (!healthy && next >= this.#hc.healthyThreshold) {
      Atomics.store(this.#a, at, 1)
      this.#log.info({ target: this.#urls[i] }, 'upstream target passed its health check: back in')
    }
    this.#timers[i] = this.#schedule(i, this.#hc.interval)
  }

  async stop (): Promise<void> {
    this.#stopped = true
    for (const t of this.#timers) if (t !== undefined) clearTimeout(t)
    await Promise.all(this.#pools.map(async (p) => await p.destroy().catch(() => {})))
  }
}

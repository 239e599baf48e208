import type { IncomingMessage } from 'node:http'
import type { Logger } from 'pino'
import { createClientIpResolver } from './client-ip.js'
import type { ResolvedClient } from './client-ip.js'
import { HTTP_DEFAULTS } from './config-schema.js'
import type { GatewayConfig, RouteConfig, WebSocketConfig } from './config-schema.js'
import { codes, GatewayError } from './errors.js'
import type { Pipeline } from './pipeline.js'
import { composePipeline } from './pipeline.js'
import { checkHooks } from './plugin.js'
import type { Plugin } from './plugin.js'
import { globalPipeline, importPlugin, pipelineFor } from './plugin-loader.js'
import type { PipelineEntry } from './plugin-loader.js'
import { Router } from './router.js'
import type { GenerationMessage, PluginHooks, RouteInfo } from './types.js'
import { ConsistentHash, LeastRequest, RoundRobin } from './upstream/balancer.js'
import type { Balancer, KeyOf } from './upstream/balancer.js'
import { compileRewrite } from './upstream/rewrite.js'
import { upstreamSpec } from './upstream/spec.js'
import type { HashOn, UpstreamSpec } from './upstream/spec.js'
import { createSharedUpstream, UpstreamState } from './upstream/state.js'
import type { SharedUpstream } from './upstream/state.js'
import { createAuthGate, identityHeaderNames } from './auth/gate.js'
import { consumersOf } from './auth/registry.js'
import { PHASES } from './types.js'
import type { RequestContext } from './types.js'
import type { HotPath } from './shared-memory.js'
import type { PoolRegistry } from './upstream/pools.js'
import type { ProxyRoute, Target } from './upstream/proxy.js'
import { threadMetrics } from './metrics/writer.js'
import { Observer } from './observe.js'
import { upstreamConnectTls, upstreamTlsOf } from './tls/upstream.js'

export interface CompiledRoute {
  info: RouteInfo
  pipeline: Pipeline
  proxy: ProxyRoute | undefined
  /** Who the client is on this route (its own clientIp settings, or the global ones). */
  client: ClientResolver
  /** This route's block in the thread's metrics region (interned once, here). */
  metricsBlock: number
  /** Set when the route proxies WebSocket upgrades: the tunnel limits (ms). */
  websocket: WebSocketConfig | undefined
  /** redirectToHttps: plain-HTTP requests get a 308 to https:// on this port. */
  httpsPort: number | undefined
}

export type ClientResolver = (req: IncomingMessage) => ResolvedClient

/** Everything a worker needs to serve one config generation. */
export interface Generation {
  number: number
  config: GatewayConfig
  router: Router<CompiledRoute>
  /** Global plugins only: for requests that match no route (404/405), so ip-filter, request
   *  ids and access logs still apply to them. */
  fallback: Pipeline
  /** The global client resolver, for requests that match no route. */
  client: ClientResolver
  /** Every plugin instance, to close when the generation is retired. */
  instances: Array<{ name: string, hooks: PluginHooks }>
  pools: Set<import('undici').Pool>
  /** Trace context, metrics, security events and spans for every request. */
  observer: Observer
  /** The metrics block of requests that match no route. */
  noRouteBlock: number
  /** True when a route proxies WebSocket upgrades: the worker then takes Upgrade requests itself. */
  websocket: boolean
  /** The listener's certificates this generation was published with. */
  tls: GenerationMessage['tls']
}

export interface BuildOptions {
  mode: 'worker' | 'dry-run'
  log: Logger
  /** Needed in 'worker' mode; upstream pools are not made in a dry run. */
  pools?: PoolRegistry
  /** This thread's WASM instance on the shared memory. */
  hotPath: HotPath
}

/** What consistent hashing keys a request on; the client address when the key is missing. */
function keyOf (on: HashOn): KeyOf {
  if (on.kind === 'ip') return (ctx) => ctx.client.ip
  if (on.kind === 'consumer') return (ctx) => ctx.consumer?.id ?? ctx.client.ip
  const name = on.name
  return (ctx) => {
    const v = ctx.headers[name]
    return typeof v === 'string' ? v : Array.isArray(v) ? v.join(',') : ctx.client.ip
  }
}

function balancerFor (spec: UpstreamSpec, state: UpstreamState): Balancer {
  const weights = spec.targets.map((t) => t.weight)
  if (spec.balance === 'least-request') return new LeastRequest(weights, state)
  if (spec.balance === 'consistent-hash') return new ConsistentHash(spec.targets.map((t) => t.url), weights, state, keyOf(spec.hashOn))
  return new RoundRobin(weights, state)
}

/**
 * Connections per target per worker: the upstream's `connections`, held so that all workers'
 * pools together stay within breaker.maxConnections (Envoy's max_connections: requests over
 * it wait as pending, and breaker.maxPending turns the excess away with 503).
 */
function connectionsPerPool (spec: UpstreamSpec, workers: number): number {
  const share = Math.max(1, Math.floor(spec.breaker.maxConnections / (workers * spec.targets.length)))
  return Math.min(spec.connections, share)
}

interface TargetUrl { origin: string, host: string, basePath: string, https: boolean }
const targetUrls = new Map<string, TargetUrl>()

/** A target URL's parts, parsed once per thread (every update rebuilds every route). */
function targetUrl (url: string): TargetUrl {
  let t = targetUrls.get(url)
  if (t === undefined) {
    const u = new URL(url)
    t = { origin: u.origin, host: u.host, basePath: u.pathname === '/' ? '' : u.pathname.replace(/\/$/, ''), https: u.protocol === 'https:' }
    if (targetUrls.size >= 10_000) targetUrls.clear()
    targetUrls.set(url, t)
  }
  return t
}

function segmentsOf (path: string): number {
  return path.split('/').filter((s) => s !== '').length
}

async function loadModules (modules: Record<string, string>): Promise<Map<string, Plugin>> {
  const plugins = new Map<string, Plugin>()
  for (const [name, url] of Object.entries(modules)) plugins.set(name, await importPlugin(name, url))
  return plugins
}

/**
 * Build a generation: import plugins, run every plugin's create() (once per instance:
 * global entries are shared by the routes that run them), compose each route's pipeline,
 * and build the router. On any failure, instances already made are closed and the error
 * names the entry (`/routes/1/plugins/0`). The acceptor runs this as a dry run before any
 * worker sees a generation.
 */
export async function buildGeneration (msg: GenerationMessage, opts: BuildOptions): Promise<Generation> {
  const { config } = msg
  const plugins = await loadModules(msg.modules)
  const instances: Generation['instances'] = []
  const byPath = new Map<string, PluginHooks>()
  const pools = new Set<import('undici').Pool>()
  const defs = []
  const instantiate = async (e: PipelineEntry, routeName: string | undefined): Promise<PluginHooks> => {
    let hooks = byPath.get(e.path)
    if (hooks !== undefined) return hooks
    try {
      const made = await e.plugin.create(e.ref.config, {
        log: opts.log.child({ plugin: e.plugin.name }),
        generation: msg.number,
        mode: opts.mode,
        route: e.global ? undefined : routeName,
        configDir: msg.configDir,
        gateway: config,
        prepared: msg.prepared[e.path],
        shared: { hotPath: opts.hotPath, ipRegion: msg.ipRegion }
      })
      hooks = checkHooks(e.plugin.name, made)
    } catch (err) {
      const reason = (err as Error)?.message ?? String(err)
      const inner = err instanceof GatewayError ? err.details.map((d) => `${e.path}: ${d}`) : []
      throw codes.GW_ERR_PLUGIN_CREATE(e.plugin.name, reason, { cause: err, details: [`${e.path}: plugin '${e.plugin.name}' failed in create(): ${reason}`, ...inner] })
    }
    byPath.set(e.path, hooks)
    instances.push({ name: e.plugin.name, hooks })
    return hooks
  }
  const globalClient = createClientIpResolver(config.clientIp)
  // Compared with every route's: written once, not once per route.
  const globalClientJson = JSON.stringify(config.clientIp)
  const strip: ReadonlySet<string> = new Set(identityHeaderNames(config.identity.headers))
  const authnOrder = PHASES.indexOf('authn')
  try {
    const fallbackChain: Array<{ name: string, hooks: PluginHooks }> = []
    for (const e of globalPipeline(config, plugins)) fallbackChain.push({ name: e.plugin.name, hooks: await instantiate(e, undefined) })
    for (let ri = 0; ri < config.routes.length; ri++) {
      const route = config.routes[ri] as RouteConfig
      const chain: Array<{ name: string, hooks: PluginHooks }> = []
      const entries = pipelineFor(config, ri, plugins)
      for (const e of entries) chain.push({ name: e.plugin.name, hooks: await instantiate(e, route.name) })
      // A route that authenticates gets the auth gate right after its authn plugins.
      if (route.anonymous !== undefined || entries.some((e) => e.plugin.authenticates === true)) {
        const anonymous = route.anonymous === undefined ? undefined : consumersOf(config).byId.get(route.anonymous)
        const gate = createAuthGate(anonymous, config.identity.headers)
        const at = entries.findIndex((e) => PHASES.indexOf(e.plugin.phase) > authnOrder)
        chain.splice(at === -1 ? chain.length : at, 0, { name: 'gateway', hooks: { onRequest: gate as unknown as (ctx: RequestContext) => void } })
      }
      const spec = upstreamSpec(route.upstream)
      const targets = spec.targets
      const rewrite = route.rewrite === undefined ? undefined : { re: compileRewrite(route.rewrite.pattern), replacement: route.rewrite.replacement }
      let proxy: ProxyRoute | undefined
      // Read in the dry run too, so a missing CA file refuses the config.
      let upstreamTls
      try {
        upstreamTls = upstreamConnectTls(upstreamTlsOf(route), msg.configDir)
      } catch (err) {
        throw codes.GW_ERR_CONFIG_INVALID(msg.configDir, 1, { details: [`/routes/${ri}/upstream/tls/ca: ${(err as Error).message}`] })
      }
      if (opts.mode === 'worker' && opts.pools !== undefined) {
        const connections = connectionsPerPool(spec, config.workers)
        const built = targets.map((t): Target => {
          const u = targetUrl(t.url)
          const tls = u.https ? upstreamTls : undefined
          const pool = opts.pools?.get(u.origin, { connections, connectTimeout: route.timeouts.connect, ...(tls === undefined ? {} : { tls }) })
          if (pool === undefined) throw new Error('no pool registry')
          pools.add(pool)
          return { origin: u.origin, url: t.url, basePath: u.basePath, host: u.host, pool }
        })
        const shared: SharedUpstream = msg.upstreams?.[route.name] ?? createSharedUpstream(targets.length)
        const state = new UpstreamState(shared, spec.passive, spec.breaker, spec.retries)
        proxy = {
          targets: built,
          balancer: balancerFor(spec, state),
          state,
          retries: spec.retries,
          bufferBody: spec.bufferBody,
          preserveHost: route.preserveHost,
          hostHeader: route.hostHeader,
          stripSegments: route.stripPrefix ? segmentsOf(route.match.path) : 0,
          rewrite,
          connectTimeout: route.timeouts.connect,
          headersTimeout: route.timeouts.headers,
          bodyTimeout: route.timeouts.body,
          totalTimeout: route.timeouts.total,
          proto: 'http',
          strip,
          maxBodySize: route.maxBodySize,
          bodyIdleTimeout: config.limits.bodyIdleTimeout ?? HTTP_DEFAULTS.bodyIdleTimeout
        }
      }
      const info: RouteInfo = Object.freeze({ name: route.name, upstream: targets.map((t) => t.url).join(',') })
      const hosts = route.match.host === undefined ? undefined : (Array.isArray(route.match.host) ? route.match.host : [route.match.host])
      // Routes that keep the global client-IP settings share the global resolver.
      const sameClient = route.clientIp === config.clientIp || JSON.stringify(route.clientIp) === globalClientJson
      const client = sameClient ? globalClient : createClientIpResolver(route.clientIp)
      const httpsPort = route.redirectToHttps === undefined || route.redirectToHttps === false ? undefined : (route.redirectToHttps === true ? 443 : route.redirectToHttps.port ?? 443)
      defs.push({ path: route.match.path, exact: route.match.exact, caseInsensitive: route.match.caseInsensitive, methods: route.match.methods, hosts, value: { info, pipeline: composePipeline(chain), proxy, client, websocket: route.websocket, httpsPort, metricsBlock: threadMetrics().routeBlock(route.name) } })
    }
    const observer = new Observer(config, msg.configDir, opts.log, opts.mode === 'worker')
    return { number: msg.number, config, router: new Router(defs), fallback: composePipeline(fallbackChain), client: globalClient, instances, pools, websocket: config.routes.some((r) => r.websocket !== undefined), observer, noRouteBlock: threadMetrics().noRoute, tls: msg.tls }
  } catch (err) {
    await closeInstances(instances, opts.log)
    throw err
  }
}

/** Retire a generation's plugin instances; a failing close() is logged, not thrown. */
export async function closeInstances (instances: Generation['instances'], log: Logger): Promise<void> {
  for (const { name, hooks } of instances) {
    try {
      await hooks.close?.()
    } catch (err) {
      log.error({ err, plugin: name }, 'plugin close() failed')
    }
  }
}

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { STATUS_CODES } from 'node:http'
import { pino } from 'pino'
import type { Logger } from 'pino'
import type { PluginRef } from './config-schema.js'
import { newOutcome } from './context.js'
import { parseCidr } from './ip/parse.js'
import { writeIpTable } from './ip/table-writer.js'
import { createSharedMemory, loadHotPath } from './shared-memory.js'
import type { HotPath } from './shared-memory.js'
import { codes } from './errors.js'
import { checkHooks } from './plugin.js'
import type { Plugin } from './plugin.js'
import { checkPluginConfig } from './plugin-loader.js'
import type { ResponseTap } from './upstream/response-tap.js'
import type { AuthFailure, ClientInfo, Consumer, ConsumerIdentity, PluginHooks, ReplyOptions, RequestContext, RequestOutcome, ResponseHeaderMode, RouteInfo, TlsInfo } from './types.js'
import type { ConsumerConfig, GatewayConfig } from './config-schema.js'
import { makeConsumer, mergeResponseHeaders } from './context.js'
import { keyDigest } from './config.js'

/** A made-up request for the harness. Every field is optional. */
export interface FakeRequest {
  method?: string
  path?: string
  query?: string
  headers?: Record<string, string | string[]>
  client?: string
  route?: string
  params?: Record<string, string>
  /** The consumer an earlier authn plugin established (for authz plugins); `anonymous: true`
   *  makes it the route's anonymous consumer. */
  consumer?: ConsumerIdentity & { anonymous?: boolean }
  /** The request body, for plugins that read it with `ctx.readBody()`. */
  body?: string | Uint8Array
  /** The connection's TLS (a TLS listener; mtls-auth reads `peerCertificate`); plain HTTP when absent. */
  tls?: TlsInfo
}

/** What the plugin did with the request. */
export interface HarnessResult {
  /** True when the plugin answered instead of letting the request through. */
  replied: boolean
  status: number | undefined
  /** The reply's problem+json object (or raw body) when it replied. */
  body: Record<string, unknown> | string | undefined
  /** The reply's options as the plugin gave them. */
  reply: ReplyOptions | undefined
  /** Headers set on the client's response (reply or proxied). */
  responseHeaders: Record<string, string | number | readonly string[]>
  /** The request headers as they would go upstream (lower-case names). */
  upstreamHeaders: Record<string, string>
  /** The query string as it would go upstream. */
  upstreamQuery: string
  /** The consumer an authn plugin authenticated, if any. */
  consumer: Consumer | undefined
  /** What an authn plugin reported with `ctx.authFailed()`. */
  authFailures: AuthFailure[]
  ctx: RequestContext
}

export interface Harness {
  /** Run the plugin's onRequest on a made-up request. */
  request: (req?: FakeRequest) => Promise<HarnessResult>
  /** Run onResponse as if the upstream answered `status` with `headers`. */
  respond: (result: HarnessResult, status?: number, headers?: OutgoingHttpHeaders) => { status: number, headers: OutgoingHttpHeaders }
  /** Run onLog with the outcome so far. */
  log: (result: HarnessResult) => void
  /** Call the instance's close(). */
  close: () => Promise<void>
  hooks: PluginHooks
}

/*
 * The harness's own shared memory, made on first use: plugins that use the WASM tables
 * (ip-filter, rate-limit) run against the real module. Every harness in a process adds its
 * IP sets to one list, rewritten whole into region B (never made live, so always writable);
 * set ids are positions in that list, so harnesses never see each other's sets.
 */
const HARNESS_REGION = 1
let harnessShared: Promise<{ memory: WebAssembly.Memory, hotPath: HotPath }> | undefined
const harnessSets: Array<readonly string[]> = []

function harnessMemory (): Promise<{ memory: WebAssembly.Memory, hotPath: HotPath }> {
  harnessShared ??= (async () => {
    const memory = createSharedMemory()
    return { memory, hotPath: await loadHotPath(memory) }
  })()
  return harnessShared
}

async function runPrepareFor (plugin: Plugin, ref: PluginRef, shared: { memory: WebAssembly.Memory }): Promise<unknown> {
  if (plugin.prepare === undefined) return undefined
  const problems: string[] = []
  const mine: Array<readonly string[]> = []
  const prepared = await plugin.prepare(ref.config, {
    log: pino({ level: 'silent' }),
    route: 'test',
    configDir: process.cwd(),
    path: '',
    ipSet (cidrs, pointer = '') {
      cidrs.forEach((c, i) => {
        try { parseCidr(c) } catch (err) { problems.push(`${pointer}/${i}: ${(err as Error).message}`) }
      })
      mine.push(cidrs)
      return harnessSets.length + mine.length - 1
    }
  })
  // Only a valid harness adds its sets: a bad list must not break the next harness's table.
  if (problems.length > 0) throw codes.GW_ERR_CONFIG_INVALID(`${plugin.name} config`, problems.length, { details: problems })
  harnessSets.push(...mine)
  writeIpTable(shared.memory, HARNESS_REGION, harnessSets)
  return prepared
}

class FakeContext implements RequestContext {
  readonly method: string
  readonly path: string
  readonly query: string
  readonly headers: IncomingHttpHeaders
  readonly client: ClientInfo
  readonly tls: TlsInfo | undefined
  readonly route: RouteInfo
  readonly params: Readonly<Record<string, string | undefined>>
  id = ''
  readonly generation = 1
  readonly state: Record<string, unknown> = {}
  readonly outcome: RequestOutcome = newOutcome()
  readonly trace = undefined
  readonly log: Logger
  replyOptions: ReplyOptions | undefined
  upstream: Record<string, string>
  response: Record<string, string | number | readonly string[]> = {}
  #replied = false
  readonly #start = performance.now()

  readonly plugin: string
  consumer: Consumer | undefined
  authFailures: AuthFailure[] = []
  upstreamQuery: string
  readonly #distinct: Record<string, string[]> = {}
  readonly #body: Buffer

  constructor (req: FakeRequest, plugin: string, log: Logger) {
    this.plugin = plugin
    this.tls = req.tls
    this.method = (req.method ?? 'GET').toUpperCase()
    this.path = req.path ?? '/'
    this.query = req.query ?? ''
    this.upstreamQuery = this.query
    this.#body = req.body === undefined ? Buffer.alloc(0) : Buffer.from(req.body)
    const headers: IncomingHttpHeaders = { host: 'gateway.test' }
    for (const [k, v] of Object.entries(req.headers ?? {})) {
      headers[k.toLowerCase()] = v
      this.#distinct[k.toLowerCase()] = Array.isArray(v) ? v : [v]
    }
    this.headers = headers
    this.upstream = {}
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) this.upstream[k] = Array.isArray(v) ? v.join(', ') : v
    const ip = req.client ?? '127.0.0.1'
    this.client = { ip, port: 40000, peerIp: ip }
    this.route = { name: req.route ?? 'test', upstream: 'http://upstream.test' }
    this.params = req.params ?? {}
    this.log = log.child({ plugin })
    if (req.consumer !== undefined) this.consumer = makeConsumer(req.consumer, req.consumer.anonymous === true ? 'gateway' : 'test', req.consumer.anonymous === true)
  }

  get replied (): boolean { return this.#replied }
  elapsed (): number { return performance.now() - this.#start }
  reply (status: number, options?: ReplyOptions): void {
    if (this.#replied) return
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`reply(): status must be an integer 200-599, got ${status}`)
    this.#replied = true
    this.replyOptions = options
    this.outcome.repliedBy = this.plugin
    this.outcome.status = status
    this.outcome.code = options?.code
    for (const [k, v] of Object.entries(options?.headers ?? {})) this.response[k.toLowerCase()] = v
  }

  /** What the plugin answered with `respond()`: headers and body as given. */
  responded: { headers: OutgoingHttpHeaders, body: Uint8Array | undefined } | undefined
  respond (status: number, headers: OutgoingHttpHeaders, body?: Uint8Array): void {
    if (this.#replied) return
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`respond(): status must be an integer 200-599, got ${status}`)
    this.#replied = true
    this.responded = { headers, body }
    this.outcome.repliedBy = this.plugin
    this.outcome.status = status
  }

  readonly taps: ResponseTap[] = []
  tapResponse (tap: ResponseTap): void { this.taps.push(tap) }

  readBody (limit: number): Promise<Buffer | undefined> {
    const body = this.#body
    if (body.length > limit) {
      this.reply(413, { code: codes.GW_BODY_TOO_LARGE.code, detail: `the request body is larger than ${limit} bytes` })
      return Promise.resolve(undefined)
    }
    return Promise.resolve(body)
  }

  authenticate (identity: ConsumerIdentity): void { this.consumer ??= makeConsumer(identity, this.plugin, false) }
  authFailed (failure: AuthFailure): void { this.authFailures.push(failure) }
  headerValues (name: string): readonly string[] { return this.#distinct[name.toLowerCase()] ?? [] }
  setUpstreamQuery (query: string): void { this.upstreamQuery = query }
  setUpstreamHeader (name: string, value: string): void { this.upstream[name.toLowerCase()] = value }
  removeUpstreamHeader (name: string): void { this.upstream = Object.fromEntries(Object.entries(this.upstream).filter(([k]) => k !== name.toLowerCase())) }
  readonly modes = new Map<string, ResponseHeaderMode>()
  setResponseHeader (name: string, value: string | number | readonly string[], mode: ResponseHeaderMode = 'set'): void {
    const key = name.toLowerCase()
    this.response[key] = value
    if (mode === 'set') this.modes.delete(key)
    else this.modes.set(key, mode)
  }
}

export interface HarnessOptions {
  log?: Logger
  /** The gateway's `listen` block as plugins see it (mtls-auth needs `tls.clientCertificates`). */
  listen?: GatewayConfig['listen']
  /** The gateway's `consumers:` (plain `key`s are hashed as the gateway does). */
  consumers?: Array<{ id: string, groups?: string[], scopes?: string[], credentials?: { keys?: Array<{ key?: string, digest?: string, name?: string }>, subjects?: Array<{ issuer: string, subject: string }>, certificates?: Array<{ subject?: string, san?: string }> } }>
}

function harnessConsumers (list: NonNullable<HarnessOptions['consumers']>): ConsumerConfig[] {
  return list.map((c) => ({
    id: c.id,
    groups: c.groups ?? [],
    scopes: c.scopes ?? [],
    credentials: {
      keys: (c.credentials?.keys ?? []).map((k) => ({ digest: k.digest ?? keyDigest(k.key ?? ''), name: k.name })),
      subjects: c.credentials?.subjects ?? [],
      certificates: c.credentials?.certificates ?? []
    }
  }))
}

/**
 * Run one plugin against made-up requests, with no server and no threads: the config is
 * checked against the plugin's schema (defaults filled in, GW_ERR_CONFIG_INVALID with every
 * problem otherwise), `create()` runs once, and each `request()` runs `onRequest`.
 *
 * ```ts
 * const h = await createPluginHarness(myPlugin, { header: 'x-tenant' })
 * const r = await h.request({ headers: {} })
 * t.equal(r.status, 400)
 * ```
 */
export async function createPluginHarness<C> (plugin: Plugin<C>, config: Record<string, unknown> = {}, opts: HarnessOptions = {}): Promise<Harness> {
  const shared = await harnessMemory()
  const ref: PluginRef = { name: plugin.name, enabled: true, config: structuredClone(config) }
  const problems = checkPluginConfig(plugin as unknown as Plugin, ref, '')
  if (problems.length > 0) throw codes.GW_ERR_CONFIG_INVALID(`${plugin.name} config`, problems.length, { details: problems.map((p) => p.replace(/^\/config/, '').replace(/^:/, '/:')) })
  const log = opts.log ?? pino({ level: 'silent' })
  // prepare() runs as the acceptor would run it, its IP sets written to the harness's own
  // shared memory, so plugins that use the WASM tables work here too.
  const prepared = await runPrepareFor(plugin as unknown as Plugin, ref, shared)
  const gateway: GatewayConfig = {
    listen: opts.listen ?? { host: '127.0.0.1', port: 0 },
    workers: 1,
    logLevel: 'silent',
    limits: {} as never,
    timeouts: { connect: 5000, headers: 30000, body: 30000, total: 0 },
    clientIp: { trustedProxies: [], header: 'x-forwarded-for', hops: 0 },
    counters: { entries: 2097152 },
    admin: { enabled: false, host: '127.0.0.1', port: 0, tokens: [], stateDir: '.tollgate', keepVersions: 50, responseGenerationHeader: false, metricsWithoutToken: false },
    metrics: { enabled: true },
    tracing: { propagate: true },
    securityLog: {},
    consumers: harnessConsumers(opts.consumers ?? []),
    identity: { headers: { id: 'X-Consumer-Id', groups: 'X-Consumer-Groups', scope: 'X-Authenticated-Scope', anonymous: 'X-Anonymous-Consumer' } },
    plugins: [ref],
    routes: []
  }
  const hooks = checkHooks(plugin.name, await plugin.create(ref.config as never, {
    prepared,
    shared: { hotPath: shared.hotPath, ipRegion: HARNESS_REGION },
    log, generation: 1, mode: 'worker', route: 'test', configDir: process.cwd(), gateway
  }))

  return {
    hooks,
    async request (req = {}) {
      const ctx = new FakeContext(req, plugin.name, log)
      await hooks.onRequest?.(ctx)
      let body: HarnessResult['body']
      if (ctx.responded !== undefined) {
        body = Buffer.from(ctx.responded.body ?? new Uint8Array(0)).toString()
        Object.assign(ctx.response, ctx.responded.headers)
      } else if (ctx.replied) {
        const o = ctx.replyOptions
        body = o?.body !== undefined
          ? (typeof o.body === 'string' ? o.body : Buffer.from(o.body).toString())
          : { type: o?.type ?? 'about:blank', title: o?.title ?? STATUS_CODES[ctx.outcome.status], status: ctx.outcome.status, ...(o?.detail !== undefined ? { detail: o.detail } : {}), ...(o?.code !== undefined ? { code: o.code } : {}) }
      }
      return { replied: ctx.replied, status: ctx.replied ? ctx.outcome.status : undefined, body, reply: ctx.replyOptions, responseHeaders: ctx.response, upstreamHeaders: ctx.upstream, upstreamQuery: ctx.upstreamQuery, consumer: ctx.consumer, authFailures: ctx.authFailures, ctx }
    },
    respond (result, status = 200, headers = {}) {
      // The request's response headers meet the upstream's as the proxy merges them.
      const merged: OutgoingHttpHeaders = { ...headers }
      mergeResponseHeaders(merged, result.responseHeaders, (result.ctx as FakeContext).modes)
      const info = { status, headers: merged }
      hooks.onResponse?.(result.ctx, info)
      result.ctx.outcome.status = info.status
      return info
    },
    log (result) {
      if (result.ctx.outcome.status === 0) result.ctx.outcome.status = result.status ?? 200
      hooks.onLog?.(result.ctx)
    },
    async close () { await hooks.close?.() }
  }
}

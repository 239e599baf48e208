import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { codes } from './errors.js'
import { closeAfter } from './http-server.js'
import type { Pipeline } from './pipeline.js'
import { runResponseHooks } from './pipeline.js'
import { sendReply } from './problem.js'
import { tapAbort } from './upstream/response-tap.js'
import type { ResponseTap } from './upstream/response-tap.js'
import { connectionTls } from './tls/connection.js'
import type { ResolvedClient } from './client-ip.js'
import type { TraceContext } from './tracing/traceparent.js'
import type { AuthFailure, Consumer, ConsumerIdentity, ReplyOptions, RequestContext, RequestOutcome, ResponseHeaderMode, RouteInfo, TlsInfo } from './types.js'

/** A fresh outcome record: what a request's log hooks read at the end. */
export function newOutcome (): RequestOutcome {
  return { status: 0, bytesOut: 0, bytesIn: 0, upstream: undefined, upstreamMs: undefined, repliedBy: undefined, code: undefined, aborted: false }
}

const NO_ROUTE: RouteInfo = Object.freeze({ name: '', upstream: '' })
const joined = (v: unknown): string => (Array.isArray(v) ? v.join(', ') : String(v))

/** Put a request's response headers onto the upstream's, each by its mode (ResponseHeaderMode). */
export function mergeResponseHeaders (upstream: OutgoingHttpHeaders, mine: Readonly<Record<string, string | number | readonly string[]>>, modes: ReadonlyMap<string, ResponseHeaderMode> | undefined): void {
  for (const k in mine) {
    const v = mine[k] as string | number | readonly string[]
    const mode = modes?.get(k)
    const theirs = upstream[k]
    if (mode === undefined || theirs === undefined) upstream[k] = v as string
    else if (mode === 'append') upstream[k] = `${joined(theirs)}, ${joined(v)}`
    // 'default': the upstream's stays.
  }
}

/** An authn plugin's failure, with the plugin that reported it. */
export interface ReportedFailure extends AuthFailure { plugin: string }

const EMPTY_BODY = Buffer.alloc(0)
const NO_VALUES: readonly string[] = Object.freeze([])
const EMPTY: readonly string[] = Object.freeze([])
const NO_CLAIMS = Object.freeze({})

/** A consumer record from what a plugin said; a plugin bug (no id) fails the request. */
export function makeConsumer (identity: ConsumerIdentity, via: string, anonymous: boolean): Consumer {
  if (typeof identity?.id !== 'string' || identity.id === '') throw new TypeError(`authenticate(): the consumer id must be a non-empty string (plugin '${via}')`)
  return Object.freeze({
    id: identity.id,
    groups: identity.groups ?? EMPTY,
    scopes: identity.scopes ?? EMPTY,
    claims: identity.claims ?? NO_CLAIMS,
    anonymous,
    via
  })
}

const NO_PARAMS: Readonly<Record<string, string | undefined>> = Object.freeze({})

/**
 * The per-request context: one object per request, created by the worker's request handler
 * and passed to every hook. Upstream header edits are kept aside and applied when the
 * proxy builds the upstream request, after hop-by-hop headers are gone.
 */
export class Context implements RequestContext {
  readonly method: string
  readonly path: string
  readonly query: string
  readonly headers: IncomingHttpHeaders
  readonly client: ResolvedClient
  route: RouteInfo = NO_ROUTE
  params: Readonly<Record<string, string | undefined>> = NO_PARAMS
  id = ''
  readonly generation: number
  readonly state: Record<string, unknown> = {}
  readonly outcome: RequestOutcome = newOutcome()
  /** W3C trace of this request (undefined with tracing.propagate off). */
  trace: TraceContext | undefined
  /** Plugin hook timings for the exported span, as flat (name, start, end) triples; only
   *  kept when the span will be exported. */
  hookTimes: Array<string | number> | undefined
  /** Name of the plugin whose hook is running, for `outcome.repliedBy`. */
  current = 'gateway'
  /** Failures the authn plugins reported, for the auth gate's answer. */
  authFailures: ReportedFailure[] | undefined
  /** The query string to send upstream, when a plugin replaced it. */
  #upstreamQuery: string | undefined
  upstreamSet: Map<string, string> | undefined
  upstreamRemove: Set<string> | undefined
  responseHeaders: Record<string, string | number | readonly string[]> | undefined
  /** Headers set with a mode other than 'set'. */
  responseHeaderModes: Map<string, ResponseHeaderMode> | undefined
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly #start: number
  readonly #baseLog: Logger
  #log: Logger | undefined
  #replied = false
  #consumer: Consumer | undefined

  /** The worker's flags; `draining` makes every response close its connection. */
  readonly #worker: { readonly draining: boolean }

  constructor (req: IncomingMessage, res: ServerResponse, path: string, query: string, client: ResolvedClient, generation: number, log: Logger, start: number, worker: { readonly draining: boolean }) {
    this.#worker = worker
    this.req = req
    this.res = res
    this.method = req.method as string
    this.path = path
    this.query = query
    this.headers = req.headers
    this.client = client
    this.generation = generation
    this.#baseLog = log
    this.#start = start
  }

  get replied (): boolean { return this.#replied }

  /** Read from the socket on first use (once per connection, see tls/connection.ts). */
  get tls (): TlsInfo | undefined { return connectionTls(this.req.socket) }

  get consumer (): Consumer | undefined { return this.#consumer }

  authenticate (identity: ConsumerIdentity): void {
    if (this.#consumer !== undefined) return
    this.#consumer = makeConsumer(identity, this.current, false)
  }

  /** The auth gate's: the route's anonymous consumer. */
  setAnonymous (identity: ConsumerIdentity): void {
    if (this.#consumer === undefined) this.#consumer = makeConsumer(identity, 'gateway', true)
  }

  authFailed (failure: AuthFailure): void {
    (this.authFailures ??= []).push({ ...failure, plugin: this.current })
  }

  headerValues (name: string): readonly string[] {
    // A scan of the raw lines for the one name: req.headersDistinct would build arrays for
    // every header of the request (measured ~2 µs more per request).
    const want = name.toLowerCase()
    const raw = this.req.rawHeaders
    let out: string[] | undefined
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i] as string
      if (n.length === want.length && (n === want || n.toLowerCase() === want)) (out ??= []).push(raw[i + 1] as string)
    }
    return out ?? NO_VALUES
  }

  /** The route's body limits, which ctx.readBody() applies besides the plugin's own. */
  bodyLimits: { maxBytes: number, idleMs: number } | undefined
  /** The body, once a plugin read it: the proxy sends this instead of streaming. */
  bodyBuffer: Buffer | undefined
  #bodyRead: Promise<Buffer | undefined> | undefined

  readBody (limit: number): Promise<Buffer | undefined> {
    this.#bodyRead ??= this.#readBody(limit)
    return this.#bodyRead
  }

  #readBody (pluginLimit: number): Promise<Buffer | undefined> {
    const req = this.req
    const limit = Math.min(pluginLimit, this.bodyLimits?.maxBytes ?? Number.POSITIVE_INFINITY)
    const idleMs = this.bodyLimits?.idleMs
    const te = this.headers['transfer-encoding']
    const cl = this.headers['content-length']
    if (te === undefined && (cl === undefined || cl === '0')) {
      this.bodyBuffer = EMPTY_BODY
      return Promise.resolve(EMPTY_BODY)
    }
    const tooLarge = (): undefined => {
      // The rest of the body is not read: the connection cannot be reused.
      closeAfter(this.res)
      this.gatewayReply(413, codes.GW_BODY_TOO_LARGE.code, `the request body is larger than ${limit} bytes`)
      return undefined
    }
    if (cl !== undefined && Number(cl) > limit) return Promise.resolve(tooLarge())
    return new Promise((resolve) => {
      const chunks: Buffer[] = []
      let size = 0
      // A client that stops sending mid-body gets 408 after the route's idle time.
      let idle: NodeJS.Timeout | undefined
      const arm = (): void => {
        if (idleMs === undefined || idleMs <= 0) return
        if (idle === undefined) idle = setTimeout(onIdle, idleMs)
        else idle.refresh()
      }
      const onIdle = (): void => {
        req.pause()
        closeAfter(this.res)
        this.gatewayReply(408, codes.GW_REQUEST_TIMEOUT.code, `no request body bytes for ${idleMs as number} ms`)
        settle(undefined)
      }
      const settle = (v: Buffer | undefined): void => {
        if (idle !== undefined) clearTimeout(idle)
        req.off('data', onData)
        req.off('end', onEnd)
        req.off('error', onError)
        req.off('aborted', onAborted)
        resolve(v)
      }
      const onData = (c: Buffer): void => {
        arm()
        size += c.length
        if (size > limit) {
          req.pause()
          settle(tooLarge())
          return
        }
        chunks.push(c)
      }
      const onEnd = (): void => {
        this.bodyBuffer = chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, size)
        this.outcome.bytesIn = size
        settle(this.bodyBuffer)
      }
      const onError = (): void => {
        closeAfter(this.res)
        this.gatewayReply(400, codes.GW_BAD_REQUEST.code, 'the request body did not match its framing')
        settle(undefined)
      }
      const onAborted = (): void => settle(undefined)
      arm()
      req.on('data', onData)
      req.once('end', onEnd)
      req.once('error', onError)
      req.once('aborted', onAborted)
    })
  }

  get upstreamQuery (): string { return this.#upstreamQuery ?? this.query }

  setUpstreamQuery (query: string): void {
    this.#upstreamQuery = query
  }

  /** Called just before response headers go out, by replies and by the proxy alike. */
  beforeHeaders (): void {
    // Draining: tell keep-alive clients this connection ends with this response.
    if (this.#worker.draining) closeAfter(this.res)
  }

  /** A child logger is made only when a hook asks for it (most requests never log). */
  get log (): Logger {
    this.#log ??= this.#baseLog.child({ reqId: this.id, route: this.route.name })
    return this.#log
  }

  elapsed (): number { return performance.now() - this.#start }

  /** When the request arrived (performance.now()). */
  get startedAt (): number { return this.#start }

  reply (status: number, options?: ReplyOptions): void {
    if (this.#replied) return
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`reply(): status must be an integer 200-599, got ${status}`)
    this.#replied = true
    this.outcome.repliedBy = this.current
    this.outcome.code = options?.code
    this.outcome.status = status
    if (this.res.headersSent || this.res.destroyed) return
    this.beforeHeaders()
    this.outcome.bytesOut = sendReply(this.res, status, options, this.responseHeaders)
  }

  /** The gateway's own replies (404, 502...): same path as a plugin's, attributed to 'gateway'. */
  gatewayReply (status: number, code: string, detail?: string, headers?: Record<string, string>): void {
    this.current = 'gateway'
    this.reply(status, { code, detail, headers })
  }

  setUpstreamHeader (name: string, value: string): void {
    const key = name.toLowerCase()
    this.upstreamRemove?.delete(key)
    ;(this.upstreamSet ??= new Map()).set(key, value)
  }

  removeUpstreamHeader (name: string): void {
    const key = name.toLowerCase()
    this.upstreamSet?.delete(key)
    ;(this.upstreamRemove ??= new Set()).add(key)
  }

  setResponseHeader (name: string, value: string | number | readonly string[], mode: ResponseHeaderMode = 'set'): void {
    // Kept aside and applied once, by the reply or by the proxy's writeHead.
    const key = name.toLowerCase()
    ;(this.responseHeaders ??= {})[key] = value
    if (mode !== 'set') (this.responseHeaderModes ??= new Map()).set(key, mode)
    else this.responseHeaderModes?.delete(key)
  }

  /** The route's response hooks, for answers a plugin makes with `respond()`. */
  responseHooks: Pipeline['onResponse'] | undefined
  /** Observers of the proxied response (response-tap.ts); undefined until one is added. */
  responseTaps: Array<ResponseTap | undefined> | undefined

  tapResponse (tap: ResponseTap): void {
    if (this.responseTaps === undefined) {
      this.responseTaps = []
      // Whatever ends the exchange (an upstream error, the client leaving, a gateway reply
      // before anything was proxied), a tap that did not hear `end` hears `abort`.
      this.res.once('close', () => tapAbort(this, this.res.writableFinished ? 'the response ended without an upstream body' : 'the client connection closed'))
    }
    this.responseTaps.push(tap)
  }

  respond (status: number, headers: OutgoingHttpHeaders, body?: Uint8Array): void {
    if (this.#replied) return
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`respond(): status must be an integer 200-599, got ${status}`)
    const info = { status, headers: { ...headers } }
    this.applyResponseHeaders(info.headers)
    // As for a proxied response: CORS, security headers... A throw here is the plugin's 500.
    const who = this.current
    if (this.responseHooks !== undefined) runResponseHooks(this, this.responseHooks, info)
    this.current = who
    this.#replied = true
    this.outcome.repliedBy = who
    this.outcome.status = info.status
    if (this.res.headersSent || this.res.destroyed) return
    this.beforeHeaders()
    const h = info.headers
    delete h['content-length']
    delete h['transfer-encoding']
    // 204 and 304 have no content (RFC 9110 §15.3.5, §15.4.5).
    const empty = info.status === 204 || info.status === 304
    const length = empty ? 0 : body?.byteLength ?? 0
    if (!empty) h['content-length'] = length
    try {
      this.res.writeHead(info.status, h)
    } catch (err) {
      // A header Node refuses (a bad character): nothing was sent, so the 500 still can be.
      this.#replied = false
      throw err
    }
    this.res.end(this.method === 'HEAD' || empty ? undefined : body)
    this.outcome.bytesOut = this.method === 'HEAD' ? 0 : length
  }

  /** Put this request's response headers onto the upstream's, each by its mode. */
  applyResponseHeaders (upstream: OutgoingHttpHeaders): void {
    if (this.responseHeaders !== undefined) mergeResponseHeaders(upstream, this.responseHeaders, this.responseHeaderModes)
  }
}

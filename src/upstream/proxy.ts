import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import type { Dispatcher, Pool } from 'undici'
import type { Context } from '../context.js'
import { codes } from '../errors.js'
import { connectionNominated, HOP_BY_HOP } from '../headers.js'
import { closeAfter, onParseFailure } from '../http-server.js'
import type { Pipeline } from '../pipeline.js'
import { runResponseHooks } from '../pipeline.js'
import type { Balancer } from './balancer.js'
import { acceptsTrailers, announcedTrailers, forwardableTrailers } from './trailers.js'

/** One upstream target as a route uses it. */
export interface Target {
  origin: string
  /** Path prefix from the upstream URL (`http://h/api` -> `/api`), '' for none. */
  basePath: string
  /** `host[:port]` of the upstream URL, sent as Host unless the route preserves the client's. */
  host: string
  pool: Pool
}

export interface ProxyRoute {
  balancer: Balancer<Target>
  preserveHost: boolean
  /** Segments to strip from the front of the path (0: none). */
  stripSegments: number
  headersTimeout: number
  bodyTimeout: number
  proto: 'http' | 'https'
  /** Client headers never passed on (lower-case): the identity headers the gateway sets. */
  strip: ReadonlySet<string>
  /** Bytes of request body accepted (413 above). */
  maxBodySize: number
  /** Longest pause in a request body the gateway waits for (408). */
  bodyIdleTimeout: number
}

// Headers the gateway sets itself: whatever the client sent under these names is replaced,
// never passed through, so a client cannot forge them.
const GATEWAY_SET = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip', 'forwarded'])
// Never passed on either: `Proxy` is read as HTTP_PROXY by CGI-style upstreams (httpoxy);
// `Expect` was answered here (100 Continue is the gateway's to send).
const NOT_FORWARDED = new Set(['proxy', 'expect'])

export function queryPart (q: string): string {
  return q === '' ? '' : '?' + q
}

export function stripPath (path: string, segments: number): string {
  let i = 0
  for (let s = 0; s < segments; s++) {
    const next = path.indexOf('/', i + 1)
    if (next === -1) return '/'
    i = next
  }
  return path.slice(i)
}

/**
 * Request headers for upstream: hop-by-hop and nominated ones out, the gateway's own in.
 * undefined when the client's headers would still carry two Authorization lines: Node keeps
 * the first for the policies, an upstream may read the last (CHECKLIST A24). This is checked
 * here rather than before the pipeline so an authn plugin gives its own answer first
 * (AMBIGUOUS_CREDENTIALS); on a route without one, the gateway refuses.
 */
export function upstreamHeaders (ctx: Context, target: Target, route: ProxyRoute): string[] | undefined {
  const raw = ctx.req.rawHeaders
  const nominated = connectionNominated(ctx.headers.connection)
  const out: string[] = []
  const set = ctx.upstreamSet
  const removed = ctx.upstreamRemove
  let authorization = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || GATEWAY_SET.has(lower) || NOT_FORWARDED.has(lower) || route.strip.has(lower)) continue
    if (nominated?.has(lower) === true) continue
    if (removed?.has(lower) === true || set?.has(lower) === true) continue
    if (lower === 'authorization' && ++authorization > 1) return undefined
    out.push(name, raw[i + 1] as string)
  }
  // TE is hop-by-hop; of the client's, only `trailers` is passed on (trailers.ts).
  if (acceptsTrailers(ctx.req)) out.push('te', 'trailers')
  // Client-nominated headers are gone before these are added (CHECKLIST A26).
  // The chain as far as it can be believed (client-ip.ts): from an untrusted peer, the peer
  // alone; whatever the client claimed in X-Real-IP or Forwarded is dropped above.
  out.push('x-forwarded-for', ctx.client.forwardedFor)
  out.push('x-real-ip', ctx.client.ip)
  out.push('x-forwarded-proto', route.proto)
  out.push('x-forwarded-port', String(ctx.req.socket.localPort ?? ''))
  const host = ctx.headers.host
  if (host !== undefined) out.push('x-forwarded-host', host)
  out.push('host', route.preserveHost && host !== undefined ? host : target.host)
  if (set !== undefined) for (const [k, v] of set) out.push(k, v)
  return out
}

/** Why a guarded request body was cut short ('broken': the parser refused what followed). */
type Cut = 'too-large' | 'idle' | 'broken' | undefined

/**
 * The client's request body on its way to undici: counts bytes against the route's limit
 * (CHECKLIST B6: a chunked body, or one whose Content-Length was within the limit, cut
 * mid-stream) and times out a client that stops sending (B4). It never destroys the
 * IncomingMessage (that would destroy the socket before the 413/408 could be written); it
 * stops reading it and fails itself, so undici aborts the upstream request before its body
 * is complete: the upstream never receives a whole request the gateway refused.
 *
 * The idle timer runs only while the gateway is waiting for the client: when undici is not
 * taking bytes (back-pressure, no free upstream connection yet), the client is not late.
 *
 * Each piece is passed on a microtask later, once the parser has finished the packet it came
 * in: a packet whose body is followed by a framing error (`5\r\nhelloXX`) then never gets its
 * first bytes out, and undici, which writes the request head with the first body bytes,
 * sends nothing upstream. A framing error in a later packet can only cut a request that is
 * already on its way: the upstream connection is reset before the request is complete.
 */
class GuardedBody extends Readable {
  bytes = 0
  cut: Cut
  /** What the server answered on the raw connection, when the cut is 'broken'. */
  refusal: { status: number, code: string } | undefined
  readonly #src: IncomingMessage
  readonly #limit: number
  readonly #idleMs: number
  #timer: NodeJS.Timeout | undefined
  #ended = false
  readonly #unwatch: () => void

  constructor (src: IncomingMessage, limit: number, idleMs: number) {
    super({ highWaterMark: 65536 })
    this.#src = src
    this.#limit = limit
    this.#idleMs = idleMs
    src.on('data', this.#onData)
    src.once('end', this.#onEnd)
    src.once('error', this.#onError)
    src.once('close', this.#onClose)
    // The parser refused bytes after some of this body: the body will never end. The refusal
    // itself is written by the server's clientError handler.
    this.#unwatch = onParseFailure(src.socket, (status, code) => {
      if (this.#ended) return
      this.refusal = { status, code }
      this.#stop('broken', 'the request body was malformed or late')
    })
    this.#arm()
  }

  #arm (): void {
    if (this.#idleMs <= 0 || this.#ended) return
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onIdle, this.#idleMs)
      this.#timer.unref()
    } else {
      this.#timer.refresh()
    }
  }

  #disarm (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #stop (cut: Cut, message: string): void {
    this.cut = cut
    this.#src.pause()
    this.destroy(new Error(message))
  }

  readonly #onData = (chunk: Buffer): void => {
    this.bytes += chunk.length
    if (this.bytes > this.#limit) {
      this.#stop('too-large', 'request body over the limit')
      return
    }
    queueMicrotask(() => this.#forward(chunk))
  }

  #forward (chunk: Buffer): void {
    if (this.destroyed) return
    const src = this.#src
    if (this.push(chunk)) {
      this.#arm()
    } else {
      src.pause()
      this.#disarm()
    }
  }

  readonly #onEnd = (): void => {
    this.#ended = true
    this.#disarm()
    queueMicrotask(() => { if (!this.destroyed) this.push(null) })
  }

  readonly #onError = (err: Error): void => { this.destroy(err) }

  readonly #onClose = (): void => {
    if (!this.#ended) this.destroy(new Error('the client closed the connection during the request body'))
  }

  readonly #onIdle = (): void => {
    this.#timer = undefined
    this.#stop('idle', 'request body idle timeout')
  }

  override _read (): void {
    if (this.#ended) return
    if (this.#src.isPaused()) this.#src.resume()
    this.#arm()
  }

  override _destroy (err: Error | null, cb: (err?: Error | null) => void): void {
    this.#disarm()
    this.#unwatch()
    const src = this.#src
    src.off('data', this.#onData)
    src.off('end', this.#onEnd)
    src.off('error', this.#onError)
    src.off('close', this.#onClose)
    cb(err)
  }
}

/** Response headers for the client: hop-by-hop and nominated ones out. */
export function clientHeaders (headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const nominated = connectionNominated(headers.connection)
  const out: OutgoingHttpHeaders = {}
  for (const k in headers) {
    if (HOP_BY_HOP.has(k) || nominated?.has(k) === true) continue
    out[k] = headers[k]
  }
  return out
}

/** An upstream response's framing the gateway does not pass on, as an error; undefined when fine. */
class UpstreamFramingError extends Error {
  code = 'GW_UPSTREAM_FRAMING'
  override name = 'UpstreamFramingError'
}

/**
 * undici's parser refuses Content-Length with Transfer-Encoding, but takes `chunked, chunked`
 * and codings it does not decode (`gzip, chunked`, read to the close). The client would get
 * a body framed by the gateway but still in a coding nobody announced (CHECKLIST A31).
 */
function badFraming (headers: IncomingHttpHeaders): UpstreamFramingError | undefined {
  const te = headers['transfer-encoding']
  if (te !== undefined && (typeof te !== 'string' || te.trim().toLowerCase() !== 'chunked')) return new UpstreamFramingError(`upstream Transfer-Encoding '${String(te)}'`)
  const cl = headers['content-length'] as string | string[] | undefined
  if (cl !== undefined && (typeof cl !== 'string' || !/^[0-9]+$/.test(cl))) return new UpstreamFramingError(`upstream Content-Length '${String(cl)}'`)
  return undefined
}

function hasBody (ctx: Context): boolean {
  const h = ctx.headers
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')
}

/**
 * Send the request upstream and stream the answer back, with back-pressure both ways: the
 * request body is the client's IncomingMessage, which undici reads as it can write; the
 * response is paused whenever the client's socket buffer is full and resumed on 'drain'.
 * Nothing is buffered whole. `done` runs once, when the exchange ends either way.
 */
export function proxy (ctx: Context, route: ProxyRoute, pipeline: Pipeline, done: () => void): void {
  const target = route.balancer.pick()
  const res = ctx.res
  const started = performance.now()
  ctx.outcome.upstream = target.origin
  let controller: Dispatcher.DispatchController | undefined
  let finished = false
  let drainHooked = false
  // Response trailers go to a client that asked for them (trailers.ts).
  const trailers = acceptsTrailers(ctx.req)

  const finish = (): void => {
    if (finished) return
    finished = true
    if (guard !== undefined) ctx.outcome.bytesIn = guard.bytes
    done()
  }

  // The client went away: abort upstream so the connection goes back to the pool.
  const onClose = (): void => {
    if (!res.writableFinished) {
      ctx.outcome.aborted = true
      controller?.abort(new Error('client closed the connection'))
      finish()
    }
  }
  res.once('close', onClose)

  const headers = upstreamHeaders(ctx, target, route)
  if (headers === undefined) {
    closeAfter(res)
    ctx.gatewayReply(400, codes.GW_BAD_REQUEST.code, 'more than one Authorization header')
    return
  }
  const path = target.basePath + stripPath(ctx.path, route.stripSegments) + queryPart(ctx.upstreamQuery)
  // A body a plugin read (ctx.readBody) goes from memory; undici frames it with its length.
  // A streamed one goes through the guard (size limit, idle timeout, byte count).
  const guard = ctx.bodyBuffer === undefined && hasBody(ctx) ? new GuardedBody(ctx.req, route.maxBodySize, route.bodyIdleTimeout) : undefined
  const body = ctx.bodyBuffer !== undefined ? (ctx.bodyBuffer.length === 0 ? null : ctx.bodyBuffer) : guard ?? null

  const handler: Dispatcher.DispatchHandler = {
    onRequestStart (c) { controller = c },
    onResponseStart (c, statusCode, headers) {
      if (statusCode < 200) return
      const framing = badFraming(headers)
      if (framing !== undefined) {
        // Aborting a response in progress makes undici destroy that upstream connection.
        c.abort(framing)
        return
      }
      ctx.outcome.upstreamMs = performance.now() - started
      const info = { status: statusCode, headers: clientHeaders(headers) }
      const announced = trailers && headers['content-length'] === undefined && ctx.method !== 'HEAD' && statusCode !== 204 && statusCode !== 304 ? announcedTrailers(headers) : undefined
      if (announced !== undefined) info.headers.trailer = announced
      ctx.applyResponseHeaders(info.headers)
      try {
        runResponseHooks(ctx, pipeline.onResponse, info)
      } catch (err) {
        ctx.log.error({ err, plugin: ctx.current }, 'response hook failed')
        c.abort(err as Error)
        return
      }
      ctx.outcome.status = info.status
      ctx.beforeHeaders()
      res.writeHead(info.status, info.headers)
    },
    onResponseData (c, chunk) {
      ctx.outcome.bytesOut += chunk.length
      if (!res.write(chunk)) {
        c.pause()
        if (!drainHooked) {
          drainHooked = true
          res.on('drain', () => controller?.resume())
        }
      }
    },
    onResponseEnd (_c, upstreamTrailers) {
      const t = trailers ? forwardableTrailers(upstreamTrailers) : undefined
      if (t !== undefined) {
        // Node sends them in the last chunk of a chunked answer, and ignores them otherwise.
        try { res.addTrailers(t) } catch (err) { ctx.log.debug({ err }, 'upstream trailers not passed on') }
      }
      res.end(finish)
    },
    onResponseError (_c, err) {
      failed(ctx, err, guard?.cut, guard?.refusal)
      finish()
    }
  }

  target.pool.dispatch({
    path,
    method: ctx.method as Dispatcher.HttpMethod,
    headers,
    body,
    headersTimeout: route.headersTimeout,
    bodyTimeout: route.bodyTimeout,
    // A request with a body may have been partly sent: never replayed by undici.
    idempotent: body === null && (ctx.method === 'GET' || ctx.method === 'HEAD')
  }, handler)
}

/** Map an upstream failure to the client's answer: 502 / 504, or a reset once bytes went out. */
function failed (ctx: Context, err: Error, cut: Cut, refusal?: { status: number, code: string }): void {
  const res = ctx.res
  if (ctx.outcome.aborted) return
  if (cut === 'broken') {
    // The server already answered on the raw connection (400, 408...) and is closing it.
    ctx.outcome.status = refusal?.status ?? 400
    ctx.outcome.code = refusal?.code ?? codes.GW_BAD_REQUEST.code
    ctx.outcome.aborted = true
    return
  }
  if (cut !== undefined) {
    // The rest of the request body is not read: the connection cannot be reused.
    closeAfter(res)
    if (res.headersSent) {
      ctx.outcome.aborted = true
      res.destroy()
    } else if (cut === 'too-large') {
      ctx.gatewayReply(413, codes.GW_BODY_TOO_LARGE.code, 'the request body is larger than this route accepts')
    } else {
      ctx.gatewayReply(408, codes.GW_REQUEST_TIMEOUT.code, 'the client stopped sending the request body')
    }
    return
  }
  const code = (err as NodeJS.ErrnoException).code ?? ''
  ctx.log.warn({ err: { message: err.message, code }, upstream: ctx.outcome.upstream }, 'upstream request failed')
  if (res.headersSent) {
    // The status line is gone: the only honest signal left is to cut the connection.
    ctx.outcome.code = codes.GW_UPSTREAM_UNAVAILABLE.code
    ctx.outcome.aborted = true
    res.destroy(err)
    return
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    ctx.gatewayReply(504, codes.GW_UPSTREAM_TIMEOUT.code, codes.GW_UPSTREAM_TIMEOUT.template)
  } else if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || code === 'ECONNABORTED' || ctx.req.errored !== null) {
    ctx.gatewayReply(400, codes.GW_BAD_REQUEST.code, 'the request body did not match its framing')
  } else if (code.startsWith('HPE_') || err.name === 'HTTPParserError' || code === 'GW_UPSTREAM_FRAMING' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO') {
    ctx.gatewayReply(502, codes.GW_UPSTREAM_BAD_RESPONSE.code, codes.GW_UPSTREAM_BAD_RESPONSE.template)
  } else {
    ctx.gatewayReply(502, codes.GW_UPSTREAM_UNAVAILABLE.code, codes.GW_UPSTREAM_UNAVAILABLE.template)
  }
}

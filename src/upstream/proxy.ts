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
import { rewritePath } from './rewrite.js'
import type { RetrySpec } from './spec.js'
import type { UpstreamState } from './state.js'
import { traceparentOf } from '../tracing/traceparent.js'
import { upstreamErrorKind } from './error-kind.js'
import { threadMetrics } from '../metrics/writer.js'
import { tapData, tapEnd, tapHeaders } from './response-tap.js'
import { acceptsTrailers, announcedTrailers, forwardableTrailers } from './trailers.js'
import { isCertificateError } from '../tls/upstream.js'
import type { UpstreamConnectTls } from '../tls/upstream.js'

/** One upstream target as a route uses it. */
export interface Target {
  origin: string
  /** The target's URL as configured (logs, ejection messages). */
  url: string
  /** Path prefix from the upstream URL (`http://h/api` -> `/api`), '' for none. */
  basePath: string
  /** `host[:port]` of the upstream URL, sent as Host unless the route says otherwise. */
  host: string
  pool: Pool
}

export interface ProxyRoute {
  targets: readonly Target[]
  balancer: Balancer
  /** The upstream's shared state: health, ejections, breaker and budget counts. */
  state: UpstreamState
  retries: RetrySpec
  /** Bodies with a Content-Length up to this are read before proxying (and can be retried). */
  bufferBody: number
  preserveHost: boolean
  /** A fixed Host for the upstream; wins over preserveHost. */
  hostHeader: string | undefined
  /** Segments to strip from the front of the path (0: none). */
  stripSegments: number
  /** A regex replace on the path after the strip. */
  rewrite: { re: RegExp, replacement: string } | undefined
  connectTimeout: number
  /** https:// targets: CA, SNI name, verification; the pools have it, the WebSocket handshake reads it here. */
  tls: UpstreamConnectTls | undefined
  headersTimeout: number
  bodyTimeout: number
  /** Whole exchange, retries included; 0: none. */
  totalTimeout: number
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
function baseHeaders (ctx: Context, route: ProxyRoute): string[] | undefined {
  const raw = ctx.req.rawHeaders
  const nominated = connectionNominated(ctx.headers.connection)
  const out: string[] = []
  const set = ctx.upstreamSet
  const removed = ctx.upstreamRemove
  let authorization = 0
  const trace = ctx.trace
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || GATEWAY_SET.has(lower) || NOT_FORWARDED.has(lower) || route.strip.has(lower)) continue
    // The trace headers are the gateway's to send (below): continued, started or replaced.
    if (trace !== undefined && (lower === 'traceparent' || lower === 'tracestate')) continue
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
  out.push('x-forwarded-proto', ctx.tls === undefined ? route.proto : 'https')
  out.push('x-forwarded-port', String(ctx.req.socket.localPort ?? ''))
  const host = ctx.headers.host
  if (host !== undefined) out.push('x-forwarded-host', host)
  if (trace !== undefined) {
    out.push('traceparent', traceparentOf(trace))
    if (trace.tracestate !== undefined) out.push('tracestate', trace.tracestate)
  }
  if (set !== undefined) for (const [k, v] of set) out.push(k, v)
  return out
}

/** Request headers for one target, Host included (the WebSocket tunnel's). */
export function upstreamHeaders (ctx: Context, target: Target, route: ProxyRoute): string[] | undefined {
  const out = baseHeaders(ctx, route)
  out?.push('host', hostFor(ctx, route, target))
  return out
}

/** The path sent upstream, before the target's base path: stripped, then rewritten. */
export function upstreamPath (ctx: Context, route: ProxyRoute): string {
  const path = stripPath(ctx.path, route.stripSegments)
  return route.rewrite === undefined ? path : rewritePath(path, route.rewrite.re, route.rewrite.replacement)
}

/** The Host sent to a target: a fixed one, the client's, or the target's own. */
function hostFor (ctx: Context, route: ProxyRoute, target: Target): string {
  if (route.hostHeader !== undefined) return route.hostHeader
  const host = ctx.headers.host
  return route.preserveHost && host !== undefined ? host : target.host
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

/** Methods a retry may send again after the upstream may have seen them (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'])

/** Errors that mean the request never reached the upstream: safe to send again, any method. */
const NEVER_REACHED = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN'])

/** How an attempt failed, for retries, passive health and the client's answer. */
type Failure = 'refused' | 'reset' | 'timeout' | 'bad-response' | 'request'

class TotalTimeoutError extends Error {
  code = 'GW_TOTAL_TIMEOUT'
  override name = 'TotalTimeoutError'
}

function classify (err: Error, ctx: Context): Failure {
  const code = (err as NodeJS.ErrnoException).code ?? ''
  if (NEVER_REACHED.has(code)) return 'refused'
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'GW_TOTAL_TIMEOUT') return 'timeout'
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || code === 'ECONNABORTED' || ctx.req.errored !== null) return 'request'
  if (code.startsWith('HPE_') || err.name === 'HTTPParserError' || code === 'GW_UPSTREAM_FRAMING' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO' || code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') return 'bad-response'
  return 'reset'
}

/** One try on one target. */
interface Attempt {
  index: number
  trial: boolean
  retry: boolean
  /** Dispatched, not yet on a connection (the breaker's pending count). */
  pending: boolean
  /** Released: its counts are given back; callbacks after this are stale. */
  done: boolean
  /** A retryable status whose body is read and dropped before the retry. */
  discard: boolean
  /** 5xx: counts as a failure for passive health once the attempt ends. */
  failed: boolean
  controller: Dispatcher.DispatchController | undefined
}

function retryAfter (ms: number): Record<string, string> {
  return { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) }
}

/**
 * Send the request upstream and stream the answer back, with back-pressure both ways: the
 * request body is the client's IncomingMessage, which undici reads as it can write; the
 * response is paused whenever the client's socket buffer is full and resumed on 'drain'.
 * Nothing is buffered whole. `done` runs once, when the exchange ends either way.
 *
 * Each attempt picks a target (balancer.ts: down and ejected targets are skipped, a target
 * already tried is avoided), is counted against the upstream's breaker, and ends with a
 * verdict for passive health. A failed attempt is retried (on another target when there is
 * one, after an exponential backoff with full jitter, within the retry budget) only when it
 * is safe: the body is in memory or absent, the client has not had a byte, and either the
 * request never reached the upstream (connect refused) or the method is idempotent. A POST
 * whose bytes may have been sent is never sent again (CHECKLIST G5).
 *
 * What reaches the client goes through three funnels, `head`, `data` and `end`: the place
 * for a response tap (a cache) to see the response as the client gets it.
 */
export function proxy (ctx: Context, route: ProxyRoute, pipeline: Pipeline, done: () => void): void {
  const res = ctx.res
  const state = route.state
  const started = performance.now()
  let current: Attempt | undefined
  let attempts = 0
  let tried: Set<number> | undefined
  let finished = false
  let drainHooked = false
  let backoff: NodeJS.Timeout | undefined
  let total: NodeJS.Timeout | undefined
  let timedOut = false
  /** A response hook threw: the answer is the gateway's fault, not the upstream's. */
  let hookFailed = false
  let guard: GuardedBody | undefined
  /** A retry slot of the budget is held for an attempt not sent yet (in its backoff). */
  let reserved = false
  // Response trailers go to a client that asked for them (trailers.ts).
  const trailers = acceptsTrailers(ctx.req)

  const release = (a: Attempt, verdict: 'ok' | 'fail' | 'none'): void => {
    if (a.done) return
    a.done = true
    state.end(a.index, a.retry, a.pending)
    if (verdict === 'ok') {
      state.success(a.index, a.trial)
    } else if (verdict === 'fail') {
      if (state.failure(a.index, a.trial)) ctx.log.warn({ upstream: route.targets[a.index]?.url, ejectedFor: state.passive.baseEjectionTime }, 'upstream target ejected after consecutive failures')
    } else if (a.trial) {
      state.releaseTrial(a.index)
    }
  }

  const finish = (): void => {
    if (finished) return
    finished = true
    if (backoff !== undefined) clearTimeout(backoff)
    if (total !== undefined) clearTimeout(total)
    if (current !== undefined) release(current, 'none')
    if (reserved) {
      reserved = false
      state.releaseRetry()
    }
    if (guard !== undefined) ctx.outcome.bytesIn = guard.bytes
    done()
  }

  // The client went away: abort upstream so the connection goes back to the pool.
  const onClose = (): void => {
    if (!res.writableFinished) {
      ctx.outcome.aborted = true
      current?.controller?.abort(new Error('client closed the connection'))
      finish()
    }
  }
  res.once('close', onClose)

  const base = baseHeaders(ctx, route)
  if (base === undefined) {
    closeAfter(res)
    ctx.gatewayReply(400, codes.GW_BAD_REQUEST.code, 'more than one Authorization header')
    finish()
    return
  }
  const pathAndQuery = upstreamPath(ctx, route) + queryPart(ctx.upstreamQuery)
  // A body a plugin read (ctx.readBody) or the handler buffered goes from memory; undici
  // frames it with its length, and it can be sent again. A streamed one goes through the
  // guard (size limit, idle timeout, byte count) and is sent once.
  guard = ctx.bodyBuffer === undefined && hasBody(ctx) ? new GuardedBody(ctx.req, route.maxBodySize, route.bodyIdleTimeout) : undefined
  const body = ctx.bodyBuffer !== undefined ? (ctx.bodyBuffer.length === 0 ? null : ctx.bodyBuffer) : guard ?? null
  const replayable = guard === undefined
  const idempotent = IDEMPOTENT.has(ctx.method)

  const canRetry = (why: Failure | 'status'): boolean => {
    if (finished || res.headersSent || !replayable || timedOut || hookFailed) return false
    if (attempts > route.retries.attempts) return false
    if (why !== 'refused' && !(idempotent && (why === 'reset' || why === 'status'))) return false
    // A discarded 503 whose body then fails holds its slot already: one retry, one slot.
    if (!reserved) {
      if (!state.reserveRetry()) return false
      reserved = true
    }
    return true
  }

  const retryLater = (a: Attempt): void => {
    ;(tried ??= new Set()).add(a.index)
    // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): a random wait
    // up to base x 2^(n-1), capped, so retries of many requests do not arrive together.
    const cap = Math.min(route.retries.maxBackoff, route.retries.backoff * 2 ** (attempts - 1))
    backoff = setTimeout(() => { backoff = undefined; send() }, Math.floor(Math.random() * (cap + 1)))
  }

  const head = (status: number, headers: IncomingHttpHeaders, c: Dispatcher.DispatchController): void => {
    ctx.outcome.upstreamMs = performance.now() - started
    const info = { status, headers: clientHeaders(headers) }
    // Before any plugin edits them: a cache stores what the upstream said.
    tapHeaders(ctx, status, info.headers)
    const announced = trailers && headers['content-length'] === undefined && ctx.method !== 'HEAD' && status !== 204 && status !== 304 ? announcedTrailers(headers) : undefined
    if (announced !== undefined) info.headers.trailer = announced
    ctx.applyResponseHeaders(info.headers)
    try {
      runResponseHooks(ctx, pipeline.onResponse, info)
    } catch (err) {
      ctx.log.error({ err, plugin: ctx.current }, 'response hook failed')
      hookFailed = true
      c.abort(err as Error)
      return
    }
    ctx.outcome.status = info.status
    ctx.beforeHeaders()
    res.writeHead(info.status, info.headers)
  }

  const data = (chunk: Buffer, c: Dispatcher.DispatchController): void => {
    ctx.outcome.bytesOut += chunk.length
    tapData(ctx, chunk)
    if (!res.write(chunk)) {
      c.pause()
      if (!drainHooked) {
        drainHooked = true
        res.on('drain', () => current?.controller?.resume())
      }
    }
  }

  const end = (upstreamTrailers: IncomingHttpHeaders | null): void => {
    tapEnd(ctx)
    const t = trailers ? forwardableTrailers(upstreamTrailers) : undefined
    if (t !== undefined) {
      // Node sends them in the last chunk of a chunked answer, and ignores them otherwise.
      try { res.addTrailers(t) } catch (err) { ctx.log.debug({ err }, 'upstream trailers not passed on') }
    }
    res.end(finish)
  }

  const handlerFor = (a: Attempt): Dispatcher.DispatchHandler => ({
    onRequestStart (c) {
      a.controller = c
      // The exchange ended while this request waited for a connection: never write it.
      if (a.done || finished) {
        c.abort(new Error('the exchange is over'))
        return
      }
      if (a.pending) {
        a.pending = false
        state.started()
      }
      if (timedOut) c.abort(new TotalTimeoutError('total timeout'))
    },
    onResponseStart (c, statusCode, headers) {
      if (a.done || statusCode < 200) return
      const framing = badFraming(headers)
      if (framing !== undefined) {
        // Aborting a response in progress makes undici destroy that upstream connection.
        c.abort(framing)
        return
      }
      a.failed = statusCode >= 500
      if (route.retries.statuses.has(statusCode) && canRetry('status')) {
        a.discard = true
        return
      }
      head(statusCode, headers, c)
    },
    onResponseData (c, chunk) {
      if (a.done || a.discard) return
      data(chunk, c)
    },
    onResponseEnd (_c, upstreamTrailers) {
      if (a.done) return
      if (a.discard) {
        release(a, 'fail')
        current = undefined
        retryLater(a)
        return
      }
      release(a, a.failed ? 'fail' : 'ok')
      current = undefined
      end(upstreamTrailers)
    },
    onResponseError (_c, err) {
      if (a.done) return
      if (ctx.outcome.aborted) {
        release(a, 'none')
        return
      }
      const why = timedOut ? 'timeout' : guard?.cut !== undefined ? 'request' : classify(err, ctx)
      release(a, why === 'request' || hookFailed ? 'none' : 'fail')
      current = undefined
      if (why !== 'timeout' && why !== 'request' && canRetry(why)) {
        ctx.log.debug({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, upstream: route.targets[a.index]?.url, attempt: attempts }, 'upstream attempt failed; retrying')
        retryLater(a)
        return
      }
      failed(ctx, err, why, guard?.cut, guard?.refusal)
      finish()
    }
  })

  const send = (): void => {
    if (finished) return
    const pick = route.balancer.pick(ctx, tried)
    if (pick.index === -1) {
      ctx.gatewayReply(503, codes.GW_UPSTREAM_NO_HEALTHY.code, codes.GW_UPSTREAM_NO_HEALTHY.template, retryAfter(state.passive.baseEjectionTime))
      finish()
      return
    }
    const over = state.overLimit()
    if (over !== undefined) {
      if (pick.trial) state.releaseTrial(pick.index)
      ctx.gatewayReply(503, codes.GW_UPSTREAM_OVERLOADED.code, `the upstream has too many ${over === 'requests' ? 'requests in flight' : 'requests waiting for a connection'}`, retryAfter(1000))
      finish()
      return
    }
    const target = route.targets[pick.index] as Target
    const a: Attempt = { index: pick.index, trial: pick.trial, retry: attempts > 0, pending: true, done: false, discard: false, failed: false, controller: undefined }
    attempts++
    reserved = false
    state.begin(a.index)
    current = a
    ctx.outcome.upstream = target.origin
    // The first attempt takes the header list as it is; a retry copies it (its Host may differ).
    const headers = a.retry ? base.slice(0, base.length - 2) : base
    headers.push('host', hostFor(ctx, route, target))
    target.pool.dispatch({
      path: target.basePath + pathAndQuery,
      method: ctx.method as Dispatcher.HttpMethod,
      headers,
      body,
      headersTimeout: route.headersTimeout,
      bodyTimeout: route.bodyTimeout,
      // Retries are ours (above); undici must not replay anything itself.
      idempotent: false
    }, handlerFor(a))
  }

  if (route.totalTimeout > 0) {
    total = setTimeout(() => {
      total = undefined
      timedOut = true
      if (res.headersSent) {
        // The status line is gone: cutting the connection is the only signal left.
        ctx.outcome.code = codes.GW_UPSTREAM_TIMEOUT.code
        ctx.outcome.aborted = true
        current?.controller?.abort(new TotalTimeoutError('total timeout'))
        res.destroy()
        finish()
      } else if (current?.controller !== undefined) {
        current.controller.abort(new TotalTimeoutError('total timeout'))
      } else {
        // Waiting for a connection or a backoff: answer now; a queued request is never written.
        ctx.gatewayReply(504, codes.GW_UPSTREAM_TIMEOUT.code, codes.GW_UPSTREAM_TIMEOUT.template)
        finish()
      }
    }, route.totalTimeout)
    total.unref()
  }
  send()
}

/** Map an upstream failure to the client's answer: 502 / 504, or a reset once bytes went out. */
function failed (ctx: Context, err: Error, why: Failure, cut: Cut, refusal?: { status: number, code: string }): void {
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
  // A body the client broke is the client's failure, not the upstream's.
  if (code !== 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' && code !== 'ECONNABORTED' && ctx.req.errored === null) threadMetrics().upstreamError(upstreamErrorKind(err))
  if (res.headersSent) {
    // The status line is gone: the only honest signal left is to cut the connection.
    ctx.outcome.code = why === 'timeout' ? codes.GW_UPSTREAM_TIMEOUT.code : codes.GW_UPSTREAM_UNAVAILABLE.code
    ctx.outcome.aborted = true
    res.destroy(err)
    return
  }
  if (why === 'timeout' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    ctx.gatewayReply(504, codes.GW_UPSTREAM_TIMEOUT.code, codes.GW_UPSTREAM_TIMEOUT.template)
  } else if (isCertificateError(code)) {
    ctx.gatewayReply(502, codes.GW_UPSTREAM_TLS.code, codes.GW_UPSTREAM_TLS.template)
  } else if (why === 'request') {
    ctx.gatewayReply(400, codes.GW_BAD_REQUEST.code, 'the request body did not match its framing')
  } else if (why === 'bad-response') {
    ctx.gatewayReply(502, codes.GW_UPSTREAM_BAD_RESPONSE.code, codes.GW_UPSTREAM_BAD_RESPONSE.template)
  } else {
    ctx.gatewayReply(502, codes.GW_UPSTREAM_UNAVAILABLE.code, codes.GW_UPSTREAM_UNAVAILABLE.template)
  }
}

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { Context } from './context.js'
import { codes } from './errors.js'
import type { CompiledRoute, Generation } from './generation.js'
import type { WorkerStats } from './worker-stats.js'
import { HTTP_DEFAULTS } from './config-schema.js'
import type { GatewayConfig } from './config-schema.js'
import { closeAfter, isClosing } from './http-server.js'
import { dropUnderscoreHeaders, HEAD_DROP_UNDERSCORES, HEAD_UPGRADE, inspectHead, isValidHost } from './headers.js'
import type { HeadProblem } from './headers.js'
import { BadPathError, normalizeTarget, splitAbsoluteForm } from './path.js'
import type { NormalizedTarget } from './path.js'
import type { Pipeline } from './pipeline.js'
import { runLogHooks, runRequestHooks } from './pipeline.js'
import { proxy } from './upstream/proxy.js'
import { openTunnel } from './upstream/websocket.js'
import type { Tunnels, UpgradeSocket } from './upstream/websocket.js'
import { checkHandshake, wantsWebSocket } from './websocket-handshake.js'

/** What the request handler reads from its worker: the live generation and counters. */
export interface HandlerState {
  /** The generation new requests start under. */
  current: LiveGeneration
  draining: boolean
  log: Logger
  stats: WorkerStats
  /** Open WebSocket tunnels, closed when the drain period ends. */
  tunnels: Tunnels
}

/** A generation plus the count of requests still running under it. */
export interface LiveGeneration {
  gen: Generation
  inFlight: number
  /** Called when inFlight drops to 0 after the generation was replaced. */
  onIdle: (() => void) | undefined
}

/** `Host` without port, lower-case; brackets kept off IPv6 literals. */
const NO_MATCH = { kind: 'not-found' } as const

function hostOf (value: string | undefined): string {
  if (value === undefined) return ''
  const v = value.toLowerCase()
  if (v.startsWith('[')) {
    const end = v.indexOf(']')
    return end === -1 ? v : v.slice(1, end)
  }
  const colon = v.indexOf(':')
  return colon === -1 ? v : v.slice(0, colon)
}

const bad = (detail: string): HeadProblem => ({ status: 400, code: 'GW_BAD_REQUEST', detail })

/**
 * The request target and Host, checked and normalized (path.ts). An absolute-form target
 * (`GET http://a.example/x`) is served only when its authority is the Host header, so
 * routing, every policy and the upstream see one host (CHECKLIST A22); otherwise 400.
 */
function readTarget (req: IncomingMessage, limits: GatewayConfig['limits']): NormalizedTarget | HeadProblem {
  const host = req.headers.host
  // HTTP/1.1 without Host never gets here (requireHostHeader); HTTP/1.0 may omit it.
  if (host !== undefined && !isValidHost(host)) return bad('the Host header is not a host with an optional port')
  let target = req.url ?? ''
  try {
    const abs = splitAbsoluteForm(target)
    if (abs !== undefined) {
      if (host === undefined || abs.authority !== host.toLowerCase()) return bad('the absolute-form request target names another host than the Host header')
      target = abs.target
    }
    return normalizeTarget(target, limits.mergeSlashes ?? HTTP_DEFAULTS.mergeSlashes, limits.pathSemicolons ?? HTTP_DEFAULTS.pathSemicolons)
  } catch (err) {
    if (!(err instanceof BadPathError)) throw err
    return bad(err.message)
  }
}

/**
 * What the request head must pass before it is routed (CHECKLIST A, on top of Node's strict
 * parser): header-line count, duplicate single-valued headers, transfer codings, underscore
 * names, Host and target. Sets `up.upgrade` when the client asked for a protocol upgrade.
 */
function checkHead (req: IncomingMessage, limits: GatewayConfig['limits'], up: { upgrade: boolean }): NormalizedTarget | HeadProblem {
  // llhttp takes any single-digit version (HTTP/2.0, HTTP/0.9): only 1.0 and 1.1 are HTTP/1.
  if (req.httpVersionMajor !== 1) return { status: 505, code: 'GW_VERSION_NOT_SUPPORTED', detail: `HTTP/${req.httpVersion} is not supported` }
  if (req.rawHeaders.length / 2 > limits.maxHeadersCount) return { status: 431, code: 'GW_HEADERS_TOO_LARGE', detail: `more than ${limits.maxHeadersCount} header lines` }
  const head = inspectHead(req.rawHeaders, req.httpVersionMinor, limits.headersWithUnderscores ?? HTTP_DEFAULTS.headersWithUnderscores)
  if (typeof head !== 'number') return head
  if ((head & HEAD_DROP_UNDERSCORES) !== 0) dropUnderscoreHeaders(req as unknown as { rawHeaders: string[], headers: Record<string, unknown> })
  up.upgrade = (head & HEAD_UPGRADE) !== 0
  return readTarget(req, limits)
}

/** Bodies up to this many bytes, framed by Content-Length, are buffered before proxying. */
const SMALL_BODY = 64 * 1024

/** The Content-Length of a small body framed by it (not chunked), else 0. */
function smallBodyLength (req: IncomingMessage): number {
  if (req.headers['transfer-encoding'] !== undefined) return 0
  const cl = req.headers['content-length']
  if (cl === undefined) return 0
  const n = Number(cl)
  return n > 0 && n <= SMALL_BODY ? n : 0
}

/**
 * The worker's request path: check the head, normalize, route, run the pipeline, proxy,
 * log. A request runs start to end under the generation that was live when it arrived.
 */
export function createRequestHandler (state: HandlerState): (req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket) => void {
  return function handle (req, res, upgrade) {
    if (isClosing(req.socket)) return
    const start = performance.now()
    const live = state.current
    live.inFlight++
    state.stats.start()

    let pipeline: Pipeline = live.gen.fallback
    let done = false
    const complete = (): void => {
      if (done) return
      done = true
      ctx.outcome.status ||= res.statusCode
      if (!res.writableFinished) ctx.outcome.aborted = true
      runLogHooks(ctx, pipeline.onLog, (name, err) => state.log.error({ err, plugin: name }, 'log hook failed'))
      state.stats.end()
      if (--live.inFlight === 0 && live.onIdle !== undefined) live.onIdle()
    }

    const limits = live.gen.config.limits
    const up = { upgrade: false }
    const checked = checkHead(req, limits, up)
    const refusal = 'status' in checked ? checked : undefined
    const path = refusal === undefined ? (checked as NormalizedTarget).path : '/'
    const query = refusal === undefined ? (checked as NormalizedTarget).query : ''

    // Routing needs only host and path; the route decides how the client is resolved.
    const match = refusal === undefined ? live.gen.router.find(req.method as string, path, hostOf(req.headers.host)) : NO_MATCH
    const route: CompiledRoute | undefined = match.kind === 'found' ? match.value : undefined
    const ctx = new Context(req, res, path, query, (route?.client ?? live.gen.client)(req), live.gen.number, state.log, start, state)
    res.once('close', complete)
    // Debug switch: lets a test prove which generation answered each request.
    if (live.gen.config.admin.responseGenerationHeader) ctx.setResponseHeader('x-tollgate-generation', live.gen.number)

    if (refusal !== undefined) {
      // Nothing after a refused head is trusted to be framed as the client meant it.
      closeAfter(res)
      ctx.gatewayReply(refusal.status, refusal.code, refusal.detail)
      return
    }
    // Node's parser reads nothing after an upgrade request (the bytes belong to the new
    // protocol), so this connection ends with this response. Upgrade and HTTP2-Settings are
    // hop-by-hop: the upstream gets a plain request (CHECKLIST A27) unless the route
    // proxies WebSocket and this is a WebSocket handshake.
    if (up.upgrade) closeAfter(res)
    let tunnel = false
    if (upgrade !== undefined) {
      // Came through the server's 'upgrade' event (worker.ts): Node's parser stopped at the
      // end of the head, so a body would be unframed bytes on the raw socket.
      if (route?.websocket !== undefined && wantsWebSocket(req)) {
        const problem = checkHandshake(req)
        if (problem !== undefined) {
          ctx.gatewayReply(400, codes.GW_WEBSOCKET_HANDSHAKE.code, problem.detail, problem.version ? { 'sec-websocket-version': '13' } : undefined)
          return
        }
        tunnel = true
      } else if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0') {
        ctx.gatewayReply(400, codes.GW_BAD_REQUEST.code, 'an Upgrade request with a body is not accepted here')
        return
      }
    }
    const maxBody = route?.proxy?.maxBodySize
    if (maxBody !== undefined) {
      const cl = req.headers['content-length']
      if (cl !== undefined && Number(cl) > maxBody) {
        // Refused before a byte of the body is read (and before any 100 Continue).
        closeAfter(res)
        ctx.gatewayReply(413, codes.GW_BODY_TOO_LARGE.code, `the request body is larger than ${maxBody} bytes`)
        return
      }
    }
    // Expect: 100-continue (Node's checkContinue is routed here, see http-server.ts): the
    // client is told to send its body only once something starts reading it, so a request
    // refused by a policy never has its body sent. A final answer without 100 closes the
    // connection (Node), since the body may or may not follow.
    if (req.headers.expect !== undefined && req.httpVersionMinor === 1) {
      req.once('resume', () => { if (!res.headersSent && !res.destroyed) res.writeContinue() })
    }

    if (match.kind === 'found' && route !== undefined) {
      pipeline = route.pipeline
      ctx.route = route.info
      ctx.params = match.params
      // A plugin reading the body (ctx.readBody) is held to the route's limits too.
      if (route.proxy !== undefined) ctx.bodyLimits = { maxBytes: route.proxy.maxBodySize, idleMs: route.proxy.bodyIdleTimeout }
    }

    const next = (): void => {
      if (ctx.replied) return
      if (route === undefined) {
        if (match.kind === 'method-not-allowed') {
          ctx.gatewayReply(405, codes.GW_METHOD_NOT_ALLOWED.code, `method ${ctx.method} is not allowed here`, { allow: match.allowed.join(', ') })
        } else {
          ctx.gatewayReply(404, codes.GW_NO_ROUTE.code, 'no route matches this request')
        }
        return
      }
      if (route.proxy === undefined) {
        ctx.gatewayReply(502, codes.GW_UPSTREAM_UNAVAILABLE.code)
        return
      }
      if (tunnel && upgrade !== undefined && route.websocket !== undefined) {
        openTunnel(ctx, route.proxy, pipeline, upgrade, route.websocket, state.tunnels, complete)
        return
      }
      // A small body of known length is read whole and sent from memory: streaming it
      // through the guarded path cost a 1 KiB POST about twice a GET's CPU.
      const small = ctx.bodyBuffer === undefined ? smallBodyLength(req) : 0
      if (small > 0) {
        const p = route.proxy
        ctx.readBody(small).then((b) => { if (b !== undefined && !ctx.replied) proxy(ctx, p, pipeline, complete) }, failed)
        return
      }
      proxy(ctx, route.proxy, pipeline, complete)
    }

    const failed = (err: unknown): void => {
      state.log.error({ err, plugin: ctx.current, route: ctx.route.name }, 'plugin hook failed')
      const culprit = ctx.current
      if (!res.headersSent) ctx.gatewayReply(500, codes.GW_PLUGIN_FAILURE.code)
      ctx.outcome.repliedBy = culprit
    }

    try {
      const r = runRequestHooks(ctx, pipeline.onRequest)
      if (r === undefined) next()
      else r.then(next, failed)
    } catch (err) {
      failed(err)
    }
  }
}

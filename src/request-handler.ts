import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { Context } from './context.js'
import { codes } from './errors.js'
import type { CompiledRoute, Generation } from './generation.js'
import type { WorkerStats } from './worker-stats.js'
import { BadPathError, normalizeTarget } from './path.js'
import type { Pipeline } from './pipeline.js'
import { runLogHooks, runRequestHooks } from './pipeline.js'
import { proxy } from './upstream/proxy.js'

/** What the request handler reads from its worker: the live generation and counters. */
export interface HandlerState {
  /** The generation new requests start under. */
  current: LiveGeneration
  draining: boolean
  log: Logger
  stats: WorkerStats
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

/**
 * The worker's request path: normalize, route, run the pipeline, proxy, log. A request runs
 * start to end under the generation that was live when it arrived.
 */
export function createRequestHandler (state: HandlerState): (req: IncomingMessage, res: ServerResponse) => void {
  return function handle (req, res) {
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

    let path = '/'
    let query = ''
    let badPath: string | undefined
    try {
      ({ path, query } = normalizeTarget(req.url ?? ''))
    } catch (err) {
      if (!(err instanceof BadPathError)) throw err
      badPath = err.message
    }

    // Routing needs only host and path; the route decides how the client is resolved.
    const match = badPath === undefined ? live.gen.router.find(req.method as string, path, hostOf(req.headers.host)) : NO_MATCH
    const route: CompiledRoute | undefined = match.kind === 'found' ? match.value : undefined
    const ctx = new Context(req, res, path, query, (route?.client ?? live.gen.client)(req), live.gen.number, state.log, start, state)
    res.once('close', complete)
    // Debug switch: lets a test prove which generation answered each request.
    if (live.gen.config.admin.responseGenerationHeader) ctx.setResponseHeader('x-tollgate-generation', live.gen.number)

    if (badPath !== undefined) {
      res.setHeader('connection', 'close')
      ctx.gatewayReply(400, codes.GW_BAD_REQUEST.code, badPath)
      return
    }
    const maxHeaders = live.gen.config.limits.maxHeadersCount
    if (req.rawHeaders.length / 2 > maxHeaders) {
      res.setHeader('connection', 'close')
      ctx.gatewayReply(431, codes.GW_BAD_REQUEST.code, `more than ${maxHeaders} header lines`)
      return
    }

    if (match.kind === 'found' && route !== undefined) {
      pipeline = route.pipeline
      ctx.route = route.info
      ctx.params = match.params
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

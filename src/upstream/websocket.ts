import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocketConfig } from '../config-schema.js'
import type { Context } from '../context.js'
import { codes } from '../errors.js'
import { closeAfter } from '../http-server.js'
import type { Pipeline } from '../pipeline.js'
import { runResponseHooks } from '../pipeline.js'
import { handOver } from '../upgrade-response.js'
import { hasToken } from '../headers.js'
import { acceptFor } from '../websocket-handshake.js'
import { clientHeaders, queryPart, upstreamHeaders, upstreamPath } from './proxy.js'
import type { ProxyRoute, Target } from './proxy.js'
import { isCertificateError } from '../tls/upstream.js'
import { CONNECT_TIMEOUT, handshakeRequest } from './websocket-connect.js'

/** The raw client connection of an upgrade request, and the bytes read after its head. */
export interface UpgradeSocket { socket: Duplex, head: Buffer }

/** After one side of a tunnel closes, how long the other gets to flush before it is cut. */
const CLOSE_GRACE_MS = 2000

/**
 * The worker's open tunnels. They outlive the request that opened them (and its config
 * generation: a tunnel is not re-checked when the policy changes); on shutdown they are
 * closed when the drain period ends.
 */
export class Tunnels {
  readonly #open = new Set<() => void>()

  get size (): number { return this.#open.size }

  add (close: () => void): () => void {
    this.#open.add(close)
    return () => { this.#open.delete(close) }
  }

  closeAll (): void {
    for (const close of [...this.#open]) close()
  }
}

/**
 * Open the upstream side of a WebSocket and join the two connections.
 *
 * The upstream handshake uses node:http's client (`request` + its 'upgrade' event), not
 * undici's `upgrade()`: undici treats an upstream that answers the upgrade with anything but
 * 101 as a socket error ('bad upgrade'), so its answer (a 401, a 403, a 426 with the versions
 * it speaks) could not be passed on; node:http gives that answer as an ordinary response,
 * which the gateway relays as is (status, end-to-end headers, body), then closes the
 * connection. One connection per tunnel (`agent: false`): an upgraded socket never goes back
 * to a pool anyway.
 *
 * Request headers are the ones every proxied request gets (proxy.ts upstreamHeaders:
 * hop-by-hop and Connection-nominated out, identity and X-Forwarded-* in), plus the
 * Upgrade/Connection pair. The 101 must say `Upgrade: websocket` and carry the
 * Sec-WebSocket-Accept that matches the client's key, or the client gets a 502.
 */
export function openTunnel (ctx: Context, route: ProxyRoute, pipeline: Pipeline, client: UpgradeSocket, limits: WebSocketConfig, tunnels: Tunnels, done: () => void): void {
  // A tunnel is one long exchange: it takes a usable target (health, ejection), is not
  // retried, and holds one of the breaker's maxConnections for as long as it is open.
  const pick = route.balancer.pick(ctx, undefined)
  if (pick.index === -1) {
    ctx.gatewayReply(503, codes.GW_UPSTREAM_NO_HEALTHY.code, codes.GW_UPSTREAM_NO_HEALTHY.template, { 'retry-after': '1' })
    return
  }
  const state = route.state
  // Passive health, as for proxied requests: a handshake that fails (connect, TLS, timeout,
  // a 5xx) counts towards ejection, any other answer ends the run of failures; a handshake
  // to a half-open target is its trial. Once per handshake; 'none' when the client left.
  let judged = false
  const verdict = (v: 'ok' | 'fail' | 'none'): void => {
    if (judged) return
    judged = true
    if (v === 'ok') state.success(pick.index, pick.trial)
    else if (v === 'fail') {
      if (state.failure(pick.index, pick.trial)) ctx.log.warn({ upstream: route.targets[pick.index]?.url, ejectedFor: state.passive.baseEjectionTime }, 'upstream target ejected after consecutive failures')
    } else if (pick.trial) state.releaseTrial(pick.index)
  }
  if (!state.openTunnel()) {
    verdict('none')
    ctx.gatewayReply(503, codes.GW_UPSTREAM_OVERLOADED.code, 'the upstream has too many WebSocket connections open', { 'retry-after': '1' })
    return
  }
  // Given back exactly once: when the handshake fails, or when the tunnel closes.
  let held = true
  const letGo = (): void => {
    if (!held) return
    held = false
    state.closeTunnel()
  }
  const target = route.targets[pick.index] as Target
  const res = ctx.res
  const started = performance.now()
  ctx.outcome.upstream = target.origin
  const headers = upstreamHeaders(ctx, target, route)
  if (headers === undefined) {
    letGo()
    verdict('none')
    ctx.gatewayReply(400, codes.GW_BAD_REQUEST.code, 'more than one Authorization header')
    return
  }
  headers.push('connection', 'Upgrade', 'upgrade', 'websocket')
  const key = ctx.headers['sec-websocket-key'] as string
  const path = target.basePath + upstreamPath(ctx, route) + queryPart(ctx.upstreamQuery)

  let settled = false
  let upstream: ClientRequest
  try {
    upstream = handshakeRequest(target, path, headers, route.tls, route.connectTimeout)
  } catch (err) {
    // node:http refuses some header values synchronously: the slot must not leak with it.
    letGo()
    verdict('none')
    throw err
  }
  // Connect plus the upstream's answer to the handshake: the route's response-headers timeout
  // (the connect alone has the route's connect timeout: websocket-connect.ts).
  const timer = setTimeout(() => {
    if (settled) return
    settled = true
    upstream.destroy()
    letGo()
    verdict('fail')
    ctx.gatewayReply(504, codes.GW_UPSTREAM_TIMEOUT.code, codes.GW_UPSTREAM_TIMEOUT.template)
  }, route.headersTimeout)
  timer.unref()
  const settle = (): boolean => {
    if (settled) return false
    settled = true
    clearTimeout(timer)
    ctx.outcome.upstreamMs = performance.now() - started
    return true
  }
  // Every way out of the handshake but a tunnel gives the breaker's slot back: at once where
  // the connection is gone, and here at the latest (a refusal's body is still being relayed;
  // node:http emits 'close' on the request after an 'upgrade' too: by then `joined` is set).
  let joined = false
  upstream.once('close', () => { if (!joined) letGo() })
  // The client left before the upstream answered.
  res.once('close', () => {
    if (!settled) { settled = true; clearTimeout(timer); upstream.destroy(); letGo(); verdict('none') }
  })

  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (!settle()) return
    ctx.log.warn({ err: { message: err.message, code: err.code }, upstream: target.origin }, 'upstream WebSocket handshake failed')
    // The connection is gone: its slot is free before the client hears of it.
    letGo()
    verdict('fail')
    if (err.code === CONNECT_TIMEOUT) ctx.gatewayReply(504, codes.GW_UPSTREAM_TIMEOUT.code, codes.GW_UPSTREAM_TIMEOUT.template)
    else if (isCertificateError(err.code ?? '')) ctx.gatewayReply(502, codes.GW_UPSTREAM_TLS.code, codes.GW_UPSTREAM_TLS.template)
    else if (err.code?.startsWith('HPE_') === true) ctx.gatewayReply(502, codes.GW_UPSTREAM_BAD_RESPONSE.code, codes.GW_UPSTREAM_BAD_RESPONSE.template)
    else ctx.gatewayReply(502, codes.GW_UPSTREAM_UNAVAILABLE.code, codes.GW_UPSTREAM_UNAVAILABLE.template)
  })

  // The upstream did not upgrade: its answer goes to the client, and the connection ends.
  upstream.on('response', (ures: IncomingMessage) => {
    if (!settle()) { ures.destroy(); return }
    verdict((ures.statusCode ?? 502) >= 500 ? 'fail' : 'ok')
    closeAfter(res)
    const out = clientHeaders(ures.headers)
    if (!writeHead(ctx, pipeline, res, ures.statusCode ?? 502, out)) { ures.destroy(); return }
    ures.on('data', (c: Buffer) => { ctx.outcome.bytesOut += c.length })
    ures.pipe(res)
    ures.once('error', () => res.destroy())
  })

  upstream.on('upgrade', (ures: IncomingMessage, usock: Socket, uhead: Buffer) => {
    usock.on('error', () => {})
    if (!settle()) { usock.destroy(); return }
    if (!hasToken(ures.headers.upgrade, 'websocket') || ures.headers['sec-websocket-accept'] !== acceptFor(key)) {
      usock.destroy()
      letGo()
      verdict('fail')
      ctx.log.warn({ upstream: target.origin }, 'upstream answered the WebSocket handshake with a wrong Upgrade or Sec-WebSocket-Accept')
      ctx.gatewayReply(502, codes.GW_UPSTREAM_BAD_RESPONSE.code, codes.GW_UPSTREAM_BAD_RESPONSE.template)
      return
    }
    verdict('ok')
    const out = clientHeaders(ures.headers)
    out.upgrade = 'websocket'
    out.connection = 'Upgrade'
    handOver(res)
    if (!writeHead(ctx, pipeline, res, 101, out, true)) { usock.destroy(); letGo(); return }
    // The 101 head is queued on the client socket before any tunnel byte.
    res.end()
    joined = true
    join(client, usock, uhead, limits, tunnels, ctx, letGo)
    done()
  })
  upstream.end()
}

/**
 * The status and headers for the client, through the route's response hooks (header edits
 * only: a 101 stays a 101). False when a hook threw (the client got a 500 or was cut).
 */
function writeHead (ctx: Context, pipeline: Pipeline, res: Context['res'], status: number, headers: OutgoingHttpHeaders, upgrade = false): boolean {
  ctx.applyResponseHeaders(headers)
  const info = { status, headers }
  try {
    runResponseHooks(ctx, pipeline.onResponse, info)
  } catch (err) {
    ctx.log.error({ err, plugin: ctx.current }, 'response hook failed')
    if (upgrade) res.destroy()
    else ctx.gatewayReply(500, codes.GW_PLUGIN_FAILURE.code)
    return false
  }
  if (upgrade) {
    info.headers.upgrade = 'websocket'
    info.headers.connection = 'Upgrade'
  }
  ctx.outcome.status = upgrade ? 101 : info.status
  ctx.beforeHeaders()
  res.writeHead(upgrade ? 101 : info.status, info.headers)
  return true
}

/**
 * Pipe the two sockets both ways (pipe() holds each writer's back-pressure), until either
 * side closes, the tunnel is idle for `limits.idleTimeout`, or it has lived `maxLifetime`.
 * A half-close (FIN) is passed on as one; a side that closes entirely gets the other one
 * ended, then cut after a grace period; a reset cuts both at once.
 */
function join (client: UpgradeSocket, usock: Socket, uhead: Buffer, limits: WebSocketConfig, tunnels: Tunnels, ctx: Context, onClosed: () => void): void {
  const csock = client.socket
  csock.on('error', () => {})
  ;(csock as Socket).setNoDelay?.(true)
  usock.setNoDelay(true)
  let closed = false
  let idle: NodeJS.Timeout | undefined
  let life: NodeJS.Timeout | undefined
  let grace: NodeJS.Timeout | undefined
  const cut = (): void => {
    if (closed) return
    closed = true
    if (idle !== undefined) clearTimeout(idle)
    if (life !== undefined) clearTimeout(life)
    if (grace !== undefined) clearTimeout(grace)
    forget()
    csock.destroy()
    usock.destroy()
    onClosed()
  }
  const forget = tunnels.add(cut)
  if (limits.idleTimeout > 0) {
    idle = setTimeout(() => {
      ctx.log.debug({ route: ctx.route.name }, 'WebSocket tunnel idle: closed')
      cut()
    }, limits.idleTimeout)
    idle.unref()
  }
  if (limits.maxLifetime > 0) {
    life = setTimeout(cut, limits.maxLifetime)
    life.unref()
  }
  const active = (): void => { idle?.refresh() }
  const closing = (other: Duplex) => (): void => {
    if (closed) return
    if (!other.destroyed) other.end()
    grace ??= setTimeout(cut, CLOSE_GRACE_MS)
    grace.unref()
    if (csock.destroyed && usock.destroyed) cut()
  }
  csock.on('data', active)
  usock.on('data', active)
  csock.once('close', closing(usock))
  usock.once('close', closing(csock))
  // A reset on either side (ECONNRESET, EPIPE): nothing more can be delivered.
  csock.once('error', cut)
  usock.once('error', cut)
  if (uhead.length > 0) csock.write(uhead)
  if (client.head.length > 0) usock.write(client.head)
  csock.pipe(usock)
  usock.pipe(csock)
  if (csock.readableFlowing !== true) csock.resume()
}

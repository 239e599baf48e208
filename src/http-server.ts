import { createServer, STATUS_CODES } from 'node:http'
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { TlsOptions } from 'node:tls'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { HTTP_DEFAULTS } from './config-schema.js'
import type { GatewayConfig } from './config-schema.js'
import { codes } from './errors.js'

/**
 * The worker's HTTP server: Node's strict llhttp parser (never `insecureHTTPParser`) with
 * every limit set explicitly rather than left at Node's defaults (CHECKLIST B):
 *
 *   maxHeaderSize 16 KiB      -> 431, and the connection closes
 *   headersTimeout 10 s       -> 408 for a client that trickles its headers (slowloris), or
 *                                connects and sends nothing
 *   requestTimeout 30 s       -> 408 for a client that trickles its body
 *   keepAliveTimeout 5 s      -> idle keep-alive connections are closed
 *   connectionsCheckingInterval 1 s, so the two timeouts above fire within 1 s of expiring
 *   maxConnections 10,000     -> per worker; connections above it are closed on accept
 *   requireHostHeader         -> HTTP/1.1 without Host is a 400
 *   joinDuplicateHeaders off  -> duplicates stay visible in rawHeaders for policies
 *
 * The header-count limit is checked by the request handler, because Node's own
 * maxHeadersCount silently drops extra headers instead of refusing the request; Node is told
 * to keep one more than the limit, so "over the limit" is visible.
 *
 * What the parser refuses is answered here as problem+json (`clientError`), with the same
 * care as Node's default: only when no response on the connection has started, and the
 * connection is closed. CONNECT is refused (a gateway is not a forward proxy). `Expect:
 * 100-continue` goes to the request handler, which decides when to send the 100.
 */
export function createHttpServer (config: GatewayConfig, log?: Logger, onRefused?: (status: number, code: string, client: string | undefined) => void, tls?: TlsOptions): Server {
  const l = config.limits
  const options: ServerOptions = {
    maxHeaderSize: l.maxHeaderSize,
    requireHostHeader: true,
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
    headersTimeout: l.headersTimeout,
    requestTimeout: l.requestTimeout,
    keepAliveTimeout: l.keepAliveTimeout,
    connectionsCheckingInterval: 1000,
    noDelay: true
  }
  // A TLS listener (src/tls/) is the same HTTP server on top of TLS: every limit and refusal
  // below applies to it unchanged. https.Server has http.Server's whole surface.
  const server = tls === undefined ? createServer(options) : createHttpsServer({ ...options, ...tls }) as unknown as Server
  applyServerLimits(server, config)

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const s = socket as ParsedSocket
    // The parser stays failed: more bytes on this connection report the same error again.
    if (failed.has(s)) return
    failed.add(s)
    // TLS-layer failures (a renegotiation attempt, CHECKLIST I3) end the connection: there
    // is no HTTP request to answer, and the TLS state may be mid-handshake.
    if (err.code?.startsWith('ERR_TLS_') === true || err.code?.startsWith('ERR_SSL_') === true) {
      log?.debug({ code: err.code, reason: err.message }, 'TLS connection closed')
      s.destroy()
      return
    }
    log?.debug({ code: err.code, reason: err.message }, 'client request refused by the parser')
    const [status, code, detail] = classify(err)
    const incoming = s.parser?.incoming
    const waiting = watchers.get(s)
    watchers.delete(s)
    // A request that was watching counts its own refusal when it ends; a reset is no refusal.
    if (waiting === undefined && err.code !== 'ECONNRESET') onRefused?.(status, code, (socket as unknown as { remoteAddress?: string }).remoteAddress)
    if (waiting !== undefined) for (const fn of waiting) fn(status, code)
    if (s._httpMessage != null && err.code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a request that said Connection: close: answer it, then close, no more.
      afterAnswers(s, () => s.end())
      return
    }
    if (s._httpMessage != null && err.code?.startsWith('HPE_') === true && (incoming == null || incoming.complete)) {
      // Bad bytes after one or more complete requests (pipelined, or trailing garbage): those
      // requests were proxied and are being answered; they get their answers, in order, and
      // then the refusal and the close. Cutting them off would leave the client counting
      // fewer answers than the requests the upstream served (CHECKLIST A8 differential).
      afterAnswers(s, () => lingerClose(s, rawProblem(status, code, detail)))
      return
    }
    // Node's own rule: a refusal only when no answer on this connection has started.
    if (err.code !== 'ECONNRESET' && s.writable && (s._httpMessage == null || s._httpMessage.headersSent !== true)) {
      if (err.code?.startsWith('HPE_') === true) {
        lingerClose(s, rawProblem(status, code, detail))
        return
      }
      s.write(rawProblem(status, code, detail))
    }
    s.destroy()
  })
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {})
    socket.end(rawProblem(400, codes.GW_BAD_REQUEST.code, 'CONNECT is not served: this gateway is not a forward proxy'))
  })
  // Without this listener Node sends 100 Continue at once, before any policy has looked at
  // the request; the request handler sends it when the body is about to be read.
  server.on('checkContinue', (req, res) => server.emit('request', req, res))

  let dropped = 0
  let lastWarned = 0
  server.on('drop', () => {
    // Over maxConnections: Node closed the connection on accept. Logged at most every 10 s.
    dropped++
    const now = Date.now()
    if (now - lastWarned > 10_000) {
      log?.warn({ dropped, maxConnections: server.maxConnections }, 'connections over limits.maxConnections were closed')
      lastWarned = now
      dropped = 0
    }
  })
  // An accept() failure (EMFILE: out of file descriptors) is reported on the server; without
  // a listener it would take the worker thread down.
  server.on('error', (err) => log?.error({ err }, 'http server error'))
  return server
}

/**
 * Limits that may change with a policy update: the server reads these per connection or per
 * check, so a new generation's values apply to new requests and connections.
 */
export function applyServerLimits (server: Server, config: GatewayConfig): void {
  const l = config.limits
  server.maxHeadersCount = l.maxHeadersCount + 1
  server.maxRequestsPerSocket = l.maxRequestsPerSocket
  server.maxConnections = l.maxConnections ?? HTTP_DEFAULTS.maxConnections
  server.headersTimeout = l.headersTimeout
  server.requestTimeout = l.requestTimeout
  server.keepAliveTimeout = l.keepAliveTimeout
  ;(server as Server & { maxHeaderSize?: number }).maxHeaderSize = l.maxHeaderSize
}

/** What Node keeps on an HTTP server's socket (internal, read only). */
type ParsedSocket = Duplex & {
  /** The response being written on this connection; the next queued one replaces it when it finishes. */
  _httpMessage?: (ServerResponse & { headersSent: boolean }) | null
  parser?: { incoming?: IncomingMessage | null } | null
}

// Connections the gateway has decided to close after the current answer. Node goes on
// parsing requests pipelined behind it; they are not served (never proxied), since their
// answers could never be sent: the upstream must see only what the client is answered for.
const closing = new WeakSet<object>()

/** End the connection after this answer, and serve nothing pipelined behind it. */
export function closeAfter (res: ServerResponse): void {
  res.shouldKeepAlive = false
  // The request's socket: a response queued behind another has none of its own yet.
  closing.add(res.req.socket)
}

/** True when requests arriving on this connection are not to be served (see closeAfter). */
export function isClosing (socket: object | null): boolean {
  return socket !== null && closing.has(socket)
}

// Connections whose parser failed (or timed out), and what to tell when one does: a request
// body on its way upstream must stop, since the bytes after the failure are not part of it.
const failed = new WeakSet<object>()
type FailureWatcher = (status: number, code: string) => void
const watchers = new WeakMap<object, Set<FailureWatcher>>()

/**
 * Call `fn` with the refusal's status and code if the parser of this connection fails or
 * times out (at once if it already has). Returns the function that cancels the watch.
 */
export function onParseFailure (socket: object | null, fn: FailureWatcher): () => void {
  if (socket === null || failed.has(socket)) {
    queueMicrotask(() => fn(400, codes.GW_BAD_REQUEST.code))
    return () => {}
  }
  let set = watchers.get(socket)
  if (set === undefined) watchers.set(socket, set = new Set())
  set.add(fn)
  return () => { set?.delete(fn) }
}

/** How long a refused connection keeps reading (and discarding) what the client still sends. */
const LINGER_MS = 1000

/**
 * Send the refusal, half-close, and keep reading for a moment before closing: a client still
 * sending its request (a large body, a megabyte of chunk extensions) would otherwise get a
 * reset for the unread bytes, which can destroy the refusal before it reads it. The failed
 * parser discards what arrives.
 */
function lingerClose (s: Duplex, response: string): void {
  if (!s.writable) {
    s.destroy()
    return
  }
  s.end(response)
  const timer = setTimeout(() => s.destroy(), LINGER_MS)
  timer.unref()
  s.once('close', () => clearTimeout(timer))
}

/** Run `fn` once every response already queued on the connection has finished (bounded). */
function afterAnswers (s: ParsedSocket, fn: () => void): void {
  let rounds = 0
  let done = false
  let watching: ServerResponse | undefined
  const check = (): void => {
    if (done) return
    if (s.destroyed) { done = true; return }
    const m = s._httpMessage
    if (m == null || rounds++ > 1000) { done = true; fn(); return }
    if (m === watching) return
    watching = m
    // Node hands the socket to the next queued response in its own 'finish' listener.
    const next = (): void => { setImmediate(check) }
    m.once('finish', next)
    m.once('close', next)
  }
  check()
}

function classify (err: NodeJS.ErrnoException): [number, string, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, codes.GW_HEADERS_TOO_LARGE.code, 'the request line and headers are larger than limits.maxHeaderSize']
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, codes.GW_BODY_TOO_LARGE.code, 'chunk extensions are too large']
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, codes.GW_REQUEST_TIMEOUT.code, 'the request was not received in time']
    default:
      return [400, codes.GW_BAD_REQUEST.code, `the request could not be parsed (${err.code ?? 'unknown'})`]
  }
}

/** A whole problem+json response, for a socket that has no ServerResponse. */
function rawProblem (status: number, code: string, detail: string): string {
  const body = JSON.stringify({ type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail, code })
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'content-type: application/problem+json\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'cache-control: no-store\r\n' +
    'connection: close\r\n\r\n' + body
}

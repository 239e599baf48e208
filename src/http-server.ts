import { createServer, STATUS_CODES } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
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
export function createHttpServer (config: GatewayConfig, log?: Logger): Server {
  const l = config.limits
  const server = createServer({
    maxHeaderSize: l.maxHeaderSize,
    requireHostHeader: true,
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
    headersTimeout: l.headersTimeout,
    requestTimeout: l.requestTimeout,
    keepAliveTimeout: l.keepAliveTimeout,
    connectionsCheckingInterval: 1000,
    noDelay: true
  })
  applyServerLimits(server, config)

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const s = socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null }
    if (err.code !== 'ECONNRESET' && s.writable && (s._httpMessage == null || s._httpMessage.headersSent !== true)) {
      const [status, code, detail] = classify(err)
      s.write(rawProblem(status, code, detail))
    }
    log?.debug({ code: err.code, reason: err.message }, 'client request refused by the parser')
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

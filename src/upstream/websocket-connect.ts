import { request as httpRequest } from 'node:http'
import type { ClientRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { Socket } from 'node:net'
import type { UpstreamConnectTls } from '../tls/upstream.js'
import type { Target } from './proxy.js'

/*
 * The upstream side of a WebSocket handshake: one node:http(s) request on its own
 * connection (websocket.ts says why not undici), made with the route's upstream TLS
 * settings and connect timeout.
 */

/** undici's code for a connect timeout: the handshake's is reported (and counted) alike. */
export const CONNECT_TIMEOUT = 'UND_ERR_CONNECT_TIMEOUT'

/**
 * Fail `req` when its socket has not connected (the TLS handshake included) within `ms`.
 * Not node:http's `timeout` option: that one is an idle timeout that would stay on the
 * socket after it is handed over to the tunnel.
 */
function connectDeadline (req: ClientRequest, ms: number, secure: boolean): void {
  if (ms <= 0) return
  req.once('socket', (sock: Socket) => {
    const timer = setTimeout(() => {
      const err: NodeJS.ErrnoException = new Error(`connect timeout (${ms} ms)`)
      err.code = CONNECT_TIMEOUT
      req.destroy(err)
    }, ms)
    timer.unref()
    const clear = (): void => { clearTimeout(timer) }
    sock.once(secure ? 'secureConnect' : 'connect', clear)
    sock.once('close', clear)
  })
}

/** The handshake request to `target` (not ended yet: the caller adds its listeners first). */
export function handshakeRequest (target: Target, path: string, headers: string[], tls: UpstreamConnectTls | undefined, connectTimeout: number): ClientRequest {
  const u = new URL(target.origin)
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  const secure = u.protocol === 'https:'
  const port = u.port === '' ? (secure ? 443 : 80) : Number(u.port)
  const opts = { host, port, path, method: 'GET', headers, agent: false, setHost: false } as const
  if (!secure) {
    const req = httpRequest(opts)
    connectDeadline(req, connectTimeout, false)
    return req
  }
  // The same TLS settings as the route's HTTP pools (src/tls/upstream.ts): the block's CA or
  // the system store, its servername or the target host as SNI (never an IP address: SNI
  // carries names only; the certificate is then checked against the IP), verification on
  // unless insecureSkipVerify.
  const servername = tls?.servername ?? (isIP(host) === 0 ? host : undefined)
  const req = httpsRequest({
    ...opts,
    ...(servername === undefined ? {} : { servername }),
    ...(tls?.ca === undefined ? {} : { ca: tls.ca }),
    rejectUnauthorized: tls?.rejectUnauthorized ?? true
  })
  connectDeadline(req, connectTimeout, true)
  return req
}

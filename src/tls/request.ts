import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { ListenTlsConfig } from '../config-schema.js'
import { codes } from '../errors.js'

/** An answer the gateway gives before the pipeline runs, for TLS reasons. */
export interface TlsAnswer { status: number, code: string, detail: string, headers?: Record<string, string> }

/** `Host` without port, lower-case, brackets off an IPv6 literal. */
function hostName (host: string): string {
  const v = host.toLowerCase()
  if (v.startsWith('[')) {
    const end = v.indexOf(']')
    return end === -1 ? v : v.slice(1, end)
  }
  const colon = v.indexOf(':')
  return colon === -1 ? v : v.slice(0, colon)
}

/**
 * The TLS checks of the request path, after routing:
 *
 * - On a TLS connection made with SNI, a Host naming another server is 421 (CHECKLIST I2):
 *   the certificate (and any client-certificate check) was chosen for the SNI name, so a
 *   request for another tenant must not ride on it. `sniHostMatch: false` turns it off.
 * - On a plain connection, a route with `redirectToHttps` answers 308 to the https:// URL:
 *   308 keeps the method and body, unlike 301/302. Nothing is proxied.
 */
export function tlsAnswer (req: IncomingMessage, tls: ListenTlsConfig | undefined, httpsPort: number | undefined, path: string, query: string): TlsAnswer | undefined {
  const socket = req.socket as TLSSocket
  if (socket.encrypted === true) {
    if (tls?.sniHostMatch !== true) return undefined
    const sni = (socket as TLSSocket & { servername?: string | false }).servername
    const host = req.headers.host
    if (typeof sni !== 'string' || sni === '' || host === undefined) return undefined
    if (hostName(host) === sni.toLowerCase()) return undefined
    return { status: 421, code: codes.GW_MISDIRECTED_REQUEST.code, detail: 'the Host header names another server than this TLS connection was made for (SNI)' }
  }
  if (httpsPort === undefined) return undefined
  // Host was checked (a host with an optional port); HTTP/1.0 may omit it: the address the
  // client reached is the best guess then.
  let name = req.headers.host === undefined ? (socket.localAddress ?? 'localhost') : hostName(req.headers.host)
  if (name.includes(':')) name = `[${name}]`
  const location = `https://${name}${httpsPort === 443 ? '' : `:${httpsPort}`}${path}${query === '' ? '' : `?${query}`}`
  return { status: 308, code: codes.GW_HTTPS_REQUIRED.code, detail: 'this route is served over HTTPS only', headers: { location } }
}

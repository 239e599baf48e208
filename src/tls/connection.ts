import type { TLSSocket } from 'node:tls'
import type { PeerCertificateInfo, TlsInfo } from '../types.js'

// Read once per connection: every request on a keep-alive connection shares the answer.
const cache = new WeakMap<object, TlsInfo>()

/** The subjectAltName entries as Node prints them (`DNS:a, URI:spiffe://x`), split. */
function sanEntries (san: string | undefined): string[] {
  return san === undefined || san === '' ? [] : san.split(', ')
}

function peerOf (s: TLSSocket): PeerCertificateInfo | undefined {
  const c = s.getPeerCertificate()
  // An empty object when the client sent none.
  if (c === null || typeof c !== 'object' || c.fingerprint256 === undefined) return undefined
  const cn = c.subject?.CN
  return Object.freeze({
    subject: Array.isArray(cn) ? cn[0] ?? '' : cn ?? '',
    san: Object.freeze(sanEntries(c.subjectaltname)),
    issuer: (Array.isArray(c.issuer?.CN) ? c.issuer.CN[0] : c.issuer?.CN) ?? '',
    fingerprint256: c.fingerprint256,
    verified: s.authorized
  })
}

/** What a request knows about its connection's TLS; undefined on a plain connection. */
export function connectionTls (socket: object | null | undefined): TlsInfo | undefined {
  if (socket == null || (socket as TLSSocket).encrypted !== true) return undefined
  let info = cache.get(socket)
  if (info === undefined) {
    const s = socket as TLSSocket
    const servername = (s as TLSSocket & { servername?: string | false }).servername
    info = Object.freeze({
      protocol: s.getProtocol() ?? '',
      cipher: s.getCipher()?.name ?? '',
      servername: typeof servername === 'string' ? servername.toLowerCase() : undefined,
      peerCertificate: peerOf(s),
      authorizationError: s.authorized ? undefined : (s.authorizationError === undefined || s.authorizationError === null ? undefined : String(s.authorizationError))
    })
    cache.set(socket, info)
  }
  return info
}

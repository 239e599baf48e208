import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { hasToken } from '../headers.js'

/**
 * Trailer fields (RFC 9110 §6.5). What the gateway does with them, and why:
 *
 * - Response trailers (upstream -> client) are passed on when the client said it accepts
 *   them (`TE: trailers`, HTTP/1.1, so the answer is chunked); otherwise dropped, which RFC
 *   9110 §6.5.1 allows ("a recipient... MAY discard"). The upstream is told with `TE:
 *   trailers` when the client sent it (CHECKLIST A25: "TE becomes trailers"), as Envoy does.
 * - Request trailers (client -> upstream) are dropped: undici, which sends every upstream
 *   request, ends a chunked body with an empty last chunk and has no way to write trailer
 *   fields, so forwarding them cannot be done with the libraries in use. Node still parses
 *   and discards them (`req.trailers`), so they are never taken as headers.
 *
 * Fields that must not be trailers (§6.5.1: framing, routing, request modifiers,
 * authentication, response control, content processing) and hop-by-hop ones are removed
 * even when trailers are passed on: a client that merged trailers into headers must not
 * learn a Content-Length, a Set-Cookie or a Location this way.
 */
const NOT_A_TRAILER: ReadonlySet<string> = new Set([
  // framing, hop-by-hop
  'transfer-encoding', 'content-length', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
  // routing and request modifiers
  'host', 'max-forwards', 'cache-control', 'expect', 'range', 'if-match', 'if-none-match', 'if-modified-since',
  'if-unmodified-since', 'if-range', 'pragma',
  // authentication
  'authorization', 'proxy-authorization', 'www-authenticate', 'proxy-authenticate', 'set-cookie', 'cookie',
  // response control data
  'age', 'expires', 'date', 'location', 'retry-after', 'vary', 'warning',
  // content processing
  'content-encoding', 'content-type', 'content-range'
])

/** True when the client accepts trailers: HTTP/1.1 (chunked) and `trailers` in its TE. */
export function acceptsTrailers (req: IncomingMessage): boolean {
  return req.httpVersionMinor >= 1 && hasToken(req.headers.te, 'trailers')
}

/** The trailer fields that may go to the client, or undefined when none. */
export function forwardableTrailers (trailers: IncomingHttpHeaders | Record<string, string | string[] | undefined> | null | undefined): Record<string, string | string[]> | undefined {
  if (trailers == null) return undefined
  let out: Record<string, string | string[]> | undefined
  for (const k in trailers) {
    const v = trailers[k]
    const name = k.toLowerCase()
    if (v === undefined || NOT_A_TRAILER.has(name)) continue
    (out ??= {})[name] = v
  }
  return out
}

/**
 * The upstream's `Trailer` announcement, less the names that will be removed; undefined when
 * nothing is left. Only sent on a response that will be chunked (Node refuses a Trailer header
 * otherwise): the caller checks there is a body and no Content-Length.
 */
export function announcedTrailers (headers: IncomingHttpHeaders): string | undefined {
  const t = headers.trailer
  if (t === undefined) return undefined
  const names = (Array.isArray(t) ? t.join(',') : t).split(',').map((n) => n.trim().toLowerCase()).filter((n) => n !== '' && !NOT_A_TRAILER.has(n) && /^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(n))
  return names.length === 0 ? undefined : names.join(', ')
}

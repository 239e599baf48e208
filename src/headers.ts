/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) and the ones proxies must not pass on. They are
 * dropped both ways, together with every header the `Connection` header names.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings'
])

/** Header names listed in `Connection` values, lower-cased; empty when there are none. */
export function connectionNominated (value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined
  const out = new Set<string>()
  for (const v of Array.isArray(value) ? value : [value]) {
    for (const token of v.split(',')) {
      const t = token.trim().toLowerCase()
      if (t !== '' && t !== 'close' && t !== 'keep-alive') out.add(t)
    }
  }
  return out.size === 0 ? undefined : out
}

/** True when a comma-separated header (Connection, Upgrade) has `token`, in any case. */
export function hasToken (value: string | string[] | undefined, token: string): boolean {
  if (value === undefined) return false
  for (const v of Array.isArray(value) ? value : [value]) {
    for (const t of v.split(',')) if (t.trim().toLowerCase() === token) return true
  }
  return false
}

// RFC 9110 field-value characters, as Node checks them: HTAB, SP, VCHAR and obs-text.
const UNSAFE_VALUE = /[^\t\x20-\x7e\x80-\xff]/

/** True when `value` can be sent as a header value as is (no CR, LF, NUL or other controls). */
export function isSafeHeaderValue (value: string): boolean {
  return !UNSAFE_VALUE.test(value)
}

/** What to do with a request header whose name has an underscore (Envoy's headers_with_underscores_action). */
export type UnderscoreAction = 'allow' | 'drop' | 'reject'

/** A request the gateway refuses before routing: status, problem code and detail. */
export interface HeadProblem { status: number, code: 'GW_BAD_REQUEST' | 'GW_NOT_IMPLEMENTED' | 'GW_HEADERS_TOO_LARGE' | 'GW_VERSION_NOT_SUPPORTED', detail: string }

/** inspectHead() result bits. */
export const HEAD_UPGRADE = 1
export const HEAD_DROP_UNDERSCORES = 2

// Headers a request may carry once only. Node keeps the first of two Content-Type lines; an
// upstream may read the last, so the two would act on different values (CHECKLIST A24). Two
// Host lines: RFC 9112 §3.2 (A21). Two Authorization lines are refused by the proxy step,
// after the authn plugins had their say (upstream/proxy.ts).
// Keyed by name length, so most names are never lower-cased; the number is a bit for `seen`.
const SINGLE: ReadonlyMap<number, readonly [string, number]> = new Map([
  [4, ['host', 1]], [12, ['content-type', 2]], [19, ['proxy-authorization', 8]]
])

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * Transfer-Encoding, as llhttp let it through (it already refuses `chunked` twice, a coding
 * after chunked, TE with Content-Length, and TE without a final chunked). The gateway
 * implements no coding but chunked, and never forwards one it does not implement: a list
 * with another coding before chunked (`gzip, chunked`) is 501 (RFC 9112 §6.1), anything
 * else but a lone `chunked` (empty list elements, several lines) is 400.
 */
function checkTransferEncoding (value: string): HeadProblem | undefined {
  const codings = value.split(',').map((c) => c.trim().toLowerCase())
  if (codings.length === 1 && codings[0] === 'chunked') return undefined
  const wellFormed = codings.every((c) => TOKEN.test(c)) && codings.indexOf('chunked') === codings.length - 1
  if (wellFormed) return { status: 501, code: 'GW_NOT_IMPLEMENTED', detail: `transfer coding '${codings.slice(0, -1).join(', ')}' is not supported: only chunked` }
  return { status: 400, code: 'GW_BAD_REQUEST', detail: 'invalid Transfer-Encoding' }
}

/**
 * One pass over the raw header lines, for what Node's parser lets through: duplicate
 * Host, Content-Type and Proxy-Authorization, Transfer-Encoding other than a lone `chunked` (and any TE on an
 * HTTP/1.0 request, RFC 9112 §6.1), header names with `_`. Returns a problem, or bits:
 * HEAD_UPGRADE when the request asks for a protocol upgrade, HEAD_DROP_UNDERSCORES when
 * underscore names are to be removed (dropUnderscoreHeaders).
 */
export function inspectHead (raw: readonly string[], httpMinor: number, underscores: UnderscoreAction): HeadProblem | number {
  let flags = 0
  let seen = 0
  let te: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const len = name.length
    if (underscores !== 'allow' && name.includes('_')) {
      if (underscores === 'reject') return { status: 400, code: 'GW_BAD_REQUEST', detail: `header names with an underscore are not accepted (${name})` }
      flags |= HEAD_DROP_UNDERSCORES
    }
    const single = SINGLE.get(len)
    if (single !== undefined) {
      const [want, bit] = single
      if (name.toLowerCase() === want) {
        if ((seen & bit) !== 0) return { status: 400, code: 'GW_BAD_REQUEST', detail: `more than one ${name} header` }
        seen |= bit
      }
    } else if (len === 17) {
      if (name.toLowerCase() === 'transfer-encoding') te = te === undefined ? raw[i + 1] as string : te + ', ' + (raw[i + 1] as string)
    } else if (len === 7 && name.toLowerCase() === 'upgrade') {
      flags |= HEAD_UPGRADE
    }
  }
  if (te !== undefined) {
    if (httpMinor === 0) return { status: 400, code: 'GW_BAD_REQUEST', detail: 'Transfer-Encoding in an HTTP/1.0 request' }
    const p = checkTransferEncoding(te)
    if (p !== undefined) return p
  }
  return flags
}

/** Remove every header whose name has an underscore, from rawHeaders and from headers. */
export function dropUnderscoreHeaders (req: { rawHeaders: string[], headers: Record<string, unknown> }): void {
  const raw = req.rawHeaders
  let w = 0
  for (let r = 0; r < raw.length; r += 2) {
    const name = raw[r] as string
    if (name.includes('_')) {
      delete req.headers[name.toLowerCase()]
      continue
    }
    raw[w++] = name
    raw[w++] = raw[r + 1] as string
  }
  raw.length = w
}

// RFC 3986 host: a bracketed IPv6 literal, or a name/IPv4 address, then an optional port.
// No userinfo (`user@`), no percent-escapes, no spaces, no commas (a list of hosts).
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?$/

/** True when a Host value (or an absolute-form authority) is one host, with an optional port. */
export function isValidHost (value: string): boolean {
  return HOST.test(value)
}

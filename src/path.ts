/**
 * One path normalization, used by routing and by every policy, and forwarded upstream, so
 * the gateway and the upstream agree on which resource a request names (CHECKLIST A30):
 *
 *   1. a fragment (`#`) is refused: it is never part of a request target (RFC 9112 §3.2),
 *      and an upstream that cuts it off would see another path than the gateway routed;
 *   2. percent-encoded unreserved characters are decoded (`%61` -> `a`), other escapes are
 *      upper-cased (`%2f` stays an escape, so it is refused below);
 *   3. an encoded slash or backslash (`%2F`, `%5C`), a raw backslash or an encoded NUL is
 *      refused: upstreams disagree on what they mean;
 *   4. a `;` is refused unless `semicolons` is 'allow': Java servlet containers cut
 *      `;params` off a segment (`/admin;x` -> `/admin`), so the gateway would route one
 *      path and the upstream serve another;
 *   5. repeated slashes are merged (`//admin` -> `/admin`), unless switched off;
 *   6. dot segments are removed (RFC 3986 §5.2.4), never climbing above the root.
 *
 * The query is split off at the first `?` and left as sent.
 */
export interface NormalizedTarget { path: string, query: string }

export class BadPathError extends Error {
  override name = 'BadPathError'
}

const UNRESERVED = /[A-Za-z0-9\-._~]/
const HEX = '0123456789ABCDEF'

function decodeUnreserved (raw: string): string {
  if (!raw.includes('%')) return raw
  let out = ''
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string
    if (c !== '%') { out += c; continue }
    const h = raw.slice(i + 1, i + 3).toUpperCase()
    if (h.length !== 2 || !HEX.includes(h[0] as string) || !HEX.includes(h[1] as string)) throw new BadPathError('invalid percent-encoding in path')
    if (h === '2F' || h === '5C') throw new BadPathError('encoded slash or backslash in path')
    if (h === '00') throw new BadPathError('encoded NUL in path')
    const ch = String.fromCharCode(parseInt(h, 16))
    out += UNRESERVED.test(ch) ? ch : '%' + h
    i += 2
  }
  return out
}

function removeDotSegments (path: string): string {
  const out: string[] = []
  const segments = path.split('/')
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string
    if (s === '.') {
      if (i === segments.length - 1) out.push('')
    } else if (s === '..') {
      out.pop()
      if (i === segments.length - 1) out.push('')
    } else {
      out.push(s)
    }
  }
  return '/' + out.join('/')
}

/**
 * Split an origin-form target into a normalized path and the raw query. Any other form
 * (asterisk `*`, authority `host:80`, a bare `admin`, absolute `http://...`) is refused here;
 * the request handler turns an absolute-form target into origin-form first (see
 * splitAbsoluteForm).
 */
export function normalizeTarget (target: string, mergeSlashes = true, semicolons: 'reject' | 'allow' = 'reject'): NormalizedTarget {
  const q = target.indexOf('?')
  let path = q === -1 ? target : target.slice(0, q)
  const query = q === -1 ? '' : target.slice(q + 1)
  if (path[0] !== '/') throw new BadPathError('the request target must be a path')
  if (target.includes('#')) throw new BadPathError('a fragment (#) is not allowed in the request target')
  if (path.includes('\\')) throw new BadPathError('backslash in path')
  if (semicolons === 'reject' && path.includes(';')) throw new BadPathError('a ; (path parameter) is not allowed in the path')
  // Fast path: nothing to decode, merge or remove (most requests).
  if (!path.includes('%') && !path.includes('//') && !path.includes('/.')) return { path, query }
  path = decodeUnreserved(path)
  if (mergeSlashes) path = path.replace(/\/{2,}/g, '/')
  if (path.includes('/.')) path = removeDotSegments(path)
  return { path, query }
}

/** An absolute-form target (`http://a.example/x?y`) split into its authority and the rest. */
export interface AbsoluteTarget { authority: string, target: string }

const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//

/**
 * `http://a.example:8080/x?y` -> authority `a.example:8080` (lower-case), target `/x?y`
 * (`/` when the path is empty). undefined for any other form. Only http and https URIs are
 * taken; userinfo (`user@`) is refused, as it is in Host (RFC 9110 §4.2.4).
 */
export function splitAbsoluteForm (target: string): AbsoluteTarget | undefined {
  if (target[0] === '/' || !ABSOLUTE.test(target)) return undefined
  const scheme = target.slice(0, target.indexOf(':')).toLowerCase()
  if (scheme !== 'http' && scheme !== 'https') throw new BadPathError(`a ${scheme}: URI is not a request target this gateway serves`)
  const start = scheme.length + 3
  let end = start
  while (end < target.length && target[end] !== '/' && target[end] !== '?' && target[end] !== '#') end++
  const authority = target.slice(start, end).toLowerCase()
  if (authority === '') throw new BadPathError('the absolute-form target has no host')
  if (authority.includes('@')) throw new BadPathError('userinfo is not allowed in the request target')
  const rest = target.slice(end)
  return { authority, target: rest === '' || rest[0] !== '/' ? '/' + rest : rest }
}

/**
 * One path normalization, used by routing and by every policy, and forwarded upstream, so
 * the gateway and the upstream agree on which resource a request names (CHECKLIST A30):
 *
 *   1. percent-encoded unreserved characters are decoded (`%61` -> `a`), other escapes are
 *      upper-cased (`%2f` stays an escape, so it is refused below);
 *   2. an encoded slash or backslash (`%2F`, `%5C`), a raw backslash or an encoded NUL is
 *      refused: upstreams disagree on what they mean;
 *   3. repeated slashes are merged (`//admin` -> `/admin`);
 *   4. dot segments are removed (RFC 3986 §5.2.4), never climbing above the root.
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
    if (s === '.' ) {
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

/** Split an origin-form target into a normalized path and the raw query. */
export function normalizeTarget (target: string, mergeSlashes = true): NormalizedTarget {
  const q = target.indexOf('?')
  let path = q === -1 ? target : target.slice(0, q)
  const query = q === -1 ? '' : target.slice(q + 1)
  if (path[0] !== '/') throw new BadPathError('the request target must be a path')
  if (path.includes('\\')) throw new BadPathError('backslash in path')
  // Fast path: nothing to decode, merge or remove (most requests).
  if (!path.includes('%') && !path.includes('//') && !path.includes('/.')) return { path, query }
  path = decodeUnreserved(path)
  if (mergeSlashes) path = path.replace(/\/{2,}/g, '/')
  if (path.includes('/.')) path = removeDotSegments(path)
  return { path, query }
}

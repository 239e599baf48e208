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

// RFC 9110 field-value characters, as Node checks them: HTAB, SP, VCHAR and obs-text.
const UNSAFE_VALUE = /[^\t\x20-\x7e\x80-\xff]/

/** True when `value` can be sent as a header value as is (no CR, LF, NUL or other controls). */
export function isSafeHeaderValue (value: string): boolean {
  return !UNSAFE_VALUE.test(value)
}

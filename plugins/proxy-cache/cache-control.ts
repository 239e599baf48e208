import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

/**
 * Cache-Control (RFC 9111 §5.2) as a map of lower-case directive -> value (true for a
 * directive without one). undefined when a header line does not parse: for a response the
 * caller then stores nothing (deny on doubt).
 */
export type Directives = Map<string, string | true>

// `name[=token|"quoted"]` followed by a comma or the end; sticky, so every byte is matched.
const DIRECTIVE = /[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+.^_`|~0-9A-Za-z-]+)))?[ \t]*(?:,|$)/y

const NONE: Directives = new Map()

export function parseCacheControl (value: string | readonly string[] | number | undefined): Directives | undefined {
  if (value === undefined) return NONE
  const text = Array.isArray(value) ? value.join(',') : String(value)
  const out: Directives = new Map()
  let i = 0
  while (i < text.length) {
    // Empty list elements (`a,,b`) are allowed by the list syntax (RFC 9110 §5.6.1).
    if (text[i] === ',' || text[i] === ' ' || text[i] === '\t') { i++; continue }
    DIRECTIVE.lastIndex = i
    const m = DIRECTIVE.exec(text)
    if (m === null) return undefined
    const name = (m[1] as string).toLowerCase()
    const v = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3] ?? true
    // Two values for one directive: RFC 9111 §4.2.1 says use the first or treat the response
    // as stale; different ones are a doubt, and doubt is "do not store".
    const prev = out.get(name)
    if (prev !== undefined && prev !== v) return undefined
    out.set(name, v)
    i = DIRECTIVE.lastIndex
  }
  return out
}

/** delta-seconds (RFC 9111 §1.2.2): digits only; anything else is undefined. */
export function deltaSeconds (v: string | true | undefined): number | undefined {
  if (typeof v !== 'string' || !/^[0-9]{1,10}$/.test(v)) return undefined
  return Number(v)
}

/** What the request allows the cache to do (RFC 9111 §5.2.1). */
export interface RequestRules {
  /** Neither serve from nor store into the cache. */
  noStore: boolean
  /** Do not serve from the cache (it may store the fresh response). */
  noCache: boolean
  /** Serve only entries at most this old (seconds). */
  maxAge: number | undefined
  onlyIfCached: boolean
}

export function requestRules (headers: IncomingHttpHeaders): RequestRules {
  const cc = headers['cache-control']
  const d = parseCacheControl(cc) ?? NONE
  // Pragma: no-cache counts only when there is no Cache-Control (RFC 9111 §5.4).
  const pragmaNoCache = cc === undefined && typeof headers.pragma === 'string' && /(^|,)\s*no-cache\s*(,|$)/i.test(headers.pragma)
  const maxAge = d.has('max-age') ? deltaSeconds(d.get('max-age')) ?? 0 : undefined
  return { noStore: d.has('no-store'), noCache: d.has('no-cache') || pragmaNoCache || maxAge === 0, maxAge, onlyIfCached: d.has('only-if-cached') }
}

/** Why a response is not stored, or how long it stays fresh. */
export type Storability =
  | { store: false, why: string }
  | { store: true, ttlMs: number, initialAge: number, authOk: boolean, vary: readonly string[] }

export interface StoreLimits {
  statuses: ReadonlySet<number>
  defaultTtlMs: number
  maxTtlMs: number
  maxEntrySize: number
}

/** Header names of a Vary value, lower-case, sorted and unique; ['*'] for `*`. */
export function varyNames (value: string | readonly string[] | number | undefined): readonly string[] {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(',') : String(value)
  const names = new Set<string>()
  for (const part of text.split(',')) {
    const n = part.trim().toLowerCase()
    if (n === '*') return ['*']
    if (n !== '') names.add(n)
  }
  return [...names].sort()
}

/**
 * May this response be stored by a shared cache, and for how long (RFC 9111 §3, §4.2)?
 * Conservative where the RFC leaves room: `no-cache` and `private`, even with field names,
 * are "not stored" (the cache does not revalidate); must-revalidate / proxy-revalidate are
 * honoured by never serving a stale entry, and do not make a response to an authorized
 * request storable.
 */
export function storability (status: number, headers: Readonly<IncomingHttpHeaders | OutgoingHttpHeaders>, limits: StoreLimits, nowMs: number): Storability {
  if (!limits.statuses.has(status)) return { store: false, why: `status ${status}` }
  const d = parseCacheControl(headers['cache-control'] as string | string[] | undefined)
  if (d === undefined) return { store: false, why: 'unparsable Cache-Control' }
  if (d.has('no-store')) return { store: false, why: 'no-store' }
  if (d.has('private')) return { store: false, why: 'private' }
  if (d.has('no-cache')) return { store: false, why: 'no-cache' }
  if (headers['set-cookie'] !== undefined) return { store: false, why: 'Set-Cookie' }
  const vary = varyNames(headers.vary as string | string[] | undefined)
  if (vary[0] === '*') return { store: false, why: 'Vary: *' }
  const cl = headers['content-length']
  if (cl !== undefined && Number(cl) > limits.maxEntrySize) return { store: false, why: 'over maxEntrySize' }
  let lifetime: number | undefined
  if (d.has('s-maxage')) lifetime = deltaSeconds(d.get('s-maxage'))
  else if (d.has('max-age')) lifetime = deltaSeconds(d.get('max-age'))
  if ((d.has('s-maxage') || d.has('max-age')) && lifetime === undefined) return { store: false, why: 'invalid max-age' }
  let ttlMs: number
  if (lifetime !== undefined) {
    ttlMs = lifetime * 1000
  } else if (headers.expires !== undefined) {
    // An invalid Expires (or `0`) means already expired (RFC 9111 §5.3).
    const exp = Date.parse(String(headers.expires))
    const date = headers.date !== undefined ? Date.parse(String(headers.date)) : nowMs
    ttlMs = Number.isNaN(exp) || Number.isNaN(date) ? 0 : exp - date
  } else {
    ttlMs = limits.defaultTtlMs
  }
  ttlMs = Math.min(ttlMs, limits.maxTtlMs)
  const ageValue = headers.age !== undefined ? deltaSeconds(String(headers.age)) ?? 0 : 0
  if (ttlMs - ageValue * 1000 <= 0) return { store: false, why: 'not fresh' }
  return { store: true, ttlMs: ttlMs - ageValue * 1000, initialAge: ageValue, authOk: d.has('public') || d.has('s-maxage'), vary }
}

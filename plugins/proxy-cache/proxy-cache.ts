import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { toMs } from '../../src/duration.js'
import type { PluginApi, PluginHooks, RequestContext, ResponseTap } from '../../src/types.js'
import { requestRules, storability } from './cache-control.js'
import type { StoreLimits } from './cache-control.js'
import { acquireCache, releaseCache, stableJson } from './store.js'
import type { Entry, Fill, ResponseCache, VaryRecord } from './store.js'
import type { ProxyCacheConfig } from './schema.js'

/** Reason code of the 504 for `Cache-Control: only-if-cached` with nothing stored. */
export const ONLY_IF_CACHED = 'CACHE_ONLY_IF_CACHED'

// Key parts are joined by NUL, which no host, path (%00 is refused), header value or
// consumer id can hold, so two different requests never make the same key.
const SEP = '\u0000'
/** Rough bytes of bookkeeping per item, so that many tiny entries still count. */
const OVERHEAD = 256
/** Fields a 304 carries (RFC 9110 §15.4.5). */
const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified']

function sortedQuery (q: string): string {
  if (q === '' || !q.includes('&')) return q
  // Stable: repeated names keep their order (a=1&a=2 is not a=2&a=1).
  return q.split('&').map((p, i) => ({ p, i, n: p.split('=', 1)[0] as string }))
    .sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : a.i - b.i)).map((x) => x.p).join('&')
}

/** The values of the Vary headers of a request, one per name, absent told from empty. */
function varyPart (names: readonly string[], headers: IncomingHttpHeaders): string {
  let out = ''
  for (const n of names) {
    const v = headers[n]
    out += SEP + (v === undefined ? '\u0001' : Array.isArray(v) ? v.join(', ') : v)
  }
  return out
}

function headerBytes (h: OutgoingHttpHeaders): number {
  let n = 0
  for (const k in h) n += k.length + String(h[k]).length + 4
  return n
}

/**
 * The consumer as the upstream is told about it (id, groups, scopes: the identity headers),
 * so that neither another consumer nor the same one holding other scopes (another token)
 * is given a response made for this identity.
 */
function identityOf (ctx: RequestContext): string {
  const c = ctx.consumer
  if (c === undefined) return ''
  return c.groups.length === 0 && c.scopes.length === 0 ? c.id : `${c.id}\u0001${c.groups.join(',')}\u0001${c.scopes.join(' ')}`
}

/** RFC 9110 §13.1.2 weak comparison: does If-None-Match name the entry's ETag? */
function etagMatches (inm: string, etag: string): boolean {
  if (inm.trim() === '*') return true
  const strip = (t: string): string => t.trim().replace(/^W\//, '')
  const mine = strip(etag)
  return inm.split(',').some((t) => strip(t) === mine)
}

function notModified (req: IncomingHttpHeaders, e: Entry): boolean {
  const etag = e.headers.etag
  if (req['if-none-match'] !== undefined) return typeof etag === 'string' && etagMatches(req['if-none-match'], etag)
  const ims = req['if-modified-since']
  const lm = e.headers['last-modified']
  if (ims === undefined || typeof lm !== 'string') return false
  const a = Date.parse(ims)
  const b = Date.parse(lm)
  return !Number.isNaN(a) && !Number.isNaN(b) && b <= a
}

/**
 * The proxy-cache instance: in the `proxy` phase, after every policy has admitted the
 * request, it answers GET and HEAD from this worker's cache or lets the request go
 * upstream and taps the response to store it.
 */
export function createProxyCache (config: ProxyCacheConfig, api: PluginApi): PluginHooks {
  const limits: StoreLimits = {
    statuses: new Set(config.statuses),
    defaultTtlMs: toMs(config.defaultTtl),
    maxTtlMs: toMs(config.maxTtl),
    maxEntrySize: config.maxEntrySize
  }
  const lockMs = toMs(config.lockTimeout)
  if (config.maxEntrySize > config.maxBytes) throw new Error(`maxEntrySize (${config.maxEntrySize}) is larger than maxBytes (${config.maxBytes}): no such entry could be kept`)
  const header = config.header.toLowerCase()
  // A dry run (the acceptor validating) keeps no cache and takes no reference.
  if (api.mode === 'dry-run') return {}
  const identity = `${api.route ?? ''}${SEP}${stableJson(config)}`
  const cache: ResponseCache = acquireCache(identity, { maxEntries: config.maxEntries, maxBytes: config.maxBytes })

  /** May a stored response answer this request, given its Authorization (RFC 9111 §3.5)? */
  const authAllows = (ctx: RequestContext, authOk: boolean): boolean => {
    if (ctx.headers.authorization === undefined || authOk) return true
    return config.authorized === 'consumer' && ctx.consumer !== undefined && !ctx.consumer.anonymous
  }

  const hit = (ctx: RequestContext, e: Entry, now: number): void => {
    ctx.setResponseHeader(header, 'HIT')
    ctx.setResponseHeader('age', Math.floor(e.initialAge + (now - e.storedAt) / 1000))
    if (notModified(ctx.headers, e)) {
      const h: OutgoingHttpHeaders = {}
      for (const f of NOT_MODIFIED_FIELDS) if (e.headers[f] !== undefined) h[f] = e.headers[f]
      ctx.respond(304, h)
      return
    }
    ctx.respond(e.status, e.headers, e.body)
  }

  /** Go upstream as the one request filling `key`; later requests for it wait on this one. */
  const lead = (ctx: RequestContext, key: string, primary: string, host: string, target: string): void => {
    let settle!: (e: Entry | undefined) => void
    const fill: Fill = { done: new Promise((resolve) => { settle = resolve }) }
    cache.fills.set(key, fill)
    const finish = (e: Entry | undefined): void => {
      if (cache.fills.get(key) === fill) cache.fills.delete(key)
      settle(e)
    }
    let chunks: Buffer[] = []
    let size = 0
    let stored: { status: number, headers: OutgoingHttpHeaders, ttlMs: number, initialAge: number, authOk: boolean, vary: readonly string[] } | undefined
    const reqHeaders = ctx.headers
    const tap: ResponseTap = {
      headers (status, h) {
        const s = storability(status, h, limits, Date.now())
        if (!s.store || !authAllows(ctx, s.authOk)) {
          finish(undefined)
          return false
        }
        const headers: OutgoingHttpHeaders = { ...h }
        delete headers.age
        delete headers[header]
        stored = { status, headers, ttlMs: s.ttlMs, initialAge: s.initialAge, authOk: s.authOk, vary: s.vary }
        return true
      },
      data (chunk) {
        size += chunk.length
        if (size > limits.maxEntrySize) {
          // Over the cap: stop collecting; the rest streams to the client untouched.
          chunks = []
          finish(undefined)
          return false
        }
        chunks.push(chunk)
        return true
      },
      end () {
        if (stored === undefined) return finish(undefined)
        const now = Date.now()
        // One copy into memory of its own: a chunk is often a slice of a larger socket read,
        // and keeping the slice would keep (and not count) all of it; allocUnsafeSlow also
        // stays out of Node's shared 8 KiB pool for the same reason.
        const body = Buffer.allocUnsafeSlow(size)
        let at = 0
        for (const c of chunks) at += c.copy(body, at)
        chunks = []
        // The key the response belongs under: its own Vary names, this request's values.
        const k = 'e' + SEP + primary + varyPart(stored.vary, reqHeaders)
        const e: Entry = {
          kind: 'response',
          key: k,
          status: stored.status,
          headers: stored.headers,
          body,
          storedAt: now,
          expiresAt: now + stored.ttlMs,
          initialAge: stored.initialAge,
          authOk: stored.authOk,
          vary: stored.vary,
          host,
          target,
          size: body.length + headerBytes(stored.headers) + k.length + OVERHEAD
        }
        const vk = 'v' + SEP + primary
        if (stored.vary.length > 0) {
          const rec: VaryRecord = { kind: 'vary', names: stored.vary, host, target, size: vk.length + OVERHEAD }
          cache.lru.set(vk, rec)
        } else {
          cache.lru.delete(vk)
        }
        cache.lru.set(k, e)
        finish(e)
      },
      abort () { finish(undefined) }
    }
    ctx.tapResponse(tap)
  }

  /**
   * Wait (bounded) for a fill of the same key; serve its entry if it fits this request.
   * Otherwise go upstream, as the new filler when the first one gave up (its client left).
   */
  const wait = async (ctx: RequestContext, fill: Fill, key: string, primary: string, host: string, target: string): Promise<void> => {
    let timer: NodeJS.Timeout | undefined
    const e = await Promise.race([
      fill.done,
      new Promise<undefined>((resolve) => { timer = setTimeout(resolve, lockMs, undefined) })
    ])
    clearTimeout(timer)
    if (e !== undefined && e.key === 'e' + SEP + primary + varyPart(e.vary, ctx.headers) && authAllows(ctx, e.authOk)) {
      hit(ctx, e, Date.now())
      return
    }
    ctx.setResponseHeader(header, 'MISS')
    if (e === undefined && ctx.method === 'GET' && !cache.fills.has(key)) lead(ctx, key, primary, host, target)
  }

  return {
    onRequest (ctx: RequestContext): void | Promise<void> {
      // Requests no route took (404, 405) are never proxied: nothing to cache.
      if (ctx.route.name === '') return
      const h = ctx.headers
      const method = ctx.method
      const rules = requestRules(h)
      const hasBody = h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')
      // Ranges are not cached (206 is not stored), nor requests whose body might matter.
      if ((method !== 'GET' && method !== 'HEAD') || rules.noStore || hasBody || h.range !== undefined) {
        ctx.setResponseHeader(header, 'BYPASS')
        return
      }
      const host = (h.host ?? '').toLowerCase()
      const q = config.sortQuery ? sortedQuery(ctx.upstreamQuery) : ctx.upstreamQuery
      const target = q === '' ? ctx.path : `${ctx.path}?${q}`
      // GET and HEAD share a key: a HEAD is answered from the GET's entry.
      const primary = ctx.route.name + SEP + host + SEP + identityOf(ctx) + SEP + target
      const rec = cache.lru.get('v' + SEP + primary)
      const key = 'e' + SEP + primary + varyPart(rec?.kind === 'vary' ? rec.names : [], h)
      const now = Date.now()
      if (!rules.noCache) {
        const e = cache.fresh(key, now)
        if (e !== undefined && authAllows(ctx, e.authOk) && (rules.maxAge === undefined || e.initialAge + (now - e.storedAt) / 1000 <= rules.maxAge)) {
          hit(ctx, e, now)
          return
        }
      }
      if (rules.onlyIfCached) {
        ctx.setResponseHeader(header, 'MISS')
        ctx.reply(504, { code: ONLY_IF_CACHED, detail: 'only-if-cached: no stored response for this request' })
        return
      }
      const fill = cache.fills.get(key)
      if (fill !== undefined && !rules.noCache && lockMs > 0) return wait(ctx, fill, key, primary, host, target)
      ctx.setResponseHeader(header, 'MISS')
      // A HEAD's response has no body to store; a request already covered by a fill (or
      // told not to wait) goes upstream on its own.
      if (method === 'GET' && fill === undefined) lead(ctx, key, primary, host, target)
    },

    close () { releaseCache(identity) }
  }
}

import type { OutgoingHttpHeaders } from 'node:http'
import { LRUCache } from 'lru-cache'
import { onCachePurge } from '../../src/cache-purge.js'
import type { PurgeSelector } from '../../src/cache-purge.js'

/** A stored response. */
export interface Entry {
  readonly kind: 'response'
  readonly key: string
  readonly status: number
  /** The upstream's headers as the client got them, minus Age and the cache's own header. */
  readonly headers: OutgoingHttpHeaders
  readonly body: Buffer
  /** Date.now() when stored, and when it stops being fresh. */
  readonly storedAt: number
  readonly expiresAt: number
  /** The upstream's Age, seconds (RFC 9111 §4.2.3), added to the time spent here. */
  readonly initialAge: number
  /** public or s-maxage: may answer a request with Authorization (RFC 9111 §3.5). */
  readonly authOk: boolean
  /** The Vary names it was stored under (sorted). */
  readonly vary: readonly string[]
  readonly host: string
  readonly target: string
  readonly size: number
}

/**
 * The Vary names last seen for a primary key: they say which request headers pick the
 * entry. Kept in the same LRU (so bounded with everything else), small.
 */
export interface VaryRecord {
  readonly kind: 'vary'
  readonly names: readonly string[]
  readonly host: string
  readonly target: string
  readonly size: number
}

export type Item = Entry | VaryRecord

/** A fill in progress: the first request for a key went upstream; later ones wait on it. */
export interface Fill {
  readonly done: Promise<Entry | undefined>
}

export interface CacheLimits { maxEntries: number, maxBytes: number }

/**
 * One cache: an LRU bounded by count and bytes (lru-cache), plus the fills in progress.
 * Entries are checked for freshness when read (a stale one is dropped then); they are
 * never revalidated.
 */
export class ResponseCache {
  readonly lru: LRUCache<string, Item>
  readonly fills = new Map<string, Fill>()

  constructor (limits: CacheLimits) {
    this.lru = new LRUCache<string, Item>({
      max: limits.maxEntries,
      maxSize: limits.maxBytes,
      sizeCalculation: (item) => item.size
    })
  }

  /** A fresh entry under `key`, or undefined (a stale one is dropped). */
  fresh (key: string, now: number): Entry | undefined {
    const e = this.lru.get(key)
    if (e === undefined || e.kind !== 'response') return undefined
    if (now >= e.expiresAt) {
      this.lru.delete(key)
      return undefined
    }
    return e
  }

  purge (s: PurgeSelector): number {
    const doomed: string[] = []
    for (const [k, item] of this.lru.entries()) {
      if (s.host !== undefined && item.host !== s.host) continue
      if (s.key !== undefined && item.target !== s.key) continue
      if (s.prefix !== undefined && !item.target.startsWith(s.prefix)) continue
      doomed.push(k)
    }
    let n = 0
    for (const k of doomed) {
      // Vary records are bookkeeping: only responses are counted.
      if (this.lru.get(k)?.kind === 'response') n++
      this.lru.delete(k)
    }
    return n
  }
}

/*
 * Caches of this worker thread, by instance identity (route + the plugin's whole config):
 * an instance of the next generation with the same identity gets the same cache, so a
 * policy update that leaves the plugin's config alone keeps its entries, and a changed
 * config starts empty. Counted like oauth2-introspection's pools: create() takes a
 * reference, close() gives it back; the two-phase switch builds the new generation before
 * the old one is closed, so an unchanged cache never drops to zero.
 */
const caches = new Map<string, { cache: ResponseCache, refs: number }>()
let unregister: (() => void) | undefined

export function acquireCache (identity: string, limits: CacheLimits): ResponseCache {
  let c = caches.get(identity)
  if (c === undefined) {
    c = { cache: new ResponseCache(limits), refs: 0 }
    caches.set(identity, c)
  }
  c.refs++
  unregister ??= onCachePurge((s) => {
    let n = 0
    for (const { cache } of caches.values()) n += cache.purge(s)
    return n
  })
  return c.cache
}

export function releaseCache (identity: string): void {
  const c = caches.get(identity)
  if (c === undefined || --c.refs > 0) return
  caches.delete(identity)
  c.cache.lru.clear()
  if (caches.size === 0) {
    unregister?.()
    unregister = undefined
  }
}

/** JSON with object keys sorted: the same config written in another order is the same identity. */
export function stableJson (v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`
  }
  return JSON.stringify(v)
}

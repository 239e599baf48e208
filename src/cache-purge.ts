/**
 * Purging response caches that live in worker threads. The admin API runs in the acceptor
 * (main thread) and each worker keeps its own caches, so a purge travels as a message to
 * every worker (`purge-cache`, src/types.ts), whose serve task calls `purgeCaches()`: this
 * registry, one per thread, reaches every cache a plugin registered in that thread.
 */

/** Which entries to drop; with neither field, all of them. */
export interface PurgeSelector {
  /** The request target as the cache keys it (normalized path, `?query`): exact match. */
  key?: string
  /** Entries whose target starts with this. */
  prefix?: string
  /** Only entries for this Host (lower-case, port included when the client sent one). */
  host?: string
}

/** A cache's purge function: drops what `selector` picks, returns how many entries. */
export type Purger = (selector: PurgeSelector) => number

const purgers = new Set<Purger>()

/** Register a cache (once per cache, not per generation); returns the unregister function. */
export function onCachePurge (purger: Purger): () => void {
  purgers.add(purger)
  return () => { purgers.delete(purger) }
}

/** Purge every registered cache of this thread; the number of entries dropped. */
export function purgeCaches (selector: PurgeSelector): number {
  let n = 0
  for (const p of purgers) n += p(selector)
  return n
}

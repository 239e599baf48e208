/**
 * Static path patterns, matched without find-my-way.
 *
 * Building a find-my-way tree costs tens of microseconds per pattern (it compiles functions
 * per handler and scans its route list on every insert), so a 1,000-route config cost every
 * worker ~90 ms per policy update whenever one path changed. Most patterns are static
 * (`/orders` and its prefix form `/orders/*`); those are kept here in two Maps, built in
 * O(n), and only the others go into a tree.
 *
 * The split must not change which route a request gets. It is made per first path segment:
 * a first segment all of whose patterns are static is a *shard* held here; every other
 * pattern (parameters, wildcards, odd characters, the root `/` and `/*`) stays in the tree.
 * find-my-way walks static nodes first and backtracks only on failure, so for a request
 * whose first segment is a shard it searches exactly that shard's patterns first (longest
 * exact-or-prefix match, which is what a tree of static nodes and trailing wildcards yields)
 * and then the remaining patterns in their own order: the same as asking this table, then
 * the tree of the rest. A shard segment is made of unreserved characters only; the path
 * normalizer (path.ts) has already decoded escapes of unreserved characters, so a request
 * segment that still holds an escape can never equal one, as in the tree.
 */
const UNRESERVED_SEGMENT = /^[A-Za-z0-9\-._~]+$/

/** The first segment of a pattern or path: '' for `/`, `/*` gives '*'. */
export function firstSegment (path: string): string {
  const end = path.indexOf('/', 1)
  return end === -1 ? path.slice(1) : path.slice(1, end)
}

/** Unreserved segments only, optionally followed by `/*` (a prefix pattern). */
export function isStaticPattern (pattern: string): boolean {
  const base = pattern.endsWith('/*') ? pattern.slice(0, -2) : pattern
  if (base.length < 2) return false
  for (const s of base.slice(1).split('/')) if (!UNRESERVED_SEGMENT.test(s)) return false
  return true
}

export interface StaticMatch {
  store: { key: string }
  params: Record<string, string>
}

export class StaticRoutes {
  /** Folded exact pattern -> pattern as configured (the router's key). */
  readonly #exact = new Map<string, string>()
  /** Folded base of a `base/*` pattern -> the pattern as configured. */
  readonly #prefix = new Map<string, string>()
  readonly #caseSensitive: boolean

  constructor (patterns: readonly string[], caseSensitive: boolean) {
    this.#caseSensitive = caseSensitive
    for (const p of patterns) {
      const folded = this.#fold(p)
      const wildcard = folded.endsWith('/*')
      const map = wildcard ? this.#prefix : this.#exact
      const k = wildcard ? folded.slice(0, -2) : folded
      // The tree refuses a second registration of one (case-folded) pattern; so does this.
      if (map.has(k)) throw new Error(`Method 'GET' already declared for route '${folded}' with constraints '{}'`)
      map.set(k, p)
    }
  }

  get size (): number {
    return this.#exact.size + this.#prefix.size
  }

  #fold (s: string): string {
    return this.#caseSensitive ? s : s.toLowerCase()
  }

  /**
   * The exact pattern equal to the path, else the longest `base/*` whose base ends at a
   * slash of the path; null when none. The wildcard's value is the rest of the path (''
   * for `/orders/`), as find-my-way gives it. Every pattern held here starts with a shard's
   * first segment, so a match means the path's first segment is a shard: null otherwise.
   */
  find (path: string): StaticMatch | null {
    const p = this.#fold(path)
    const exact = this.#exact.get(p)
    if (exact !== undefined) return { store: { key: exact }, params: {} }
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
      const key = this.#prefix.get(p.slice(0, i))
      if (key !== undefined) return { store: { key }, params: { '*': path.slice(i + 1) } }
    }
    return null
  }
}

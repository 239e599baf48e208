import FindMyWay from 'find-my-way'
import type { HTTPVersion } from 'find-my-way'
import { firstSegment, isStaticPattern, StaticRoutes } from './static-routes.js'

export interface RouteDef<T> {
  path: string
  exact: boolean
  methods: readonly string[] | undefined
  hosts: readonly string[] | undefined
  /** Match the path in any letter case (parameters keep theirs). */
  caseInsensitive?: boolean
  value: T
}

export type RouteMatch<T> =
  | { kind: 'found', value: T, params: Record<string, string | undefined> }
  | { kind: 'method-not-allowed', allowed: readonly string[] }
  | { kind: 'not-found' }

interface Entry<T> { methods: ReadonlySet<string> | undefined, value: T }

/**
 * Path and method -> route, for one host (or for any host). Paths go into find-my-way's
 * radix tree (so 1,000 routes cost what 10 do); a path matches itself and, unless `exact`,
 * everything below it at a segment boundary (`/orders` matches `/orders/1`, not `/ordersx`).
 * The most specific path wins; several routes may share a path with different methods (the
 * first in config order that allows the method wins). A path whose routes do not allow the
 * method is a 405 with `Allow`; there is no fall-back to a shorter path.
 */
class PathRouter<T> {
  #fmw: Tree = EMPTY_TREE
  /** The static shards (static-routes.ts); the tree holds every other pattern. */
  #static: StaticRoutes | undefined
  #byPath = new Map<string, Array<Entry<T>>>()
  readonly #caseSensitive: boolean

  constructor (caseSensitive: boolean) {
    this.#caseSensitive = caseSensitive
  }

  add (d: RouteDef<T>): void {
    const entry = {
      methods: d.methods === undefined ? undefined : new Set(d.methods.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]))),
      value: d.value
    }
    for (const p of d.exact ? [d.path] : prefixPatterns(d.path)) {
      let list = this.#byPath.get(p)
      if (list === undefined) {
        list = []
        this.#byPath.set(p, list)
      }
      list.push(entry)
    }
  }

  /**
   * Done adding: split the patterns into static shards and the rest, and take (or build)
   * the tree of the rest.
   */
  seal (): void {
    const m = matchersFor([...this.#byPath.keys()], this.#caseSensitive)
    this.#static = m.table
    this.#fmw = m.tree
  }

  #lookup (path: string): { store: unknown, params: Record<string, string | undefined> } | null {
    const m = this.#static?.find(path)
    // find-my-way answers no match for a path whose escapes do not decode (its decodeURI
    // throws): such a path falls to the tree, which gives that answer.
    if (m != null && (!path.includes('%') || decodes(path))) return m
    return this.#fmw.find('GET', path)
  }

  /** The match and the pattern that matched ('' when none). */
  find (method: string, path: string): { match: RouteMatch<T>, key: string } {
    let found = this.#lookup(path)
    // find-my-way lets `:id` match an empty segment (`/orders/` -> id ''); a parameter must
    // name something, so `/orders/` is looked up as `/orders` instead.
    if (found !== null && path.length > 1 && path.endsWith('/') && Object.values(found.params).includes('')) {
      found = this.#lookup(path.slice(0, -1))
    }
    if (found === null) return NO_KEY
    const key = (found.store as { key: string }).key
    const list = this.#byPath.get(key) as Array<Entry<T>>
    const allowed = new Set<string>()
    for (const e of list) {
      if (e.methods === undefined || e.methods.has(method)) {
        const params = found.params
        delete params['*']
        return { match: { kind: 'found', value: e.value, params }, key }
      }
      for (const m of e.methods) allowed.add(m)
    }
    return { match: { kind: 'method-not-allowed', allowed: [...allowed] }, key }
  }
}

/** Whether find-my-way's decodeURI of the path succeeds (its `%25` kept as an escape). */
function decodes (path: string): boolean {
  try {
    decodeURI(path.replaceAll('%25', '%2525'))
    return true
  } catch {
    return false
  }
}

const NOT_FOUND = { kind: 'not-found' } as const
const NO_KEY = { match: NOT_FOUND, key: '' }

/**
 * How specific a pattern is, to choose between a case-sensitive and a case-insensitive route
 * that both match one path: more segments before any wildcard first, then more static
 * segments, then no wildcard (find-my-way's own order within one tree).
 */
function specificity (key: string): number {
  const segs = key.split('/').filter((x) => x !== '')
  const wildcard = segs.at(-1) === '*'
  const fixed = wildcard ? segs.length - 1 : segs.length
  let statics = 0
  for (let i = 0; i < fixed; i++) if ((segs[i] as string)[0] !== ':') statics++
  return fixed * 1_000_000 + statics * 2 + (wildcard ? 0 : 1)
}

/**
 * Case-sensitive routes in one tree, case-insensitive ones (`match.caseInsensitive`) in
 * another, since find-my-way's case setting is per tree. A path both match goes to the more
 * specific pattern, and on a tie to the case-sensitive route. So a case-insensitive deny on
 * `/admin` wins `/ADMIN` over a catch-all `/`.
 */
class PathRouters<T> {
  #cs = new PathRouter<T>(true)
  #ci: PathRouter<T> | undefined

  add (d: RouteDef<T>): void {
    if (d.caseInsensitive === true) (this.#ci ??= new PathRouter<T>(false)).add(d)
    else this.#cs.add(d)
  }

  seal (): void {
    this.#cs.seal()
    this.#ci?.seal()
  }

  find (method: string, path: string): RouteMatch<T> {
    const a = this.#cs.find(method, path)
    if (this.#ci === undefined) return a.match
    const b = this.#ci.find(method, path)
    if (b.match.kind === 'not-found') return a.match
    if (a.match.kind === 'not-found') return b.match
    return specificity(b.key) > specificity(a.key) ? b.match : a.match
  }
}

type Tree = ReturnType<typeof FindMyWay<HTTPVersion.V1>>

const EMPTY_TREE: Tree = FindMyWay<HTTPVersion.V1>()

/*
 * The matchers depend on the path patterns only (each holds a pattern as the key into the
 * router's own entries), so a generation whose routes have the same patterns as a recent
 * one shares them: most policy updates change plugins, not paths. Neither is changed once
 * built, so sharing them between generations that are live at once is safe. A few pattern
 * sets are kept per thread.
 */
interface Matchers { table: StaticRoutes | undefined, tree: Tree }
const recent = new Map<string, Matchers>()
const KEPT = 4

function matchersFor (patterns: readonly string[], caseSensitive: boolean): Matchers {
  const key = (caseSensitive ? 'cs\n' : 'ci\n') + patterns.join('\n')
  let m = recent.get(key)
  if (m !== undefined) {
    // Most recently used last.
    recent.delete(key)
    recent.set(key, m)
    return m
  }
  m = split(patterns, caseSensitive)
  recent.set(key, m)
  if (recent.size > KEPT) recent.delete(recent.keys().next().value as string)
  return m
}

/** The static shards into a table, every other pattern into a tree (static-routes.ts). */
function split (patterns: readonly string[], caseSensitive: boolean): Matchers {
  const fold = (s: string): string => (caseSensitive ? s : s.toLowerCase())
  // First segment -> whether every pattern under it is static.
  const shard = new Map<string, boolean>()
  for (const p of patterns) {
    const seg = fold(firstSegment(p))
    shard.set(seg, (shard.get(seg) ?? true) && isStaticPattern(p))
  }
  const statics: string[] = []
  const rest: string[] = []
  for (const p of patterns) (shard.get(fold(firstSegment(p))) === true ? statics : rest).push(p)
  const tree = FindMyWay<HTTPVersion.V1>({ ignoreTrailingSlash: false, caseSensitive, maxParamLength: 500 })
  // Methods are checked per entry, so the tree needs one method only: registering all seven
  // made building 1,000 routes ten times slower (find-my-way keeps a tree each).
  for (const p of rest) tree.on('GET', p, () => {}, { key: p })
  return { table: statics.length === 0 ? undefined : new StaticRoutes(statics, caseSensitive), tree }
}

/**
 * Host, path and method -> route. Routes that name hosts are looked up first, in a path
 * router for that host; a request whose host has no matching path there falls back to the
 * routes that name no host.
 */
export class Router<T> {
  #any = new PathRouters<T>()
  #byHost = new Map<string, PathRouters<T>>()

  constructor (defs: ReadonlyArray<RouteDef<T>>) {
    for (const d of defs) {
      if (d.hosts === undefined) { this.#any.add(d); continue }
      for (const h of d.hosts) {
        const host = h.toLowerCase()
        let r = this.#byHost.get(host)
        if (r === undefined) { r = new PathRouters<T>(); this.#byHost.set(host, r) }
        r.add(d)
      }
    }
    this.#any.seal()
    for (const r of this.#byHost.values()) r.seal()
  }

  /** `host` is lower-case, without port. */
  find (method: string, path: string, host: string): RouteMatch<T> {
    if (this.#byHost.size > 0) {
      const r = this.#byHost.get(host)
      if (r !== undefined) {
        const m = r.find(method, path)
        if (m.kind !== 'not-found') return m
      }
    }
    return this.#any.find(method, path)
  }
}

/** `/orders` -> `/orders`, `/orders/*`; `/` -> `/`, `/*`. */
export function prefixPatterns (path: string): string[] {
  const base = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
  return base === '/' ? ['/', '/*'] : [base, base + "/*"]
}

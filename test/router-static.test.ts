// The router keeps static patterns out of find-my-way (src/static-routes.ts) and claims the
// split never changes which route a request gets. This compares it with the reference it
// replaced, one find-my-way tree holding every pattern, over random route sets and paths.
import FindMyWay from 'find-my-way'
import type { HTTPVersion } from 'find-my-way'
import t from 'tap'
import { prefixPatterns, Router } from '../src/router.js'
import type { RouteDef } from '../src/router.js'

/** mulberry32: a small seeded generator, so a failure can be replayed. */
function rng (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6D2B79F5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

// Static segments (some differing only in case or by a prefix), parameters, and segments
// the static table must leave to the tree (escapes, non-ASCII, a parameter inside a segment).
const PATTERN_SEGMENTS = ['a', 'b', 'ab', 'A', 'x-y', 'r1', 'r10', ':id', ':v', 'café', 'f-:n', 'v1.json', '~u']
const PATH_SEGMENTS = ['a', 'b', 'ab', 'A', 'AB', 'x-y', 'r1', 'r10', 'r100', '5', '', 'caf%C3%A9', '%C3', 'v1.json', 'f-7', '~u', 'a%3Fb', '%25', 'Ab']

type Found = { value: string, params: Record<string, string | undefined> } | undefined

/** The router as it was: every pattern in one tree, first definition of a pattern wins. */
function reference (defs: ReadonlyArray<RouteDef<string>>, caseSensitive: boolean): (path: string) => Found {
  const tree = FindMyWay<HTTPVersion.V1>({ ignoreTrailingSlash: false, caseSensitive, maxParamLength: 500 })
  const valueOf = new Map<string, string>()
  for (const d of defs) for (const p of d.exact ? [d.path] : prefixPatterns(d.path)) if (!valueOf.has(p)) valueOf.set(p, d.value)
  for (const p of valueOf.keys()) tree.on('GET', p, () => {}, { key: p })
  return (path) => {
    let f = tree.find('GET', path)
    if (f !== null && path.length > 1 && path.endsWith('/') && Object.values(f.params).includes('')) f = tree.find('GET', path.slice(0, -1))
    if (f === null) return undefined
    const params = { ...f.params }
    delete params['*']
    return { value: valueOf.get((f.store as { key: string }).key) as string, params }
  }
}

t.test('static shards + tree route every path as one tree did', async (t) => {
  let compared = 0
  let refused = 0
  for (let seed = 1; seed <= 400; seed++) {
    const r = rng(seed)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T
    const caseSensitive = r() < 0.5
    const defs: Array<RouteDef<string>> = []
    const n = 1 + Math.floor(r() * 12)
    for (let i = 0; i < n; i++) {
      const segs = Array.from({ length: Math.floor(r() * 3) + (r() < 0.15 ? 0 : 1) }, () => pick(PATTERN_SEGMENTS))
      defs.push({ path: '/' + segs.join('/'), exact: r() < 0.3, methods: undefined, hosts: undefined, caseInsensitive: !caseSensitive, value: `d${i}` })
    }
    let ref: (path: string) => Found
    try {
      ref = reference(defs, caseSensitive)
    } catch {
      // The tree refuses the set (one pattern twice once case-folded): so must the router.
      t.throws(() => new Router(defs), `seed ${seed}: refused like the tree`)
      refused++
      continue
    }
    const router = new Router(defs)
    for (let k = 0; k < 60; k++) {
      const path = '/' + Array.from({ length: 1 + Math.floor(r() * 4) }, () => pick(PATH_SEGMENTS)).join('/')
      const m = router.find('GET', path, '')
      const got: Found = m.kind === 'found' ? { value: m.value, params: { ...m.params } } : undefined
      const want = ref(path)
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        t.fail(`seed ${seed} ${caseSensitive ? 'cs' : 'ci'} ${JSON.stringify(defs.map((d) => [d.path, d.exact]))} ${path}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
        return
      }
      compared++
    }
  }
  t.ok(compared > 20_000, `${compared} paths routed alike`)
  t.ok(refused > 0 && refused < 100, `${refused} route sets refused by both`)
})

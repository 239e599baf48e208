// Balancing through real gateway processes: round-robin exact by weight over 1,000 requests,
// least-request favouring the fast target, consistent hashing sticky per key.
import t from 'tap'
import { startGateway } from './helpers/gateway.js'
import { client, get, many, named, tally } from './helpers/upstreams.js'

t.test('round-robin: 1,000 requests split 3:1 by weight', async (t) => {
  const a = await named(t, 'a')
  const b = await named(t, 'b')
  const gw = await startGateway(t, { config: { logLevel: 'warn', routes: [{ name: 'w', match: { path: '/' }, upstream: { targets: [{ url: a.url, weight: 3 }, { url: b.url, weight: 1 }] } }] } })
  const agent = client(t)
  const answers = await many(1000, 8, async () => await get(agent, `${gw.url}/x`))
  const counts = tally(answers, (r) => r.body)
  // Each of the 2 workers is exact over its own share; the sum is within one cycle per worker.
  t.ok(Math.abs((counts.a ?? 0) - 750) <= 6, `a: ${counts.a} of 1,000 (750 +- 6)`)
  t.equal((counts.a ?? 0) + (counts.b ?? 0), 1000, 'every request answered by a or b')
})

t.test('least-request favours the fast target', async (t) => {
  const fast = await named(t, 'fast')
  const slow = await named(t, 'slow', (_req, res) => { setTimeout(() => res.end('slow'), 150) })
  const gw = await startGateway(t, { config: { logLevel: 'warn', routes: [{ name: 'l', match: { path: '/' }, upstream: { targets: [fast.url, slow.url], balance: 'least-request' } }] } })
  const agent = client(t)
  const answers = await many(400, 16, async () => await get(agent, `${gw.url}/x`))
  const counts = tally(answers, (r) => r.body)
  // Round-robin would split 200/200. Ties (both idle) still go either way, as in Envoy.
  t.ok((counts.fast ?? 0) > 0.6 * 400, `the fast target took most requests (${JSON.stringify(counts)})`)
  t.ok((counts.slow ?? 0) > 0, 'the slow one still gets some')
})

t.test('consistent-hash on a header: each key sticks to one target; keys spread over all', async (t) => {
  const ups = await Promise.all(['a', 'b', 'c'].map(async (n) => await named(t, n)))
  const gw = await startGateway(t, { config: { logLevel: 'warn', routes: [{ name: 'h', match: { path: '/' }, upstream: { targets: ups.map((u) => u.url), balance: 'consistent-hash', hashOn: 'header:x-user' } }] } })
  const agent = client(t)
  const answers = await many(300, 8, async (i) => await get(agent, `${gw.url}/x`, { headers: { 'x-user': `user-${i % 60}` } }))
  const byUser = new Map<string, Set<string>>()
  answers.forEach((r, i) => {
    const u = `user-${i % 60}`
    if (!byUser.has(u)) byUser.set(u, new Set())
    byUser.get(u)?.add(r.body)
  })
  t.ok([...byUser.values()].every((s) => s.size === 1), 'every user was served by one target, on both workers')
  const spread = tally(answers, (r) => r.body)
  t.same(Object.keys(spread).sort(), ['a', 'b', 'c'], `all targets hold keys (${JSON.stringify(spread)})`)
})

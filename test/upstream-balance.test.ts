// Balancing through real gateway processes: round-robin exact by weight over 1,000 requests,
// least-request favouring the fast target, consistent hashing sticky per key; path rewrite
// and Host control per route.
import t from 'tap'
import { runCli, startGateway } from './helpers/gateway.js'
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

t.test('path rewrite and Host control', async (t) => {
  const up = await named(t, 'echo', (req, res) => { res.end(JSON.stringify({ url: req.url, host: req.headers.host })) })
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      routes: [
        { name: 'rw', match: { path: '/api' }, upstream: `${up.url}/base`, stripPrefix: true, rewrite: { pattern: '^/v1/(?<rest>.*)$', replacement: '/v2/$<rest>' }, hostHeader: 'internal.example:8443' },
        { name: 'keep', match: { path: '/keep' }, upstream: up.url, preserveHost: true },
        { name: 'own', match: { path: '/own' }, upstream: up.url }
      ]
    }
  })
  const agent = client(t)
  const rw = JSON.parse((await get(agent, `${gw.url}/api/v1/orders/7?x=1`)).body) as { url: string, host: string }
  t.equal(rw.url, '/base/v2/orders/7?x=1', 'prefix stripped, regex replaced, upstream base path and query kept')
  t.equal(rw.host, 'internal.example:8443', 'a fixed Host')
  const untouched = JSON.parse((await get(agent, `${gw.url}/api/other`)).body) as { url: string }
  t.equal(untouched.url, '/base/other', 'a path the pattern does not match is only stripped')
  t.equal((JSON.parse((await get(agent, `${gw.url}/keep`, { headers: { host: 'public.example' } })).body) as { host: string }).host, 'public.example', "preserveHost: the client's Host")
  t.equal((JSON.parse((await get(agent, `${gw.url}/own`)).body) as { host: string }).host, `127.0.0.1:${up.port}`, "default: the upstream's host")
})

t.test('a rewrite pattern that cannot run in linear time, and other upstream mistakes, are refused at load', async (t) => {
  const dir = t.testdir({
    'bad.json': JSON.stringify({
      routes: [
        { name: 'a', match: { path: '/a' }, upstream: 'http://127.0.0.1:1', rewrite: { pattern: '^/(a+)\\1$', replacement: '/$1' } },
        { name: 'b', match: { path: '/b' }, upstream: { targets: ['http://127.0.0.1:1', 'http://127.0.0.1:1'], hashOn: 'ip' } }
      ]
    }),
    'schema.json': JSON.stringify({ routes: [{ name: 'c', match: { path: '/c' }, upstream: { targets: ['http://127.0.0.1:1'], balance: 'fastest' } }] })
  })
  const r = await runCli(['validate', `${dir}/bad.json`])
  t.equal(r.code, 2, 'refused whole')
  t.match(r.stderr, /\/routes\/0\/rewrite\/pattern: .*linear/, 'a backreference cannot run in linear time')
  t.match(r.stderr, /\/routes\/1\/upstream\/targets\/1: target 'http:\/\/127\.0\.0\.1:1' is listed twice/)
  t.match(r.stderr, /\/routes\/1\/upstream\/hashOn: only used with balance: consistent-hash/)
  const r2 = await runCli(['validate', `${dir}/schema.json`])
  t.equal(r2.code, 2)
  t.match(r2.stderr, /\/routes\/0\/upstream\/balance: must be one of/, 'an unknown balance is a schema error')
})

// Path rewrite and Host control per route through a real gateway; rewrite patterns that are
// not linear-time and other upstream mistakes refused at load.
import t from 'tap'
import { runCli, startGateway } from './helpers/gateway.js'
import { client, get, named } from './helpers/upstreams.js'

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
  const r = await runCli(['validate', `${dir}/bad.json`], { timeoutMs: 60_000 })
  t.equal(r.code, 2, 'refused whole')
  t.match(r.stderr, /\/routes\/0\/rewrite\/pattern: .*linear/, 'a backreference cannot run in linear time')
  t.match(r.stderr, /\/routes\/1\/upstream\/targets\/1: target 'http:\/\/127\.0\.0\.1:1' is listed twice/)
  t.match(r.stderr, /\/routes\/1\/upstream\/hashOn: only used with balance: consistent-hash/)
  const r2 = await runCli(['validate', `${dir}/schema.json`], { timeoutMs: 60_000 })
  t.equal(r2.code, 2)
  t.match(r2.stderr, /\/routes\/0\/upstream\/balance: must be one of/, 'an unknown balance is a schema error')
})

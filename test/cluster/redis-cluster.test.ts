// cluster.redis as a Redis Cluster URL: three real redis-server masters on loopback
// (cluster-enabled, joined with `redis-cli --cluster create`). Strict mode's script touches
// several keys at once (one per limit); they share the client as hash tag, so each request's
// script runs whole on one master, and the counts are exact while clients spread over the
// masters. The fleet-wide auto-block and its lift, and a pushed policy, work through the
// cluster too.
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { deadPort, runCli, startUpstream } from '../helpers/gateway.js'
import { clusterReady, eventually, get, NO_PERSISTENCE, spread, startInDir, startRedisProcess, tempDir } from './redis.js'

t.setTimeout(600_000)
const run = promisify(execFile)

t.test('strict mode and the block list on a 3-master Redis Cluster', async (t) => {
  const dir = tempDir(t)
  const masters = []
  for (let i = 0; i < 3; i++) {
    // The cluster bus port is given too: port + 10000 (the default) may be taken or out of range.
    const bus = await deadPort()
    masters.push(await startRedisProcess(t, (port) => ['--port', String(port), ...NO_PERSISTENCE, '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`, '--cluster-port', String(bus), '--cluster-node-timeout', '5000'], { cwd: dir }))
  }
  await run('redis-cli', ['--cluster', 'create', ...masters.map((m) => `127.0.0.1:${m.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 })
  const direct = masters.map((m) => new Redis(m.url))
  t.teardown(() => { for (const r of direct) r.disconnect() })
  await eventually(async () => (await Promise.all(direct.map(async (r) => String(await r.cluster('INFO'))))).every((i) => i.includes('cluster_state:ok')), 30_000, 'the cluster is formed')
  t.pass('3 masters, slots assigned, cluster_state:ok')

  const up = await startUpstream(t, (req, res) => {
    res.writeHead(req.url === '/open/bad' ? 401 : 200, { 'content-type': 'text/plain' })
    res.end('ok')
  })
  // Two of the three nodes as seeds: the client finds the third itself.
  const url = `redis+cluster://127.0.0.1:${masters[0]?.port},127.0.0.1:${masters[1]?.port}`
  const config = (id: string): Record<string, unknown> => ({
    workers: 1,
    admin: { port: 0 },
    cluster: { redis: url, mode: 'strict', timeout: '2s', instanceId: id },
    plugins: [{ name: 'threat-guard', config: { threshold: 3, window: '1h', blockFor: '1h', statuses: [401] } }],
    routes: [
      {
        name: 'api',
        match: { path: '/x' },
        upstream: up.url,
        // Two limits: the script reads and writes two keys per request.
        plugins: [{ name: 'rate-limit', config: { key: 'header:x-client', limits: [{ limit: 8, window: '24h', algorithm: 'gcra' }, { limit: 50, window: '1h', algorithm: 'fixed-window' }] } }]
      },
      { name: 'open', match: { path: '/open' }, upstream: up.url }
    ]
  })
  const a = await startInDir(t, tempDir(t), config('c1'))
  const b = await startInDir(t, tempDir(t), config('c2'))
  await Promise.all([a, b].map(clusterReady))

  const clients = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight']
  const runs = await Promise.all(clients.map(async (c) => await spread([a.url + '/x', b.url + '/x'], 20, 4, { 'x-client': c })))
  for (const l of [...a.lines, ...b.lines].filter((l) => typeof l.msg === 'string' && l.msg.includes('unavailable'))) t.comment(JSON.stringify(l))
  runs.forEach((r, i) => t.same(r.byStatus, { 200: 8, 429: 12 }, `client ${clients[i] as string}: exactly 8 of 20 admitted over two instances`))
  t.equal(up.seen.filter((s) => s.url === '/x').length, 8 * clients.length, 'the upstream saw exactly the limits')
  const perNode = await Promise.all(direct.map(async (r) => (await r.keys('tollgate:rl:*')).length))
  t.equal(perNode.reduce((x, y) => x + y, 0), 2 * clients.length, `two counters per client (${perNode.join(' + ')} on the three masters)`)
  t.ok(perNode.filter((n) => n > 0).length >= 2, 'the clients are spread over several masters')

  // The auto-block, fleet-wide, and its lift.
  for (let i = 0; i < 3; i++) t.equal((await get(a.url + '/open/bad')).status, 401, `strike ${i + 1} on A`)
  await eventually(async () => (await get(b.url + '/open/ok')).status === 403, 30_000, 'B refuses the client A blocked')
  t.pass('a block placed on A holds on B, through the cluster')
  const res = await request(`${b.admin as string}/blocks/127.0.0.1`, { method: 'DELETE' })
  t.equal(res.statusCode, 200, 'lifted on B')
  await res.body.dump()
  await eventually(async () => (await get(a.url + '/open/ok')).status === 200, 10_000, 'A serves the client again')
  t.pass('and lifted on A')

  // A policy pushed to A (tollgate push) is stored as a fleet version and goes live on B.
  const v2 = JSON.parse(readFileSync(a.file, 'utf8')) as Record<string, unknown>
  v2.routes = [...(v2.routes as unknown[]), { name: 'v2', match: { path: '/v2' }, upstream: up.url }]
  const pushFile = join(a.dir, 'push.json')
  writeFileSync(pushFile, JSON.stringify(v2))
  t.equal((await get(b.url + '/v2')).status, 404, 'no /v2 on B yet')
  const pushed = await runCli(['push', pushFile, '--admin', a.admin as string], { timeoutMs: 60_000 })
  t.equal(pushed.code, 0, `tollgate push exits 0 (${pushed.stderr})`)
  await eventually(async () => (await get(b.url + '/v2')).status === 200, 30_000, '/v2 on B')
  t.pass('a policy pushed to A is live on B, through the cluster')
})

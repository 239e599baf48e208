// Policy distribution: a policy pushed to one instance (tollgate push, through its admin API)
// is stored in Redis as a fleet version and applied by every instance; one that an instance
// cannot apply is refused there, in its audit log and in its status key in Redis.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { ROOT, runCli, startUpstream } from '../helpers/gateway.js'
import { clusterReady, eventually, get, startInDir, startRedis, tempDir } from './redis.js'

// Several gateway processes start one after the other; on a loaded 2-core CI that takes long.
t.setTimeout(600_000)

const plugin = `import { definePlugin } from '${pathToFileURL(join(ROOT, 'dist/src/index.js')).href}'
export default definePlugin({
  name: 'only-here',
  phase: 'connect',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create () { return { onRequest (ctx) { ctx.setResponseHeader('x-only-here', '1') } } }
})
`

t.test('a pushed policy goes live on every instance; one an instance cannot apply is reported', async (t) => {
  const redis = await startRedis(t)
  const up = await startUpstream(t)
  const base = (id: string): Record<string, unknown> => ({
    workers: 1,
    admin: { port: 0 },
    cluster: { redis: redis.url, instanceId: id },
    routes: [{ name: 'api', match: { path: '/api' }, upstream: up.url }]
  })
  // Only A's directory has the plugin module that the second policy names.
  const a = await startInDir(t, tempDir(t, { 'only-here.mjs': plugin }), base('pa'))
  const b = await startInDir(t, tempDir(t), base('pb'))
  const c = await startInDir(t, tempDir(t), base('pc'))
  const gws = [a, b, c]
  await Promise.all(gws.map(clusterReady))
  for (const g of gws) t.equal((await get(g.url + '/v2')).status, 404, 'no /v2 route yet')

  // 1. A new route, pushed to A by a CI job.
  const v2 = { ...JSON.parse(readFileSync(a.file, 'utf8')) as Record<string, unknown> }
  v2.routes = [...(v2.routes as unknown[]), { name: 'v2', match: { path: '/v2' }, upstream: up.url }]
  const pushFile = join(a.dir, 'push.json')
  writeFileSync(pushFile, JSON.stringify(v2))
  const pushed = await runCli(['push', pushFile, '--admin', a.admin as string], { timeoutMs: 60_000 })
  t.equal(pushed.code, 0, `tollgate push exits 0 (${pushed.stderr})`)
  const pushedAt = performance.now()
  const live = await Promise.all(gws.map(async (g) => await eventually(async () => (await get(g.url + '/v2')).status === 200, 30_000, `/v2 on ${g.url}`)))
  const latency = Math.max(...live.map((ms) => ms))
  t.comment(`policy live on all 3 instances ${Math.round(latency)} ms after tollgate push returned (target 1 s; ${live.map((ms) => Math.round(ms)).join(', ')} ms)`)
  t.pass('the route is live on every instance')

  const { Redis } = await import('ioredis')
  const r = new Redis(redis.url)
  t.teardown(() => { r.disconnect() })
  t.equal(await r.get('tollgate:{policy}:version'), '1', 'stored as fleet version 1')
  for (const id of ['pb', 'pc']) {
    await eventually(async () => (await r.hget(`tollgate:instance:${id}`, 'version')) === '1', 10_000, `${id} status`)
  }
  // Not published again by those that received it (no loop): still version 1.
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(await r.get('tollgate:{policy}:version'), '1', 'received versions are not re-published')
  // The instance keeps its own listen address, admin and cluster settings.
  t.equal((await get(b.url + '/api')).status, 200, 'B still listens where it did')

  // 2. A policy naming a plugin module only A has: A applies it, B and C refuse it.
  const v3 = { ...v2, routes: [...(v2.routes as unknown[]), { name: 'v3', match: { path: '/v3' }, upstream: up.url, plugins: [{ name: 'only-here', module: './only-here.mjs' }] }] }
  writeFileSync(pushFile, JSON.stringify(v3))
  const pushed3 = await runCli(['push', pushFile, '--admin', a.admin as string], { timeoutMs: 60_000 })
  t.equal(pushed3.code, 0, 'A applies it')
  t.equal((await get(a.url + '/v3')).headers['x-only-here'], '1', 'live on A')
  for (const [g, id] of [[b, 'pb'], [c, 'pc']] as const) {
    await eventually(async () => (await r.hget(`tollgate:instance:${id}`, 'lastRefusal')) !== null, 30_000, `${id} reports the refusal`)
    const refusal = JSON.parse(await r.hget(`tollgate:instance:${id}`, 'lastRefusal') as string) as { version: number, origin: string, code: string, problems: string[] }
    t.equal(refusal.version, 2, `${id}: refusal of version 2 in its status key`)
    t.equal(refusal.origin, 'pa')
    t.match(refusal.problems.join('\n'), /only-here/, `${id}: the problem names the plugin`)
    t.equal(await r.hget(`tollgate:instance:${id}`, 'version'), '1', `${id} still runs version 1`)
    t.equal((await get(g.url + '/v3')).status, 404, `${id} kept its running config`)
    t.equal((await get(g.url + '/v2')).status, 200)
    const audit = readFileSync(join(g.dir, '.tollgate', 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    t.ok(audit.some((e) => e.actor === 'cluster:v2' && e.result === 'refused'), `${id}: refused in its audit log`)
    t.ok(audit.some((e) => e.actor === 'cluster:v1' && e.result === 'applied'), `${id}: version 1 applied in its audit log`)
  }
})

t.test('an instance that starts later catches up with the stored version', async (t) => {
  const redis = await startRedis(t)
  const up = await startUpstream(t)
  const base = (id: string): Record<string, unknown> => ({
    workers: 1,
    admin: { port: 0 },
    cluster: { redis: redis.url, instanceId: id },
    routes: [{ name: 'api', match: { path: '/api' }, upstream: up.url }]
  })
  const a = await startInDir(t, tempDir(t), base('la'))
  await clusterReady(a)
  const v2 = { ...JSON.parse(readFileSync(a.file, 'utf8')) as Record<string, unknown> }
  v2.routes = [...(v2.routes as unknown[]), { name: 'late', match: { path: '/late' }, upstream: up.url }]
  const pushFile = join(a.dir, 'push.json')
  writeFileSync(pushFile, JSON.stringify(v2))
  t.equal((await runCli(['push', pushFile, '--admin', a.admin as string], { timeoutMs: 60_000 })).code, 0)
  const b = await startInDir(t, tempDir(t), base('lb'))
  await eventually(async () => (await get(b.url + '/late')).status === 200, 30_000, 'B catches up on connect')
  t.pass('the late instance applied the stored version')
})

// DELETE /blocks/:ip in cluster mode lifts an auto-block fleet-wide: threat-guard blocks a
// client on A, B and a late-joining C refuse it too (C through the replay of Redis's stored
// entry); the lift on B ends the block on A and C as well, removes the stored entry, and
// neither a reconnect of an instance's Redis connection nor a new instance brings it back;
// an instance that missed the lift finds it at its next reconnect.
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { clusterReady, eventually, get, guardedFleet, startInDir, startRedis, tempDir } from './redis.js'

t.setTimeout(600_000)

const CLIENT = '127.0.0.1'

async function del (admin: string, ip: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await request(`${admin}/blocks/${encodeURIComponent(ip)}`, { method: 'DELETE', headersTimeout: 20_000, bodyTimeout: 20_000 })
  return { status: res.statusCode, body: await res.body.json() as Record<string, unknown> }
}

t.test('a block lifted on one instance is lifted on every instance, and stays lifted', async (t) => {
  const redis = await startRedis(t)
  const r = new Redis(redis.url)
  t.teardown(() => { r.disconnect() })
  const config = await guardedFleet(t, redis.url)
  const a = await startInDir(t, tempDir(t), config('ua'))
  const b = await startInDir(t, tempDir(t), config('ub'))
  await Promise.all([a, b].map(clusterReady))

  for (let i = 0; i < 3; i++) t.equal((await get(a.url + '/bad')).status, 401, `strike ${i + 1} on A`)
  t.equal((await get(a.url + '/ok')).status, 403, 'A blocks the client')
  await eventually(async () => (await get(b.url + '/ok')).status === 403, 30_000, 'B refuses the client')
  t.pass('the block placed on A holds on B')
  t.ok(Number(await r.zscore('tollgate:blocks', CLIENT)) > Date.now(), 'the block is stored in Redis')

  // A third instance that joins now gets the block from Redis's stored entry: the replay
  // the lift must defeat.
  const c = await startInDir(t, tempDir(t), config('uc'))
  await clusterReady(c)
  await eventually(async () => (await get(c.url + '/ok')).status === 403, 30_000, 'C refuses the client')
  t.pass('a new instance replays the stored block')

  t.equal((await del(b.admin as string, '198.51.100.1')).status, 404, 'an address blocked nowhere: 404')
  t.equal((await del(b.admin as string, 'not-an-ip')).status, 400, 'a text that is not an address: 400')
  const lifted = await del(b.admin as string, CLIENT)
  t.equal(lifted.status, 200, 'DELETE on B answers 200')
  t.equal(lifted.body.lifted, true)
  t.equal((await get(b.url + '/ok')).status, 200, 'B serves the client at once')
  const ms = await eventually(async () => (await get(a.url + '/ok')).status === 200 && (await get(c.url + '/ok')).status === 200, 10_000, 'A and C serve the client')
  t.comment(`lifted on A and C ${Math.round(ms)} ms after the DELETE on B`)
  t.equal(await r.zscore('tollgate:blocks', CLIENT), null, 'the stored entry is gone from Redis')
  t.ok(a.lines.some((l) => l.msg === 'cluster: a block lifted by the fleet was lifted here' && l.ip === CLIENT), 'A says it lifted the fleet\'s lift')
  // The lift is counted where it was announced and where it was applied (the acceptor's
  // view of the counters is at most a second behind).
  const metric = async (admin: string, name: string): Promise<number> => {
    const text = await (await request(`${admin}/metrics`)).body.text()
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
  }
  // Two lifts announced by B: the address blocked nowhere (announced all the same: some
  // instance might hold it) and the client's.
  await eventually(async () => await metric(b.admin as string, 'tollgate_cluster_unblocks_published_total') === 2, 10_000, 'B counts the lifts it announced')
  await eventually(async () => await metric(a.admin as string, 'tollgate_cluster_unblocks_received_total') === 2, 10_000, 'A counts the lifts it received')
  t.pass('/metrics: unblocks published on B, received on A')
  t.equal((await del(a.admin as string, CLIENT)).status, 404, 'a second DELETE (on A) finds nothing left: 404')

  // A's connection to Redis is cut and made again: on reconnect it replays what is stored.
  const before = a.lines.length
  const killed = await r.client('KILL', 'USER', 'default', 'SKIPME', 'yes') as unknown
  t.ok(Number(killed) >= 1, `Redis connections of the fleet cut (${String(killed)})`)
  await eventually(async () => a.lines.slice(before).some((l) => typeof l.msg === 'string' && l.msg.startsWith('cluster: Redis reachable again')), 30_000, 'A reconnects')
  // The replay runs right after the reconnect: give it time to land before asking.
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal((await get(a.url + '/ok')).status, 200, 'A still serves the client after reconnecting to Redis')

  // And an instance started after the lift: nothing to replay.
  await c.stop()
  const d = await startInDir(t, tempDir(t), config('ud'))
  await clusterReady(d)
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal((await get(d.url + '/ok')).status, 200, 'an instance started after the lift serves the client')
  t.equal((await get(b.url + '/ok')).status, 200, 'B too')

  // A lift B does not hear (its subscription down at that moment) is found at B's next
  // reconnect: here, the entry is removed from Redis with no announcement at all.
  await eventually(async () => (await get(a.url + '/bad')).status === 403 || (await get(a.url + '/ok')).status === 403, 10_000, 'A blocks the client again')
  await eventually(async () => (await get(b.url + '/ok')).status === 403, 30_000, 'B refuses the client again')
  t.pass('blocked again on A and B')
  t.equal(await r.zrem('tollgate:blocks', CLIENT), 1, 'the entry removed from Redis, unannounced')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal((await get(b.url + '/ok')).status, 403, 'B has not heard of it')
  const ids = String(await r.client('LIST')).split('\n').filter((l) => / name=tollgate:ub:/.test(l)).map((l) => /^id=(\d+)/.exec(l)?.[1])
  for (const id of ids) await r.client('KILL', 'ID', id as string)
  t.equal(ids.length, 2, "B's two connections (acceptor, subscriber) cut")
  await eventually(async () => (await get(b.url + '/ok')).status === 200, 30_000, 'B lifts it after reconnecting')
  t.ok(b.lines.some((l) => l.msg === 'cluster: a block lifted by the fleet while this instance did not hear was lifted here'), 'B says why')
  t.equal((await get(a.url + '/ok')).status, 403, 'A, which did not reconnect and heard nothing, still blocks (its next reconnect would lift it)')
})

t.test('Redis down: the lift is refused whole (503), nothing is lifted', async (t) => {
  const redis = await startRedis(t)
  const a = await startInDir(t, tempDir(t), (await guardedFleet(t, redis.url))('down1'))
  await clusterReady(a)
  for (let i = 0; i < 3; i++) await get(a.url + '/bad')
  t.equal((await get(a.url + '/ok')).status, 403, 'blocked')
  await redis.kill()
  await eventually(async () => a.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('cluster: Redis unavailable')), 20_000, 'A sees Redis gone')
  const res = await del(a.admin as string, CLIENT)
  t.equal(res.status, 503, 'DELETE answers 503')
  t.equal(res.body.code, 'GW_ERR_BLOCK_LIFT_UNAVAILABLE')
  t.equal((await get(a.url + '/ok')).status, 403, 'the block still holds here: nothing half-done')
})

// Strict decisions made by one worker in one turn of its event loop go to Redis as one
// script run (worker-link.ts, scripts.ts STRICT_LIMIT_BATCH), on a real redis-server: one
// EVALSHA for all of them (INFO commandstats), each request decided in order and exactly,
// handlers run with the reply; Redis gone: every handler gets undefined.
import { Redis } from 'ioredis'
import { pino } from 'pino'
import t from 'tap'
import { closeWorkerLinks, workerLink } from '../../src/cluster/worker-link.js'
import { eventually, startRedis } from './redis.js'

async function evalshaCalls (r: Redis): Promise<number> {
  const m = /cmdstat_evalsha:calls=(\d+)/.exec(String(await r.info('commandstats')))
  return Number(m?.[1] ?? 0)
}

t.test('one loop turn, one script run, exact', async (t) => {
  const redis = await startRedis(t)
  const r = new Redis(redis.url)
  t.teardown(() => { r.disconnect() })
  const link = await workerLink({ redis: redis.url, prefix: 'b:', mode: 'strict', onRedisDown: 'deny', timeout: 2000, syncInterval: 100, instanceId: 'batch' }, pino({ level: 'silent' }))
  t.teardown(closeWorkerLinks)
  link.warm()
  // The first decision waits for the connection and loads the script.
  const first: Array<number[] | undefined> = []
  await link.strict(['warm'], [1, 5, 3_600_000, 5], (x) => first.push(x))
  t.equal(first[0]?.[0], 1, 'connected: a first decision')

  const before = await evalshaCalls(r)
  // 30 requests in one turn: 25 for a fixed window of 20, 5 for another key with 2 limits.
  const replies: Array<number[] | undefined> = []
  const waits: Array<Promise<void> | undefined> = []
  for (let i = 0; i < 25; i++) waits.push(link.strict(['k1'], [1, 20, 3_600_000, 20], (x) => { replies[i] = x }))
  for (let i = 25; i < 30; i++) waits.push(link.strict(['k2a', 'k2b'], [1, 100, 3_600_000, 100, 3, 3, 3_600_000, 3], (x) => { replies[i] = x }))
  t.equal(replies.length, 0, 'nothing decided before the turn ends')
  await Promise.all(waits)
  t.equal(await evalshaCalls(r) - before, 1, 'one EVALSHA for the 30 decisions')
  t.equal(replies.filter((x) => x !== undefined).length, 30, 'every handler got its reply')
  t.same(replies.slice(0, 25).map((x) => x?.[0]), [...Array(20).fill(1), ...Array(5).fill(0)], 'the first 20 of key 1 admitted, in order')
  t.same(replies.slice(0, 3).map((x) => x?.[1]), [19, 18, 17], 'remaining counts down across the batch')
  t.same(replies.slice(25).map((x) => x?.[0]), [1, 1, 1, 0, 0], 'key 2: the gcra burst of 3 admits 3')
  t.equal(await r.hget('k1', 'c'), '20', 'Redis counted exactly 20 on key 1')

  // A handler that throws fails its own request only.
  const bad = link.strict(['k3'], [1, 5, 3_600_000, 5], () => { throw new Error('handler bug') })
  const good: Array<number[] | undefined> = []
  const ok = link.strict(['k3'], [1, 5, 3_600_000, 5], (x) => good.push(x))
  await t.rejects(bad as Promise<void>, { message: 'handler bug' })
  await ok
  t.equal(good[0]?.[0], 1, 'the other request of the batch is decided normally')

  // Redis gone: the batch in flight and later ones get undefined (onRedisDown decides).
  await redis.kill()
  await eventually(async () => {
    const got: Array<number[] | undefined | 'none'> = []
    const p = link.strict(['k1'], [1, 20, 3_600_000, 20], (x) => got.push(x ?? 'none'))
    if (p !== undefined) await p
    return got[0] === 'none'
  }, 10_000, 'decisions without Redis are undefined')
  t.pass('Redis down: handlers get undefined')
})

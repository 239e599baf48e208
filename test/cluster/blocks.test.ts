// The auto-block seam and the cluster counters, in process: a ClusterNode on a real
// redis-server stores and announces publishBlock() entries, hands the fleet's blocks to
// onBlock() callbacks (and replays those in force on connect), and counts it all.
import { Redis } from 'ioredis'
import { pino } from 'pino'
import t from 'tap'
import { onBlock, publishBlock } from '../../src/cluster/blocks.js'
import { ClusterNode } from '../../src/cluster/node.js'
import { clusterStats } from '../../src/cluster/stats.js'
import { createSharedMemory, loadHotPath } from '../../src/shared-memory.js'
import { eventually, startRedis } from './redis.js'

t.test('publishBlock / onBlock through Redis', async (t) => {
  const redis = await startRedis(t)
  const r = new Redis(redis.url)
  t.teardown(() => { r.disconnect() })
  const until = Date.now() + 60_000
  // A block from another instance that is already in force: replayed on connect.
  await r.zadd('tollgate:blocks', until, '192.0.2.9')

  const seen: Array<[string, number]> = []
  const stop = onBlock((ip, u) => seen.push([ip, u]))
  t.teardown(stop)
  const hotPath = await loadHotPath(createSharedMemory())
  const node = new ClusterNode({ redis: redis.url, prefix: 'tollgate:', mode: 'strict', onRedisDown: 'deny', timeout: 50, syncInterval: 100, instanceId: 'n1' }, { log: pino({ level: 'silent' }), hotPath, port: 1 })
  t.teardown(async () => { await node.close() })

  await eventually(async () => seen.some(([ip]) => ip === '192.0.2.9'), 10_000, 'the stored block is replayed on connect')
  t.pass('blocks in force are replayed on connect')

  publishBlock('198.51.100.7', until)
  await eventually(async () => Number(await r.zscore('tollgate:blocks', '198.51.100.7')) === until, 10_000, 'stored in the sorted set')
  await eventually(async () => seen.some(([ip]) => ip === '198.51.100.7'), 10_000, 'own block reaches this process')
  t.pass('a published block is stored (score = until) and reaches every thread of this instance')

  await r.publish('tollgate:blocks', JSON.stringify({ ip: '203.0.113.5', until, origin: 'other' }))
  await eventually(async () => seen.some(([ip, u]) => ip === '203.0.113.5' && u === until), 10_000, 'a remote block arrives')
  t.pass("another instance's block reaches onBlock")

  const s = clusterStats()
  t.equal(s.enabled, true)
  t.equal(s.instanceId, 'n1')
  t.equal(s.redisUp, 1)
  t.equal(s.blocksPublished, 1)
  t.equal(s.blocksReceived, 1, 'only blocks of other instances count as received')
})

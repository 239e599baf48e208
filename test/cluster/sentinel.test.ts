// cluster.redis as a Sentinel URL: one redis-server master and one sentinel (redis-server
// --sentinel) on loopback. The gateways are given only the sentinel's address and the
// master's name; they ask the sentinel where the master is, and strict mode is exact
// through it.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t from 'tap'
import { startUpstream } from '../helpers/gateway.js'
import { clusterReady, spread, startInDir, startRedis, startRedisProcess, tempDir } from './redis.js'

t.setTimeout(600_000)

t.test('strict mode through a Sentinel URL: exactly the limit, fleet-wide', async (t) => {
  const master = await startRedis(t)
  // A sentinel rewrites its config file (it records what it learns): a file of its own.
  const dir = tempDir(t)
  const sentinel = await startRedisProcess(t, (port) => {
    writeFileSync(join(dir, 'sentinel.conf'), [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
      'sentinel down-after-milliseconds mymaster 60000'
    ].join('\n') + '\n')
    return [join(dir, 'sentinel.conf'), '--sentinel']
  }, { ready: '+monitor master mymaster' })
  // The sentinel answers for the master.
  const s = new Redis({ host: '127.0.0.1', port: sentinel.port, lazyConnect: true })
  t.teardown(() => { s.disconnect() })
  await s.connect()
  t.same(await s.call('SENTINEL', 'get-master-addr-by-name', 'mymaster'), ['127.0.0.1', String(master.port)], 'the sentinel knows the master')

  const up = await startUpstream(t)
  const url = `redis+sentinel://127.0.0.1:${sentinel.port}/mymaster`
  const config = (id: string): Record<string, unknown> => ({
    workers: 1,
    cluster: { redis: url, mode: 'strict', timeout: '2s', instanceId: id },
    routes: [{
      name: 'api',
      match: { path: '/' },
      upstream: up.url,
      plugins: [{ name: 'rate-limit', config: { key: 'header:x-client', limits: [{ limit: 20, window: '24h', algorithm: 'gcra' }] } }]
    }]
  })
  const gws = [await startInDir(t, tempDir(t), config('s1')), await startInDir(t, tempDir(t), config('s2'))]
  await Promise.all(gws.map(clusterReady))
  const r = await spread(gws.map((g) => g.url + '/x'), 100, 20, { 'x-client': 'one' })
  t.equal(up.seen.length, 20, 'exactly the limit reached the upstream')
  t.same(r.byStatus, { 200: 20, 429: 80 }, '20 admitted, 80 refused, over two instances')

  // The counter lives on the master the sentinel named.
  const m = new Redis(master.url)
  t.teardown(() => { m.disconnect() })
  const keys = await m.keys('tollgate:rl:{h:one}:*')
  t.equal(keys.length, 1, `the counter is on the master (${keys.join(', ')})`)
  // And the gateways' connections are there too, named for their roles.
  const clients = String(await m.client('LIST'))
  t.match(clients, /name=tollgate:s1:worker:/, "instance s1's worker is connected to the master")
  t.match(clients, /name=tollgate:s2:acceptor/, "instance s2's acceptor is connected to the master")
})

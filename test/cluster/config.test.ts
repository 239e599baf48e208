// The cluster block: URL forms, refusals with path and reason, defaults.
import t from 'tap'
import { validateGatewayConfig } from '../../src/config.js'
import { parseRedisUrl, redactRedisUrl } from '../../src/cluster/redis-url.js'
import { GatewayError } from '../../src/errors.js'

const routes = [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1' }]
const check = (cluster: unknown): string[] => {
  try {
    validateGatewayConfig({ source: 'g.yaml', dir: '.', value: { routes, cluster } })
    return []
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err
    t.equal(err.code, 'GW_ERR_CONFIG_INVALID')
    return [...err.details]
  }
}

t.test('URL forms', async (t) => {
  t.same(parseRedisUrl('redis://127.0.0.1:6379'), { kind: 'single', url: 'redis://127.0.0.1:6379' })
  t.same(parseRedisUrl('rediss://u:p@redis.example:6380/2'), { kind: 'single', url: 'rediss://u:p@redis.example:6380/2' })
  t.same(parseRedisUrl('redis+cluster://:secret@10.0.0.1:7000,10.0.0.2'), { kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 6379 }], tls: false, password: 'secret' })
  t.same(parseRedisUrl('rediss+sentinel://s1:26379,[::1]:26380/mymaster/3'), { kind: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: '::1', port: 26380 }], name: 'mymaster', db: 3, tls: true })
  for (const bad of ['127.0.0.1:6379', 'http://127.0.0.1:6379', 'redis://', 'redis://a,b', 'redis://h:99999', 'redis://h/x', 'redis+sentinel://s1:26379', 'redis+cluster://h:1/2', 'redis://h h']) {
    t.throws(() => parseRedisUrl(bad), { name: 'RedisUrlError' }, bad)
  }
  t.equal(redactRedisUrl('redis://user:hunter2@h:6379'), 'redis://user:***@h:6379')
})

t.test('a bad cluster block is refused with path and reason', async (t) => {
  const d1 = check({ redis: 'http://user:hunter2@127.0.0.1:6379' })
  t.match(d1.join('\n'), /g\.yaml: \/cluster\/redis: unknown scheme 'http:'/)
  t.notMatch(d1.join('\n'), /hunter2/, 'the password is never echoed')
  t.match(check({ redis: 'redis://127.0.0.1:6379', mode: 'eventual' }).join('\n'), /\/cluster\/mode/)
  t.match(check({ redis: 'redis://127.0.0.1:6379', timeout: '20s' }).join('\n'), /\/cluster\/timeout: must be from 1ms to 10s/)
  t.match(check({ redis: 'redis://127.0.0.1:6379', syncInterval: '1ms' }).join('\n'), /\/cluster\/syncInterval/)
  t.match(check({ mode: 'strict' }).join('\n'), /\/cluster.*redis/)
  t.match(check({ redis: 'redis://127.0.0.1:6379', extra: 1 }).join('\n'), /\/cluster/)
})

t.test('defaults: strict, deny, 50 ms, 100 ms, tollgate:', async (t) => {
  const cfg = validateGatewayConfig({ source: 'g.yaml', dir: '.', value: { routes, cluster: { redis: 'redis://127.0.0.1:6379', timeout: '75ms' } } })
  t.same(cfg.cluster, { redis: 'redis://127.0.0.1:6379', prefix: 'tollgate:', mode: 'strict', onRedisDown: 'deny', timeout: 75, syncInterval: 100 })
  t.equal(validateGatewayConfig({ source: 'g.yaml', dir: '.', value: { routes } }).cluster, undefined, 'no cluster block: a single instance')
})

// Redis killed mid-test: onRedisDown decides (deny: 503 GW_RATE_LIMIT_UNAVAILABLE; allow:
// fail open), a rate-limited log line says so, and when redis-server is started again on
// the same port the gateways use it again by themselves.
import t from 'tap'
import { startUpstream } from '../helpers/gateway.js'
import { clusterReady, eventually, get, spread, startInDir, startRedis, tempDir } from './redis.js'

// Several gateway processes start one after the other; on a loaded 2-core CI that takes long.
t.setTimeout(600_000)

for (const onRedisDown of ['deny', 'allow'] as const) {
  t.test(`strict mode, Redis killed and restarted, onRedisDown: ${onRedisDown}`, async (t) => {
    const redis = await startRedis(t)
    const up = await startUpstream(t)
    const config = (id: string): Record<string, unknown> => ({
      workers: 1,
      cluster: { redis: redis.url, mode: 'strict', onRedisDown, timeout: '1s', instanceId: id },
      routes: [{
        name: 'api',
        match: { path: '/' },
        upstream: up.url,
        plugins: [{ name: 'rate-limit', config: { key: 'header:x-client', limits: [{ limit: 5, window: '24h', algorithm: 'gcra' }] } }]
      }]
    })
    const gws = [await startInDir(t, tempDir(t), config('o1')), await startInDir(t, tempDir(t), config('o2'))]
    await Promise.all(gws.map(clusterReady))
    const urls = gws.map((g) => g.url + '/x')

    const before = await spread(urls, 8, 4, { 'x-client': 'a' })
    t.same(before.byStatus, { 200: 5, 429: 3 }, 'Redis up: the fleet-wide limit')

    await redis.kill()
    const started = performance.now()
    const during = await spread(urls, 40, 4, { 'x-client': 'b' })
    const perRequest = (performance.now() - started) / 10
    if (onRedisDown === 'deny') {
      t.same(during.byStatus, { 503: 40 }, 'Redis down, deny: every request is refused')
      t.same(during.byCode, { GW_RATE_LIMIT_UNAVAILABLE: 40 })
    } else {
      t.same(during.byStatus, { 200: 40 }, 'Redis down, allow: every request goes through (fail open)')
    }
    t.comment(`Redis down: ${perRequest.toFixed(1)} ms per request on average (4 at a time; cluster.timeout 1 s)`)
    for (const g of gws) {
      const warnings = g.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('cluster: Redis unavailable'))
      t.ok(warnings.length >= 1, 'the outage is logged')
      // Not one line per request: at most one per thread (2 workers + acceptor), plus one
      // per ioredis error that came before the first log of a thread.
      t.ok(warnings.length <= 6, `the log is rate-limited (${warnings.length} lines for 20 requests)`)
    }

    await redis.restart()
    // Recovered: every worker thread that lost Redis says it has it again (with allow, a 200
    // alone would not tell), and answers come with Redis's RateLimit headers again.
    const threads = (g: typeof gws[number], msg: string): Set<unknown> => new Set(g.lines.filter((l) => l.role === 'worker' && typeof l.msg === 'string' && l.msg.startsWith(msg)).map((l) => l.threadId))
    const ms = await eventually(async () => gws.every((g) => {
      const lost = threads(g, 'cluster: Redis unavailable')
      const back = threads(g, 'cluster: Redis reachable again')
      return lost.size > 0 && [...lost].every((id) => back.has(id))
    }), 30_000, 'the gateways use Redis again')
    for (const u of urls) t.ok((await get(u, { 'x-client': 'c' })).headers['ratelimit-remaining'] !== undefined, 'decided by Redis again')
    t.pass(`recovered without a restart, ${Math.round(ms)} ms after redis-server was back`)
    for (const g of gws) t.equal(g.proc.exitCode, null, 'the gateway kept running')
    // And limits are fleet-wide again (Redis restarted empty: a new count).
    const after = await spread(urls, 8, 4, { 'x-client': 'd' })
    t.same(after.byStatus, { 200: 5, 429: 3 }, 'fleet-wide limit after recovery')
  })
}

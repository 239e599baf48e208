// Cluster strict mode: three real tollgate processes (two of them with clocks faked 2 s
// ahead and behind) share one limit through a real redis-server.
import t from 'tap'
import { startUpstream } from '../helpers/gateway.js'
import { clusterReady, get, spread, startInDir, startRedis, tempDir } from './redis.js'

// Several gateway processes start one after the other; on a loaded 2-core CI that takes long.
t.setTimeout(600_000)

t.test('limit 100, 1000 concurrent requests over 3 instances with skewed clocks: exactly 100 admitted', async (t) => {
  const redis = await startRedis(t)
  const up = await startUpstream(t)
  const config = (offset: string): Record<string, unknown> => ({
    cluster: { redis: redis.url, mode: 'strict', timeout: '2s', instanceId: `strict${offset}` },
    routes: [{
      name: 'api',
      match: { path: '/' },
      upstream: up.url,
      // gcra over a day: one token back every 864 s, so the count is exact for the test's length
      plugins: [{ name: 'rate-limit', config: { key: 'header:x-client', limits: [{ limit: 100, window: '24h', algorithm: 'gcra' }] } }]
    }]
  })
  // One after the other: three starting at once on a loaded 2-core CI take long.
  const gws = [
    await startInDir(t, tempDir(t), config('0')),
    await startInDir(t, tempDir(t), config('ahead'), { TOLLGATE_TEST_CLOCK_OFFSET_MS: '3000' }),
    await startInDir(t, tempDir(t), config('behind'), { TOLLGATE_TEST_CLOCK_OFFSET_MS: '-3000' })
  ]
  await Promise.all(gws.map(clusterReady))
  // The fake is live: each process logs in its own (shifted) time.
  t.ok((gws[1]?.clockOffset ?? 0) > 1500, `instance 2 runs ahead (${gws[1]?.clockOffset} ms)`)
  t.ok((gws[2]?.clockOffset ?? 0) < -1500, `instance 3 runs behind (${gws[2]?.clockOffset} ms)`)
  const urls = gws.map((g) => g.url + '/x')
  const r = await spread(urls, 1000, 50, { 'x-client': 'one' })
  // What was admitted is what reached the upstream: exactly the limit. (On a starved CI a
  // client socket may fail; such a request is counted apart, and cannot hide an admission:
  // the upstream's count is the truth.)
  const lost = r.byStatus[0] ?? 0
  if (lost > 0) t.comment(`transport errors (counted apart): ${JSON.stringify(r.byCode)}`)
  t.equal(up.seen.length, 100, 'exactly the limit reached the upstream, fleet-wide')
  t.ok((r.byStatus[200] ?? 0) <= 100 && (r.byStatus[200] ?? 0) >= 100 - lost, `100 answered 200 (${r.byStatus[200]}, ${lost} lost)`)
  t.equal((r.byStatus[429] ?? 0) + (r.byStatus[200] ?? 0) + lost, 1000, 'every other request was answered 429')
  t.equal(r.byCode.RATE_LIMITED, r.byStatus[429], 'with code RATE_LIMITED')
  t.ok(lost <= 10, `few transport errors (${lost})`)

  // Another client has its own quota; the headers come from Redis's counters.
  const other = await get(urls[1] as string, { 'x-client': 'two' })
  t.equal(other.status, 200)
  t.equal(other.headers['ratelimit-remaining'], '99')
  const limited = await get(urls[2] as string, { 'x-client': 'one' })
  t.equal(limited.status, 429)
  t.ok(Number(limited.headers['retry-after']) >= 1 && Number(limited.headers['retry-after']) <= 864, `Retry-After ${String(limited.headers['retry-after'])} s is within one emission interval`)
})

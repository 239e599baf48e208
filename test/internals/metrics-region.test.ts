import t from 'tap'
import { GatewayMetrics } from '../../src/metrics/exposition.js'
import { MAX_DENIALS, MAX_ROUTES } from '../../src/metrics/layout.js'
import { createMetricsRegion, methodIndex, MetricsWriter } from '../../src/metrics/writer.js'

const sample = (text: string, line: string): number | undefined => {
  const found = text.split('\n').find((l) => l.startsWith(line + ' '))
  return found === undefined ? undefined : Number(found.slice(line.length + 1))
}

t.test('two regions are summed by label, whatever block each worker gave a route', async (t) => {
  const a = createMetricsRegion()
  const b = createMetricsRegion()
  const wa = new MetricsWriter(a)
  const wb = new MetricsWriter(b)
  const ra = wa.routeBlock('orders')
  wb.routeBlock('other') // 'orders' sits at another block in b
  const rb = wb.routeBlock('orders')
  t.not(ra, rb)
  for (let i = 0; i < 3; i++) wa.request(ra, methodIndex('GET'), 200, 0.3, 0.2)
  for (let i = 0; i < 4; i++) wb.request(rb, methodIndex('GET'), 204, 30, undefined)
  wb.request(rb, methodIndex('BREW'), 503, 3000, 2999)
  wa.denial('ip-filter', 'IP_DENIED')
  wb.denial('ip-filter', 'IP_DENIED')
  wb.denial('key-auth', 'MISSING_API_KEY')
  const text = await new GatewayMetrics({ regions: [a, b], generation: () => 3 }).text()
  t.equal(sample(text, 'tollgate_requests_total{route="orders",method="GET",status_class="2xx"}'), 7)
  t.equal(sample(text, 'tollgate_requests_total{route="orders",method="OTHER",status_class="5xx"}'), 1)
  t.equal(sample(text, 'tollgate_request_duration_seconds_bucket{route="orders",le="0.0005"}'), 3)
  t.equal(sample(text, 'tollgate_request_duration_seconds_bucket{route="orders",le="0.05"}'), 7)
  t.equal(sample(text, 'tollgate_request_duration_seconds_bucket{route="orders",le="+Inf"}'), 8)
  t.equal(sample(text, 'tollgate_request_duration_seconds_count{route="orders"}'), 8)
  t.equal(sample(text, 'tollgate_request_duration_seconds_sum{route="orders"}'), 3.1209)
  t.equal(sample(text, 'tollgate_upstream_duration_seconds_count{route="orders"}'), 4)
  t.equal(sample(text, 'tollgate_denials_total{plugin="ip-filter",code="IP_DENIED"}'), 2)
  t.equal(sample(text, 'tollgate_denials_total{plugin="key-auth",code="MISSING_API_KEY"}'), 1)
  t.equal(sample(text, 'tollgate_config_generation'), 3)
})

t.test('a replacement thread in the same slot keeps the blocks and counts going', async (t) => {
  const r = createMetricsRegion()
  const first = new MetricsWriter(r)
  const block = first.routeBlock('api')
  first.request(block, 0, 200, 1, 1)
  first.denial('acl', 'GROUP_DENIED')
  first.connectionOpened()
  const second = new MetricsWriter(r)
  t.equal(second.routeBlock('api'), block, 'the same block')
  second.resetGauges()
  second.request(block, 0, 200, 1, 1)
  second.denial('acl', 'GROUP_DENIED')
  const text = await new GatewayMetrics({ regions: [r], generation: () => 1 }).text()
  t.equal(sample(text, 'tollgate_requests_total{route="api",method="GET",status_class="2xx"}'), 2)
  t.equal(sample(text, 'tollgate_denials_total{plugin="acl",code="GROUP_DENIED"}'), 2)
  t.equal(sample(text, 'tollgate_active_connections'), 0, "the dead thread's connections are gone")
})

t.test('label sets past the table share the overflow label', async (t) => {
  const r = createMetricsRegion()
  const w = new MetricsWriter(r)
  const blocks = new Set<number>()
  for (let i = 0; i < MAX_ROUTES + 10; i++) blocks.add(w.routeBlock(`r${i}`))
  t.equal(blocks.size, MAX_ROUTES - 1, "every block in use (one is the no-route label's), the rest share '_overflow'")
  t.equal(w.routeBlock(`r${MAX_ROUTES + 5}`), w.routeBlock('_overflow'))
  for (let i = 0; i < MAX_DENIALS + 5; i++) w.denial('p', `C${i}`)
  const text = await new GatewayMetrics({ regions: [r], generation: () => 1 }).text()
  t.equal(sample(text, 'tollgate_denials_total{plugin="_overflow",code="_overflow"}'), 6)
})

import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { parseTraceparent } from '../src/tracing/traceparent.js'
import { startGateway, startUpstream } from './helpers/gateway.js'

const VALID = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

t.test('traceparent parsing: the spec cases', async (t) => {
  const cases: Array<[string | undefined, boolean]> = [
    [VALID, true],
    ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00', true],
    ['01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes-next', true],
    ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra', false],
    ['ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', false],
    ['00-00000000000000000000000000000000-b7ad6b7169203331-01', false],
    ['00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', false],
    ['00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01', false],
    ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01', false],
    ['00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01', false],
    [`${VALID}, ${VALID}`, false],
    ['garbage', false],
    [undefined, false]
  ]
  for (const [v, ok] of cases) t.equal(parseTraceparent(v) !== undefined, ok, String(v))
  t.same(parseTraceparent(VALID), { traceId: '0af7651916cd43dd8448eb211c80319c', parentId: 'b7ad6b7169203331', flags: 1 })
})

interface Posted { path: string, headers: Record<string, unknown>, body: { resourceSpans: Array<{ resource: unknown, scopeSpans: Array<{ spans: Span[] }> }> } }
interface Span { traceId: string, spanId: string, parentSpanId?: string, name: string, kind: number, startTimeUnixNano: string, endTimeUnixNano: string, attributes: Array<{ key: string, value: Record<string, unknown> }>, events: Array<{ name: string, attributes: Array<{ key: string, value: Record<string, unknown> }> }>, status: { code: number } }

t.test('pass-through, start, replace upstream and in the access log; OTLP export of one span per request', async (t) => {
  const up = await startUpstream(t)
  // A stand-in OTLP/HTTP collector on loopback that records what it is sent.
  const posted: Posted[] = []
  const collector = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      posted.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString()) as Posted['body'] })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { collector.closeAllConnections(); collector.close(() => resolve()) }))
  const cport = (collector.address() as AddressInfo).port

  const gw = await startGateway(t, {
    config: {
      workers: 2,
      logLevel: 'warn',
      tracing: { otlp: { url: `http://127.0.0.1:${cport}/v1/traces`, headers: { 'x-collector-key': 'k1' }, flushInterval: '100ms', batchSize: 3 } },
      plugins: [{ name: 'request-id' }, { name: 'access-log', config: { destination: 'access.log' } }],
      routes: [
        { name: 'api', match: { path: '/api' }, upstream: up.url },
        { name: 'blocked', match: { path: '/blocked' }, upstream: up.url, plugins: [{ name: 'ip-filter', config: { deny: ['127.0.0.0/8'] } }] }
      ]
    }
  })
  const send = async (path: string, headers: Record<string, string>): Promise<{ status: number, id: string }> => {
    const res = await request(`${gw.url}${path}`, { headers })
    await res.body.text()
    return { status: res.statusCode, id: res.headers['x-request-id'] as string }
  }
  const a = await send('/api/a', { traceparent: VALID, tracestate: 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7' })
  const b = await send('/api/b', {})
  const c = await send('/api/c', { traceparent: '00-zzz-not-a-trace-01', tracestate: 'evil=1' })
  const d = await send('/blocked', { traceparent: VALID })
  t.same([a, b, c, d].map((x) => x.status), [200, 200, 200, 403])

  const seen = (path: string): Record<string, unknown> => up.seen.find((s) => s.url === path)?.headers as Record<string, unknown>
  const pa = parseTraceparent(seen('/api/a').traceparent as string)
  t.equal(pa?.traceId, '0af7651916cd43dd8448eb211c80319c', 'a valid trace is continued')
  t.not(pa?.parentId, 'b7ad6b7169203331', "the upstream's parent is the gateway's span, not the client's")
  t.equal(pa?.flags, 1, 'the sampled flag is kept')
  t.equal(seen('/api/a').tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', 'tracestate passed on with it')
  const pb = parseTraceparent(seen('/api/b').traceparent as string)
  t.ok(pb, 'no traceparent: one is started')
  t.not(pb?.traceId, pa?.traceId)
  const pc = parseTraceparent(seen('/api/c').traceparent as string)
  t.ok(pc, 'a malformed traceparent is replaced by a valid one')
  t.not(seen('/api/c').traceparent, '00-zzz-not-a-trace-01')
  t.equal(seen('/api/c').tracestate, undefined, 'its tracestate is dropped')
  t.equal(up.seen.filter((s) => s.rawHeaders.filter((h) => h.toLowerCase() === 'traceparent').length !== 1).length, 0, 'exactly one traceparent upstream')

  // The access log carries the trace id the upstream saw.
  const file = join(t.testdirName, 'access.log')
  await gw.stop()
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) : []
  const line = (id: string): Record<string, unknown> | undefined => lines.find((l) => l.id === id)
  t.equal(line(a.id)?.traceId, pa?.traceId)
  t.equal(line(a.id)?.spanId, pa?.parentId, "the access log's span id is the upstream's parent")
  t.equal(line(b.id)?.traceId, pb?.traceId)
  t.equal(line(c.id)?.traceId, pc?.traceId)
  t.equal(line(d.id)?.traceId, '0af7651916cd43dd8448eb211c80319c', 'a denied request is traced too')

  // Every span reached the collector by the time the gateway exited (flushed on drain).
  const spans = posted.flatMap((p) => p.body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)))
  t.ok(posted.length >= 1)
  t.ok(posted.every((p) => p.path === '/v1/traces' && p.headers['content-type'] === 'application/json' && p.headers['x-collector-key'] === 'k1'), 'POSTed as OTLP/HTTP JSON with the configured headers')
  t.equal(spans.length, 4, 'one span per request')
  const span = (traceId: string | undefined, route: string): Span | undefined => spans.find((s) => s.traceId === traceId && s.attributes.some((x) => x.key === 'http.route' && x.value.stringValue === route))
  const sa = span(pa?.traceId, 'api')
  t.match(sa, { spanId: pa?.parentId, parentSpanId: 'b7ad6b7169203331', name: 'GET api', kind: 2, status: { code: 0 } })
  t.ok(BigInt(sa?.endTimeUnixNano ?? 0) >= BigInt(sa?.startTimeUnixNano ?? 1), 'end after start')
  t.ok(Math.abs(Number(BigInt(sa?.startTimeUnixNano ?? 0) / 1000000n) - Date.now()) < 120_000, 'unix nanoseconds')
  t.ok(sa?.attributes.some((x) => x.key === 'http.response.status_code' && x.value.intValue === '200'))
  t.ok(sa?.events.some((e) => e.name === 'plugin request-id' && e.attributes.some((x) => x.key === 'tollgate.duration_ms')), 'plugin timings as events')
  t.equal(span(pb?.traceId, 'api')?.parentSpanId, undefined, 'a started trace has no parent')
  const sd = spans.find((s) => s.attributes.some((x) => x.key === 'http.route' && x.value.stringValue === 'blocked'))
  t.ok(sd?.attributes.some((x) => x.key === 'tollgate.code' && x.value.stringValue === 'IP_DENIED'), 'the denial code on the span')
  t.ok(sd?.events.some((e) => e.name === 'plugin ip-filter'))
})

t.test('tracing.propagate: false passes the client headers through untouched', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { config: { workers: 1, logLevel: 'warn', tracing: { propagate: false }, routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }] } })
  const res = await request(`${gw.url}/x`, { headers: { traceparent: 'whatever', tracestate: 'a=b' } })
  await res.body.text()
  t.equal(up.seen[0]?.headers.traceparent, 'whatever')
  t.equal(up.seen[0]?.headers.tracestate, 'a=b')
  const res2 = await request(`${gw.url}/y`)
  await res2.body.text()
  t.equal(up.seen[1]?.headers.traceparent, undefined, 'and starts none')
})

t.test('an unreachable collector never fails a request; spans are counted as failed', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await startGateway(t, {
    config: { workers: 1, logLevel: 'error', admin: { port: 0 }, tracing: { otlp: { url: 'http://127.0.0.1:1/v1/traces', flushInterval: 50, batchSize: 2, timeout: 500 } }, routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }] }
  })
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) {
    const res = await request(`${gw.url}/x`)
    await res.body.text()
    statuses.push(res.statusCode)
  }
  t.same(statuses, [200, 200, 200, 200])
  const admin = (gw.lines.find((l) => l.msg === 'listening') as { admin: { port: number } }).admin.port
  let failed = 0
  for (const until = Date.now() + 10_000; failed < 4 && Date.now() < until;) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    const text = await (await request(`http://127.0.0.1:${admin}/metrics`)).body.text()
    failed = Number(/tollgate_trace_spans_total\{result="failed"\} (\d+)/.exec(text)?.[1] ?? 0)
  }
  t.equal(failed, 4)
})

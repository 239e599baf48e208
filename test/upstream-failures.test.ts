// CHECKLIST G1-G4 against real local upstreams that refuse, stall, answer slowly and answer
// with bad framing; real gateway processes with real worker threads.
import t from 'tap'
import { deadPort, rawRequest, startGateway } from './helpers/gateway.js'
import { client, get, named, rawTarget, sleep, tally } from './helpers/upstreams.js'

const problem = (body: string): Record<string, unknown> => JSON.parse(body) as Record<string, unknown>

t.test('G1: refused -> 502; no healthy target -> 503 + Retry-After; breaker open -> 503 + Retry-After', async (t) => {
  const dead = await deadPort()
  const slow = await named(t, 'slow', (_req, res) => { setTimeout(() => res.end('slow'), 600) })
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      routes: [
        { name: 'refused', match: { path: '/refused' }, upstream: `http://127.0.0.1:${dead}` },
        {
          name: 'unhealthy',
          match: { path: '/unhealthy' },
          upstream: { targets: [`http://127.0.0.1:${dead}`], healthCheck: { path: '/health', interval: '100ms', timeout: '100ms', unhealthyThreshold: 1 } }
        },
        { name: 'breaker', match: { path: '/breaker' }, upstream: { targets: [slow.url], breaker: { maxRequests: 2 } } }
      ]
    }
  })
  const agent = client(t)
  const refused = await get(agent, `${gw.url}/refused`)
  t.equal(refused.status, 502, 'connection refused: 502')
  t.equal(problem(refused.body).code, 'GW_UPSTREAM_UNAVAILABLE')

  // The probe fails on its first run (threshold 1): the only target is out.
  let unhealthy = await get(agent, `${gw.url}/unhealthy`)
  for (let i = 0; i < 50 && unhealthy.status !== 503; i++) {
    await sleep(100)
    unhealthy = await get(agent, `${gw.url}/unhealthy`)
  }
  t.equal(unhealthy.status, 503, 'no healthy target: 503')
  t.equal(problem(unhealthy.body).code, 'GW_UPSTREAM_NO_HEALTHY')
  t.match(unhealthy.headers['retry-after'], /^[0-9]+$/, 'with Retry-After')
  t.equal(unhealthy.headers['content-type'], 'application/problem+json')

  const answers = await Promise.all(Array.from({ length: 8 }, async () => await get(agent, `${gw.url}/breaker`)))
  const over = answers.filter((a) => a.status === 503)
  t.ok(over.length >= 1, `some requests over maxRequests are refused (${JSON.stringify(tally(answers, (a) => String(a.status)))})`)
  t.ok(over.every((a) => problem(a.body).code === 'GW_UPSTREAM_OVERLOADED' && a.headers['retry-after'] === '1'), '503 GW_UPSTREAM_OVERLOADED with Retry-After: 1')
  t.ok(slow.maxConcurrent() <= 2, `the upstream never had more than 2 at once, across 2 workers (${slow.maxConcurrent()})`)
})

t.test('G2: response headers and total timeouts -> 504', async (t) => {
  const late = await named(t, 'late', (_req, res) => { setTimeout(() => { if (!res.destroyed) res.end('late') }, 3000) })
  const dribble = await named(t, 'dribble', (_req, res) => {
    // Headers at once, then a byte every 100 ms: within the body idle timeout, never done.
    res.writeHead(200, { 'content-type': 'text/plain' })
    const iv = setInterval(() => { if (res.destroyed) clearInterval(iv); else res.write('x') }, 100)
  })
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      routes: [
        { name: 'headers', match: { path: '/headers' }, upstream: late.url, timeouts: { headers: '300ms' } },
        { name: 'total', match: { path: '/total' }, upstream: late.url, timeouts: { total: '300ms' } },
        { name: 'stream', match: { path: '/stream' }, upstream: dribble.url, timeouts: { total: '500ms' } }
      ]
    }
  })
  const agent = client(t)
  for (const path of ['/headers', '/total']) {
    const a = await get(agent, `${gw.url}${path}`)
    t.equal(a.status, 504, `${path}: 504`)
    t.equal(problem(a.body).code, 'GW_UPSTREAM_TIMEOUT')
  }
  t.equal(late.hits(), 2, 'a timed-out GET is not retried')
  // Total timeout after the status was sent: the connection is cut.
  const raw = await rawRequest(gw.port, 'GET /stream HTTP/1.1\r\nHost: a\r\n\r\n', 5000)
  t.match(raw, /^HTTP\/1\.1 200 /, 'the status line went out')
  t.notMatch(raw, /\r\n0\r\n\r\n$/, 'the body is cut, not ended')
})

t.test('G3: bad framing and an oversized header block -> 502', async (t) => {
  const bad = await rawTarget(t, (s) => { s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\nok') })
  const big = await named(t, 'big', (_req, res) => { res.setHeader('x-big', 'a'.repeat(70_000)); res.end('ok') })
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      routes: [
        { name: 'bad', match: { path: '/bad' }, upstream: bad.url },
        { name: 'big', match: { path: '/big' }, upstream: big.url }
      ]
    }
  })
  const agent = client(t)
  for (const path of ['/bad', '/big']) {
    const a = await get(agent, `${gw.url}${path}`)
    t.equal(a.status, 502, `${path}: 502`)
    t.equal(problem(a.body).code, 'GW_UPSTREAM_BAD_RESPONSE', `${path}: GW_UPSTREAM_BAD_RESPONSE`)
  }
  t.equal(big.hits(), 1, 'a malformed answer is not retried')
})

t.test('G4: an upstream that stalls mid-body: the client connection is cut, and it is logged', async (t) => {
  const stall = await named(t, 'stall', (_req, res) => {
    res.writeHead(200, { 'content-length': '100' })
    res.write('0123456789')
  })
  const gw = await startGateway(t, { config: { logLevel: 'warn', routes: [{ name: 's', match: { path: '/' }, upstream: stall.url, timeouts: { body: '300ms' } }] } })
  const started = Date.now()
  const raw = await rawRequest(gw.port, 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', 8000)
  t.match(raw, /^HTTP\/1\.1 200 /, 'the status was sent')
  t.ok(raw.endsWith('0123456789'), 'the body so far, no more')
  t.ok(Date.now() - started < 7000, 'the gateway closed the connection (not the test timeout)')
  const line = await gw.waitFor((l) => l.msg === 'upstream request failed', 5000)
  t.equal((line.err as { code?: string }).code, 'UND_ERR_BODY_TIMEOUT', 'logged with the cause')
})

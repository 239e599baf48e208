// CHECKLIST G5, G6 and G9: what is retried (idempotent methods, or requests that never
// reached the upstream) and on which target; real upstreams that reset.
import t from 'tap'
import { deadPort, startGateway } from './helpers/gateway.js'
import { client, get, many, named, rawTarget, tally } from './helpers/upstreams.js'

const problem = (body: string): Record<string, unknown> => JSON.parse(body) as Record<string, unknown>

t.test('G5/G6/G9: reset after the request was sent: a POST is not retried, a GET is', async (t) => {
  // Reads the whole request, then resets the connection: the bytes reached the upstream.
  const reset = await rawTarget(t, (s) => { s.resetAndDestroy() })
  const gw = await startGateway(t, { config: { logLevel: 'warn', workers: 1, routes: [{ name: 'r', match: { path: '/' }, upstream: { targets: [reset.url], passive: { consecutiveFailures: 0 } } }] } })
  const agent = client(t)
  const post = await get(agent, `${gw.url}/order`, { method: 'POST', body: '{"item":1}', headers: { 'content-type': 'application/json' } })
  t.equal(post.status, 502, 'POST reset after sending: 502')
  t.equal(problem(post.body).code, 'GW_UPSTREAM_UNAVAILABLE')
  t.equal(reset.requests().filter((r) => r.method === 'POST').length, 1, 'the POST reached the upstream exactly once: never retried')
  const getA = await get(agent, `${gw.url}/order`)
  t.equal(getA.status, 502, 'GET: 502 once the retries are spent')
  t.equal(reset.requests().filter((r) => r.method === 'GET').length, 3, 'GET: sent 1 + 2 retries (the default attempts)')

  // G9, the stale keep-alive socket: an upstream that closes a kept-alive connection as the
  // next request arrives. A GET is sent again on a fresh connection; a POST is not.
  const stale = await rawTarget(t, (s, n) => {
    if (n === 1) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    else s.destroy()
  })
  const gw2 = await startGateway(t, { config: { logLevel: 'warn', workers: 1, routes: [{ name: 'r', match: { path: '/' }, upstream: { targets: [stale.url], connections: 1, passive: { consecutiveFailures: 0 } } }] } })
  t.equal((await get(agent, `${gw2.url}/a`)).status, 200, 'first request on a new connection')
  t.equal((await get(agent, `${gw2.url}/b`)).status, 200, 'GET on the stale connection: retried on a new one, 200')
  t.equal((await get(agent, `${gw2.url}/c`, { method: 'POST', body: 'x' })).status, 502, 'POST on the stale connection: 502, not retried')
  const posts = stale.requests().filter((r) => r.method === 'POST')
  t.equal(posts.length, 1, 'the POST was sent once')
})

t.test('G5b/G6: a refused POST and 503 GETs go to another target; a POST answered 503 is passed on', async (t) => {
  const dead = await deadPort()
  const good = await named(t, 'good')
  const busy = await named(t, 'busy', (_req, res) => { res.writeHead(503, { 'content-type': 'text/plain' }); res.end('busy') })
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      workers: 1,
      routes: [
        { name: 'refused', match: { path: '/refused' }, upstream: { targets: [`http://127.0.0.1:${dead}`, good.url], passive: { consecutiveFailures: 0 } } },
        { name: 'busy', match: { path: '/busy' }, upstream: { targets: [busy.url, good.url], passive: { consecutiveFailures: 0 } } }
      ]
    }
  })
  const agent = client(t)
  const posts = await many(10, 2, async (i) => await get(agent, `${gw.url}/refused`, { method: 'POST', body: `order ${i}` }))
  t.same(tally(posts, (a) => String(a.status)), { 200: 10 }, 'every POST succeeds: refused ones went to the other target')
  t.equal(good.seen.filter((s) => s.method === 'POST').length, 10, 'each POST reached the good target once')
  t.ok(good.seen.every((s) => s.method !== 'POST' || /^order [0-9]$/.test(s.body.toString())), 'with its body')

  const before = good.hits()
  for (const method of ['GET', 'HEAD', 'PUT', 'DELETE']) {
    for (let i = 0; i < 2; i++) {
      const a = await get(agent, `${gw.url}/busy`, { method, body: method === 'PUT' ? 'x' : undefined })
      t.equal(a.status, 200, `${method} #${i + 1}: a 503 is retried on the other target`)
    }
  }
  t.equal(good.hits() - before, 8, 'all eight ended on the good target')
  const postAnswers = await many(4, 1, async () => await get(agent, `${gw.url}/busy`, { method: 'POST', body: 'p' }))
  t.same(tally(postAnswers, (a) => String(a.status)), { 200: 2, 503: 2 }, "a POST answered 503 gets the upstream's 503: not retried")
})

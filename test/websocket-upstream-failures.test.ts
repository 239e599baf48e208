// WebSocket handshakes to a target that fails: the route's connect timeout applies (504),
// and failed handshakes count towards passive ejection, as proxied requests do. The hung
// target is a loopback listener whose accept queue is full (helpers/full-backlog.ts).
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { WebSocketServer } from 'ws'
import { startGateway } from './helpers/gateway.js'
import { startFullBacklog } from './helpers/full-backlog.js'
import { targetStatus } from './helpers/status.js'
import { open, wsUrl } from './helpers/websocket.js'

t.test('a handshake whose connect never completes: 504 after timeouts.connect; two eject the target', async (t) => {
  const hung = await startFullBacklog(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'warn',
      admin: { port: 0 },
      // Headers (which also bounds the handshake) far beyond connect: only the connect timeout can answer first.
      timeouts: { connect: '60s', headers: '60s' },
      routes: [{
        name: 'hung',
        match: { path: '/' },
        upstream: { targets: [hung.url], passive: { consecutiveFailures: 2, baseEjectionTime: '60s' } },
        timeouts: { connect: '700ms' },
        websocket: true
      }]
    }
  })
  for (const n of [1, 2]) {
    const started = performance.now()
    const r = await open(wsUrl(gw.url, `/x${n}`))
    const ms = performance.now() - started
    t.equal(r.status, 504, `handshake ${n}: 504`)
    t.equal(r.ws === undefined ? (JSON.parse(r.body) as { code: string }).code : 'upgraded', 'GW_UPSTREAM_TIMEOUT')
    // Not instant, and long before the 60 s timeouts: bounds, not a speed assertion.
    t.ok(ms >= 500 && ms < 30_000, `handshake ${n}: answered after the connect timeout (${Math.round(ms)} ms)`)
  }
  await gw.waitFor((l) => l.msg === 'upstream target ejected after consecutive failures', 5000)
  t.equal((await targetStatus(gw, 'hung', hung.url))?.health, 'ejected', 'two failed handshakes ejected the target')
  const r = await open(wsUrl(gw.url, '/x3'))
  t.equal(r.status, 503, 'then: 503, nothing tried')
  t.equal(r.ws === undefined ? (JSON.parse(r.body) as { code: string }).code : 'upgraded', 'GW_UPSTREAM_NO_HEALTHY')
})

t.test('a 5xx answer to the handshake is a failure; a 101 ends the run', async (t) => {
  // An upstream that refuses handshakes to /bad with 503 (relayed as is) and upgrades others.
  const server = createServer()
  const wss = new WebSocketServer({ server, verifyClient: (info, cb) => { cb(info.req.url !== '/bad', 503) } })
  wss.on('connection', (ws) => { ws.on('error', () => {}) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    wss.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'warn',
      admin: { port: 0 },
      routes: [{ name: 'ws', match: { path: '/' }, upstream: { targets: [url], passive: { consecutiveFailures: 3 } }, websocket: true }]
    }
  })
  const failures = async (): Promise<number | undefined> => (await targetStatus(gw, 'ws', url))?.consecutiveFailures
  const bad = await open(wsUrl(gw.url, '/bad'))
  t.equal(bad.status, 503, "the upstream's refusal is relayed")
  t.equal(await failures(), 1, 'and counted as a failure')
  const bad2 = await open(wsUrl(gw.url, '/bad'))
  t.equal(bad2.status, 503)
  t.equal(await failures(), 2)
  const good = await open(wsUrl(gw.url, '/good'))
  t.equal(good.status, 101, 'upgraded')
  good.ws?.terminate()
  t.equal(await failures(), 0, 'a 101 ends the run of failures')
  t.equal((await targetStatus(gw, 'ws', url))?.health, 'healthy')
})

// WebSocket tunnels count against the upstream's breaker.maxConnections, across workers:
// over the limit a new handshake is 503 GW_UPSTREAM_OVERLOADED; a closed tunnel, or a
// handshake that failed, gives its slot back. Real `ws` upstream and clients on 127.0.0.1.
import t from 'tap'
import type WebSocket from 'ws'
import { deadPort, startGateway } from './helpers/gateway.js'
import { adminStatus } from './helpers/status.js'
import { sleep } from './helpers/upstreams.js'
import { closed, open, startWsUpstream, within, wsUrl } from './helpers/websocket.js'

t.test('tunnels over breaker.maxConnections: 503; a closed one frees its slot', async (t) => {
  const up = await startWsUpstream(t)
  const dead = `http://127.0.0.1:${await deadPort()}`
  const gw = await startGateway(t, {
    config: {
      workers: 2,
      logLevel: 'warn',
      admin: { port: 0 },
      routes: [
        { name: 'ws', match: { path: '/ws' }, upstream: { targets: [up.url], breaker: { maxConnections: 2 } }, websocket: true },
        { name: 'dead', match: { path: '/dead' }, upstream: { targets: [dead], breaker: { maxConnections: 1 }, retries: { attempts: 0 }, passive: { consecutiveFailures: 0 } }, websocket: true }
      ]
    }
  })
  const tunnelsOf = async (route: string): Promise<number | undefined> => (await adminStatus(gw)).upstreams.find((u) => u.routes.includes(route))?.tunnels

  const opened: WebSocket[] = []
  for (const n of [1, 2]) {
    const r = await open(wsUrl(gw.url, `/ws/${n}`))
    t.equal(r.status, 101, `tunnel ${n}: upgraded`)
    if (r.ws !== undefined) opened.push(r.ws)
  }
  t.equal(await tunnelsOf('ws'), 2, '/status counts two tunnels')
  const over = await open(wsUrl(gw.url, '/ws/3'))
  t.equal(over.status, 503, 'a third, over maxConnections 2: 503')
  t.equal(over.ws === undefined ? (JSON.parse(over.body) as { code: string }).code : 'upgraded', 'GW_UPSTREAM_OVERLOADED')
  t.ok(over.headers['retry-after'] !== undefined, 'with Retry-After')
  t.equal(up.upgrades.length, 2, 'the refused handshake never reached the upstream')

  // One closes: its slot is given back (on every worker: the count is shared).
  const first = opened.shift() as WebSocket
  first.close()
  await within(closed(first), 10_000, 'close')
  let n = await tunnelsOf('ws')
  for (let i = 0; i < 100 && n !== 1; i++) { await sleep(50); n = await tunnelsOf('ws') }
  t.equal(n, 1, 'one tunnel left')
  const again = await open(wsUrl(gw.url, '/ws/4'))
  t.equal(again.status, 101, 'a new tunnel fits again')
  if (again.ws !== undefined) opened.push(again.ws)
  for (const ws of opened) ws.terminate()

  // Handshakes that fail (nothing listens) hold no slot: with maxConnections 1, each is 502.
  for (const k of [1, 2, 3]) {
    const r = await open(wsUrl(gw.url, `/dead/${k}`))
    t.equal(r.status, 502, `failed handshake ${k}: 502, not 503`)
  }
  t.equal(await tunnelsOf('dead'), 0, 'no slot held by a failed handshake')
})

// WebSocket tunnels (issue 5): closing both ways, idle and lifetime limits, routes without
// websocket, policy updates and shutdown. Real `ws` upstreams and clients on 127.0.0.1.
import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import { rawRequest, startGateway } from './helpers/gateway.js'
import { closed, open, startWsUpstream, within, wsUrl } from './helpers/websocket.js'

t.test('closing: the client closing closes the upstream socket, and the other way round', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await startGateway(t, { config: { workers: 1, routes: [{ name: 'ws', match: { path: '/' }, upstream: up.url, websocket: true }] } })
  const a = await open(wsUrl(gw.url, '/a'))
  if (a.ws === undefined) throw new Error('no upgrade')
  await within(new Promise<void>((resolve) => { const i = setInterval(() => { if (up.sockets.length === 1) { clearInterval(i); resolve() } }, 20) }), 5000, 'upstream socket')
  const upA = up.sockets[0] as WebSocket
  const upClosed = closed(upA)
  a.ws.terminate() // a reset/close of the client's TCP connection, no close frame
  await within(upClosed, 10_000, 'upstream side closed after the client went away')
  t.pass('client gone: the upstream socket closed')

  const b = await open(wsUrl(gw.url, '/b'))
  if (b.ws === undefined) throw new Error('no upgrade')
  await within(new Promise<void>((resolve) => { const i = setInterval(() => { if (up.sockets.length === 2) { clearInterval(i); resolve() } }, 20) }), 5000, 'upstream socket')
  const clientClosed = closed(b.ws)
  ;(up.sockets[1] as WebSocket).terminate()
  await within(clientClosed, 10_000, 'client side closed after the upstream went away')
  t.pass('upstream gone: the client socket closed')

  // A clean close handshake passes through both ways.
  const c = await open(wsUrl(gw.url, '/c'))
  if (c.ws === undefined) throw new Error('no upgrade')
  c.ws.close(4000, 'bye')
  const [code, reason] = await within(once(c.ws, 'close'), 10_000, 'close handshake') as [number, Buffer]
  t.equal(code, 4000, 'the close code came back through the upstream')
  t.equal(reason.toString(), 'bye')
})

t.test('idle timeout and max lifetime close the tunnel', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      routes: [
        { name: 'idle', match: { path: '/idle' }, upstream: up.url, websocket: { idleTimeout: '400ms' } },
        { name: 'life', match: { path: '/life' }, upstream: up.url, websocket: { idleTimeout: '1m', maxLifetime: '1s' } }
      ]
    }
  })
  const r = await open(wsUrl(gw.url, '/idle'))
  if (r.ws === undefined) throw new Error('no upgrade')
  await within(closed(r.ws), 10_000, 'idle close')
  t.pass('an idle tunnel is closed')
  await within(new Promise<void>((resolve) => { const i = setInterval(() => { if (up.sockets.every((s) => s.readyState === WebSocket.CLOSED)) { clearInterval(i); resolve() } }, 20) }), 10_000, 'upstream idle close')
  t.pass('and its upstream side too')

  // Busy (a message every 100 ms) but over its lifetime: closed all the same.
  const l = await open(wsUrl(gw.url, '/life'))
  if (l.ws === undefined) throw new Error('no upgrade')
  const ws = l.ws
  let echoes = 0
  ws.on('message', () => { echoes++ })
  const tick = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send('x') }, 100)
  await within(closed(ws), 10_000, 'lifetime close')
  clearInterval(tick)
  t.ok(echoes > 0, `messages went through before the lifetime ended (${echoes})`)
})

t.test('routes without websocket keep stripping Upgrade while another route proxies it', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      routes: [
        { name: 'ws', match: { path: '/ws' }, upstream: up.url, websocket: true },
        { name: 'plain', match: { path: '/' }, upstream: up.url }
      ]
    }
  })
  const raw = await rawRequest(gw.port, 'GET /plain HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 200 /, 'a plain answer, no 101')
  t.match(raw, /\r\nconnection: close\r\n/i, 'then the connection closes')
  t.match(raw, /\r\n\r\nplain$/, 'the upstream\'s body')
  t.equal(up.upgrades.length, 0, 'no upgrade upstream')
  t.same(up.plain.map((p) => p.url), ['/plain'], 'one plain request: the bytes after the handshake were not a request')
  t.equal(up.plain[0]?.headers.upgrade, undefined, 'Upgrade stripped')
  t.equal(up.plain[0]?.headers['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==', 'end-to-end headers kept')
  // h2c on the websocket route itself: not a WebSocket handshake, so an ordinary request.
  const h2c = await rawRequest(gw.port, 'GET /ws/h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n')
  t.match(h2c, /^HTTP\/1\.1 200 /, 'h2c: a plain answer')
  t.equal(up.plain[1]?.headers['http2-settings'], undefined, 'HTTP2-Settings stripped')
  // A body on an upgrade request: the parser stopped at the head, so it cannot be framed.
  const withBody = await rawRequest(gw.port, 'POST /plain HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello')
  t.match(withBody, /^HTTP\/1\.1 400 /, 'an upgrade request with a body: 400')
  t.equal(up.plain.length, 2, 'not forwarded')
})

t.test('a tunnel survives a policy update; on shutdown it runs until the drain period ends', async (t) => {
  const up = await startWsUpstream(t)
  const routes = [{ name: 'ws', match: { path: '/' }, upstream: up.url, websocket: true }]
  const base = { listen: { host: '127.0.0.1', port: 0 }, workers: 1, limits: { drainTimeout: '1500ms' }, admin: { port: 0 } }
  const gw = await startGateway(t, { config: { ...base, routes } })
  const r = await open(wsUrl(gw.url, '/'))
  if (r.ws === undefined) throw new Error('no upgrade')
  const ws = r.ws
  const echo = async (text: string): Promise<string> => {
    ws.send(text)
    const [m] = await within(once(ws, 'message'), 10_000, 'echo ' + text) as [Buffer]
    return m.toString()
  }
  t.equal(await echo('one'), 'one')
  // A new generation that denies every new handshake (ip-filter deny all).
  const listening = gw.lines.find((l) => l.msg === 'listening') as { admin?: { port: number } }
  const adminPort = listening.admin?.port
  if (adminPort === undefined) throw new Error('no admin address in the listening line: ' + JSON.stringify(listening))
  const put = await fetch(`http://127.0.0.1:${adminPort}/config`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...base, routes: [{ ...routes[0], plugins: [{ name: 'ip-filter', config: { deny: ['0.0.0.0/0', '::/0'] } }] }] })
  })
  t.equal(put.status, 200, 'update applied: ' + await put.text())
  const refused = await open(wsUrl(gw.url, '/'))
  t.equal(refused.status, 403, 'a new handshake is refused by the new generation')
  t.equal(await echo('two'), 'two', 'the tunnel opened before the update still runs')

  const stopped = gw.stop('SIGTERM')
  const wsClosed = closed(ws)
  t.equal(await echo('three'), 'three', 'during the drain period the tunnel still runs')
  await within(wsClosed, 10_000, 'tunnel closed at the end of the drain period')
  const exit = await within(stopped, 15_000, 'gateway exit')
  t.equal(exit.code, 0, 'the gateway exits cleanly')
})

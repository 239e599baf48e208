// WebSocket proxying (issue 5, CHECKLIST A27): real WebSocket upstreams and clients (the `ws`
// package, a dev dependency) on 127.0.0.1, through the gateway's own process and threads.
// Handshakes: what runs before the upgrade, what the upstream sees, refusals.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import t from 'tap'
import { rawRequest, startGateway } from './helpers/gateway.js'
import { closed, digest, KEY, open, startWsUpstream, within, wsUrl } from './helpers/websocket.js'

t.test('echo through the gateway; the upstream gets the handshake with hop-by-hop handled; invalid handshakes are 400', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      routes: [
        { name: 'ws', match: { path: '/ws' }, upstream: up.url + '/base', stripPrefix: true, websocket: true },
        { name: 'plain', match: { path: '/' }, upstream: up.url }
      ]
    }
  })
  // (The ws client writes its own Connection header, so nominated headers are checked raw, below.)
  const r = await open(wsUrl(gw.url, '/ws/chat?room=1'), { 'Proxy-Connection': 'x', 'Keep-Alive': '5' })
  if (r.ws === undefined) throw new Error(`no upgrade: ${r.status}`)
  const ws = r.ws
  t.equal(r.headers.upgrade, 'websocket', '101 says Upgrade: websocket')
  t.match(r.headers.connection, /upgrade/i)
  t.ok(typeof r.headers['sec-websocket-accept'] === 'string', 'the upstream\'s Sec-WebSocket-Accept is relayed (ws checked it)')
  ws.send('hello')
  const [m] = await within(once(ws, 'message'), 10_000, 'echo') as [Buffer]
  t.equal(m.toString(), 'hello', 'text message echoed')
  // A message much larger than the socket buffers: pipe() holds back-pressure both ways.
  const big = Buffer.alloc(4 * 1024 * 1024, 7)
  big.write('start')
  ws.send(big)
  const [b] = await within(once(ws, 'message'), 20_000, 'big echo') as [Buffer]
  t.equal(b.length, big.length, '4 MiB binary message round-trips')
  t.ok(b.equals(big), 'byte-exact')

  t.equal(up.upgrades.length, 1, 'one handshake upstream')
  const h = up.upgrades[0]
  t.equal(h?.url, '/base/chat?room=1', 'path rewritten as for any request (base path, stripped prefix)')
  t.equal(h?.headers.upgrade, 'websocket')
  t.equal(h?.headers.connection, 'Upgrade', 'Connection is the gateway\'s own: the client\'s nominations are gone')
  t.equal(h?.headers['proxy-connection'], undefined, 'Proxy-Connection is not passed on')
  t.equal(h?.headers['keep-alive'], undefined, 'Keep-Alive is not passed on')
  t.equal(h?.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For added')
  t.equal(h?.headers['sec-websocket-version'], '13')
  ws.close()
  await within(closed(ws), 10_000, 'close handshake')

  // Raw: the client's Connection nominates X-Foo; the upstream gets the gateway's Connection only.
  const raw = await rawRequest(gw.port, 'GET /ws/raw HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Foo\r\nX-Foo: drop-me\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', 2000)
  t.match(raw, /^HTTP\/1\.1 101 /, 'raw handshake: 101')
  t.match(raw, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i, 'the accept value of RFC 6455\'s example key')
  t.equal(up.upgrades[1]?.headers['x-foo'], undefined, 'a Connection-nominated header is not passed on')

  // Invalid handshakes on a websocket route: 400, and the upstream never sees them.
  const before = up.upgrades.length + up.plain.length
  const head = (lines: string[]): string => ['Host: a', ...lines, '', ''].join('\r\n')
  const cases: Array<[string, string, RegExp]> = [
    ['no key', 'GET /ws/bad HTTP/1.1\r\n' + head(['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13']), /Sec-WebSocket-Key/],
    ['short key', 'GET /ws/bad HTTP/1.1\r\n' + head(['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: abc', 'Sec-WebSocket-Version: 13']), /Sec-WebSocket-Key/],
    ['two keys', 'GET /ws/bad HTTP/1.1\r\n' + head(['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13']), /Sec-WebSocket-Key/],
    ['version 8', 'GET /ws/bad HTTP/1.1\r\n' + head(['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 8']), /version must be 13/],
    ['POST', 'POST /ws/bad HTTP/1.1\r\n' + head(['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Content-Length: 0']), /must be a GET/]
  ]
  for (const [name, bytes, detail] of cases) {
    const raw = await rawRequest(gw.port, bytes)
    t.match(raw, /^HTTP\/1\.1 400 /, `${name}: 400`)
    t.match(raw, /"code":"GW_WEBSOCKET_HANDSHAKE"/, `${name}: code`)
    t.match(raw, detail, `${name}: detail`)
    t.match(raw, /\r\nconnection: close\r\n/i, `${name}: closed`)
    if (name === 'version 8') t.match(raw, /\r\nsec-websocket-version: 13\r\n/i, 'version 8: the version the gateway speaks is named (RFC 6455 §4.4)')
  }
  t.equal(up.upgrades.length + up.plain.length, before, 'the upstream saw none of them')
})

t.test('policies run before the upgrade: authn denial, rate limit; the upstream never sees a denied one', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 2,
      consumers: [{ id: 'alice', credentials: { keys: [{ digest: digest(KEY) }] } }],
      routes: [
        { name: 'auth', match: { path: '/auth' }, upstream: up.url, websocket: true, plugins: [{ name: 'key-auth' }] },
        { name: 'limited', match: { path: '/limited' }, upstream: up.url, websocket: true, plugins: [{ name: 'rate-limit', config: { limits: [{ limit: 2, window: '1h' }] } }] }
      ]
    }
  })
  const denied = await open(wsUrl(gw.url, '/auth'))
  t.equal(denied.status, 401, 'no key: 401')
  t.match(denied.headers['content-type'], /application\/problem\+json/)
  t.equal(up.upgrades.length, 0, 'the upstream never saw the denied handshake')
  const wrong = await open(wsUrl(gw.url, '/auth'), { 'x-api-key': 'not-the-key-0123456789' })
  t.equal(wrong.status, 401, 'wrong key: 401')
  t.equal(up.upgrades.length, 0)
  const ok = await open(wsUrl(gw.url, '/auth'), { 'x-api-key': KEY })
  t.equal(ok.status, 101, 'with the key: upgraded')
  t.equal(up.upgrades[0]?.headers['x-api-key'], undefined, 'the key is hidden from the upstream, as for any request')
  t.equal(up.upgrades[0]?.headers['x-consumer-id'], 'alice', 'the identity header reaches the upstream')
  ok.ws?.close()

  const statuses: number[] = []
  for (let i = 0; i < 4; i++) {
    const r = await open(wsUrl(gw.url, '/limited'))
    statuses.push(r.status)
    r.ws?.terminate()
  }
  t.same(statuses, [101, 101, 429, 429], 'limit 2: two upgrades, then 429 (across both workers)')
  t.equal(up.upgrades.filter((u) => u.url === '/limited').length, 2, 'the upstream saw exactly the two admitted')
})

t.test('the upstream refusing the upgrade: its answer is relayed, then the connection closes', async (t) => {
  // A plain HTTP server: it answers the handshake as an ordinary request.
  const seen: string[] = []
  const server = createServer((req, res) => {
    seen.push(req.headers.upgrade ?? '')
    res.writeHead(403, { 'content-type': 'text/plain', 'x-why': 'no-ws-here' })
    res.end('nope')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      routes: [
        { name: 'down', match: { path: '/down' }, upstream: 'http://127.0.0.1:1', websocket: true },
        { name: 'ws', match: { path: '/' }, upstream: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, websocket: true }
      ]
    }
  })
  const r = await open(wsUrl(gw.url, '/x'))
  t.equal(r.status, 403, 'the upstream\'s status')
  t.equal(r.headers['x-why'], 'no-ws-here', 'its end-to-end headers')
  t.equal((r as { body: string }).body, 'nope', 'its body')
  t.same(seen, ['websocket'], 'the upstream was asked to upgrade once')
  // Raw: the answer closes the connection (nothing after a handshake is a request).
  const raw = await rawRequest(gw.port, 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 403 /)
  t.match(raw, /\r\nconnection: close\r\n/i)
  t.equal(raw.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer: the bytes after the handshake were not served')

  // An upstream that cannot be reached: 502.
  const r2 = await open(wsUrl(gw.url, '/down'))
  t.equal(r2.status, 502, 'upstream down: 502')
})

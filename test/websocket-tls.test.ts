// wss:// upstreams: the WebSocket handshake uses the route's upstream TLS settings (CA,
// servername, insecureSkipVerify), the same as proxied HTTP. A real `ws` server over TLS on
// 127.0.0.1 with a certificate from a test CA made by openssl at test time.
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { join } from 'node:path'
import t from 'tap'
import type WebSocket from 'ws'
import { issue, makeCa } from './helpers/certs.js'
import { startGateway } from './helpers/gateway.js'
import { open, serveEcho, within, wsUrl } from './helpers/websocket.js'

t.test('wss:// upstream: the right CA connects, a wrong CA or name is 502 GW_UPSTREAM_TLS', async (t) => {
  const ca = makeCa('WS Upstream CA', (fn) => t.teardown(fn))
  const other = makeCa('WS Other CA', (fn) => t.teardown(fn))
  const leaf = issue(ca, 'ws.test', ['DNS:ws.test'])
  const caFile = join(ca.dir, 'bundle.pem')
  const otherFile = join(other.dir, 'bundle.pem')
  writeFileSync(caFile, ca.cert)
  writeFileSync(otherFile, other.cert)

  // An echo WebSocket server over TLS that records the SNI name of each handshake.
  const names: Array<string | false> = []
  const server = createServer({ cert: leaf.cert, key: leaf.key })
  server.on('upgrade', (req) => { names.push((req.socket as TLSSocket & { servername?: string | false }).servername ?? false) })
  const sockets: WebSocket[] = []
  const origin = `https://127.0.0.1:${await serveEcho(t, server, sockets)}`

  const gw = await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'warn',
      routes: [
        { name: 'good', match: { path: '/good' }, upstream: { targets: [origin], tls: { ca: caFile, servername: 'ws.test' } }, websocket: true },
        { name: 'wrong-ca', match: { path: '/wrong-ca' }, upstream: { targets: [origin], tls: { ca: otherFile, servername: 'ws.test' } }, websocket: true },
        { name: 'wrong-name', match: { path: '/wrong-name' }, upstream: { targets: [origin], tls: { ca: caFile, servername: 'elsewhere.test' } }, websocket: true },
        { name: 'system', match: { path: '/system' }, upstream: origin, websocket: true },
        { name: 'insecure', match: { path: '/insecure' }, upstream: { targets: [origin], tls: { insecureSkipVerify: true } }, websocket: true }
      ]
    }
  })

  const good = await open(wsUrl(gw.url, '/good'))
  t.equal(good.status, 101, 'the route CA verifies the upstream: upgraded')
  if (good.ws !== undefined) {
    const ws = good.ws
    ws.send('over tls')
    const [data] = await within(once(ws, 'message'), 10_000, 'echo') as [Buffer]
    t.equal(data.toString(), 'over tls', 'and the tunnel carries messages')
    ws.close()
  }
  t.same(names, ['ws.test'], 'the route servername was sent as SNI')

  for (const path of ['/wrong-ca', '/wrong-name', '/system']) {
    const r = await open(wsUrl(gw.url, path))
    t.equal(r.status, 502, `${path}: 502`)
    t.equal(r.ws === undefined ? (JSON.parse(r.body) as { code: string }).code : 'upgraded', 'GW_UPSTREAM_TLS', `${path}: GW_UPSTREAM_TLS`)
  }
  t.equal(names.length, 1, 'no refused handshake reached the upstream server')

  const insecure = await open(wsUrl(gw.url, '/insecure'))
  t.equal(insecure.status, 101, 'insecureSkipVerify: upgraded without verification')
  insecure.ws?.close()
})

// CHECKLIST A20-A29: Host, duplicate and hop-by-hop headers, upgrades, underscores, identity
// headers. Raw bytes in; what the client gets and the exact bytes a raw upstream receives.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { FIXTURES, runCli } from '../helpers/gateway.js'
import { exchange, forwarded, gatewayFor, startRawUpstream } from './helpers.js'
import type { Exchange, RawUpstream } from './helpers.js'

const KEY = 'alice-key-0123456789abcdef'
const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64')

const up = await startRawUpstream(t)
const headerAuth = { name: 'header-auth', module: FIXTURES + 'plugins/header-auth.mjs' }
const gw = await gatewayFor(t, up, {
  consumers: [{ id: 'alice', credentials: { keys: [{ key: KEY }] } }],
  routes: [
    { name: 'hosted', match: { path: '/', host: 'b.example' }, upstream: `${up.url}/hosted` },
    { name: 'auth', match: { path: '/auth' }, upstream: up.url, plugins: [headerAuth] },
    { name: 'key', match: { path: '/key' }, upstream: up.url, plugins: [{ name: 'key-auth' }] },
    { name: 'all', match: { path: '/' }, upstream: up.url }
  ]
})

/**
 * A refused request: `status`, nothing upstream. A malformed request also closes its
 * connection; a policy's refusal (401, key-auth's 400) does not (`closes: false`).
 */
async function refused (tt: Test, label: string, bytes: string | Buffer, status = 400, target: RawUpstream = up, port = gw.port, closes = status !== 401): Promise<Exchange> {
  const mark = target.mark()
  const ex = await exchange(port, bytes, closes ? { ms: 4000 } : { ms: 4000, finals: 1 })
  tt.equal(ex.finals[0]?.status, status, `${label}: ${status}`)
  tt.equal(ex.finals.length, 1, `${label}: one answer`)
  if (closes) tt.ok(ex.closed, `${label}: connection closed`)
  const seen = target.since(mark)
  tt.equal(seen.requests.length, 0, `${label}: the upstream received no request`)
  tt.equal(seen.bytes, 0, `${label}: the upstream received no bytes`)
  return ex
}

/** An accepted request: 200, and the upstream received exactly `expected`. */
async function accepted (tt: Test, label: string, bytes: string, expected: string, target: RawUpstream = up, port = gw.port): Promise<Exchange> {
  const mark = target.mark()
  const ex = await exchange(port, bytes, { finals: 1, ms: 4000 })
  tt.equal(ex.finals[0]?.status, 200, `${label}: 200`)
  await target.waitFor(mark.requests + 1)
  const seen = target.since(mark)
  tt.equal(seen.requests.length, 1, `${label}: one request upstream`)
  tt.equal(seen.requests[0]?.bytes.toString('latin1'), expected, `${label}: exact bytes upstream`)
  tt.equal(seen.bytes, seen.requests[0]?.bytes.length, `${label}: nothing else`)
  return ex
}

const fwd = (o: Omit<Parameters<typeof forwarded>[0], 'upstreamPort' | 'gatewayPort'>, u: RawUpstream = up, port = gw.port): string =>
  forwarded({ upstreamPort: u.port, gatewayPort: port, ...o })

t.test('A20-A21: Host missing or repeated', async (t) => {
  await refused(t, 'A20 HTTP/1.1 without Host', 'GET / HTTP/1.1\r\n\r\n')
  await refused(t, 'A21 two different Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b.example\r\n\r\n')
  await refused(t, 'A21 the same Host twice', 'GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n')
  await refused(t, 'A21 Host twice, other case', 'GET / HTTP/1.1\r\nHost: a\r\nhOST: b.example\r\n\r\n')
  // HTTP/1.0 may omit Host: served by the routes that name no host; the connection closes.
  const mark = up.mark()
  const ex = await exchange(gw.port, 'GET /h10 HTTP/1.0\r\n\r\n')
  t.equal(ex.finals[0]?.status, 200, 'HTTP/1.0 without Host is served')
  t.ok(ex.closed)
  t.equal(up.since(mark).requests[0]?.bytes.toString('latin1'), fwd({ method: 'GET', target: '/h10', host: undefined }).replace('x-forwarded-host: a\r\n', ''))
})

t.test('A22: an absolute-form target must name the Host it is sent with', async (t) => {
  await accepted(t, 'same authority', 'GET http://a/x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n', fwd({ method: 'GET', target: '/x?q=1' }))
  await accepted(t, 'scheme and host in any case', 'GET HTTP://A/y HTTP/1.1\r\nHost: a\r\n\r\n', fwd({ method: 'GET', target: '/y' }))
  await accepted(t, 'no path', 'GET http://a HTTP/1.1\r\nHost: a\r\n\r\n', fwd({ method: 'GET', target: '/' }))
  await accepted(t, 'routed on that host', 'GET http://b.example/z HTTP/1.1\r\nHost: b.example\r\n\r\n', fwd({ method: 'GET', target: '/hosted/z', host: 'b.example' }))
  await accepted(t, 'normalized like any path', 'GET http://a/p/../%61dmin HTTP/1.1\r\nHost: a\r\n\r\n', fwd({ method: 'GET', target: '/admin' }))
  for (const [label, line, host] of [
    ['another host', 'GET http://a.example/ HTTP/1.1', 'b.example'],
    ['the routed host in the target only', 'GET http://b.example/z HTTP/1.1', 'a'],
    ['another port', 'GET http://a:8080/ HTTP/1.1', 'a'],
    ['default port spelled out', 'GET http://a:80/ HTTP/1.1', 'a'],
    ['userinfo', 'GET http://u:p@a/ HTTP/1.1', 'a'],
    ['another scheme', 'GET ftp://a/ HTTP/1.1', 'a'],
    ['empty authority', 'GET http:///x HTTP/1.1', 'a'],
    ['HTTP/1.0 without Host', 'GET http://a/ HTTP/1.0', undefined]
  ] as Array<[string, string, string | undefined]>) {
    await refused(t, `A22 ${label}`, `${line}\r\n${host === undefined ? '' : `Host: ${host}\r\n`}\r\n`)
  }
})

t.test('A23: Host is one host with an optional port', async (t) => {
  await refused(t, 'NUL in Host', Buffer.from('GET / HTTP/1.1\r\nHost: google.com\x00.evil\r\n\r\n', 'latin1'))
  for (const host of ['u@a', 'user:pass@a', 'a b', 'a,b', '', 'a:99999999', 'a/b', 'a\\b', 'a%2fb', 'a?b', 'a#b', '[::1', 'a:']) {
    await refused(t, `Host ${JSON.stringify(host)}`, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
  }
  await accepted(t, 'Host with port', 'GET /p HTTP/1.1\r\nHost: a:8443\r\n\r\n', fwd({ method: 'GET', target: '/p', host: 'a:8443' }))
  await accepted(t, 'IPv6 literal Host', 'GET /p HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n', fwd({ method: 'GET', target: '/p', host: '[::1]:8443' }))
})

t.test('A24: duplicate Authorization, Content-Type, API key', async (t) => {
  await refused(t, 'two Authorization', 'GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n')
  await refused(t, 'Authorization twice, same value', 'GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a\r\nauthorization: Bearer a\r\n\r\n')
  // Checked when proxying, so an authn plugin answers first (jwt-auth and oauth2-introspection
  // say AMBIGUOUS_CREDENTIALS); behind a plugin that does not read Authorization, the gateway.
  let ex = await refused(t, 'two Authorization behind another authn plugin', `GET /auth HTTP/1.1\r\nHost: a\r\nx-test-user: ${b64('bob')}\r\nAuthorization: a\r\nAuthorization: b\r\n\r\nGET /auth/next HTTP/1.1\r\nHost: a\r\nx-test-user: ${b64('bob')}\r\n\r\n`)
  t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_BAD_REQUEST', detail: 'more than one Authorization header' })
  await refused(t, 'two Content-Type', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')
  await refused(t, 'two Proxy-Authorization', 'GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic a\r\nProxy-Authorization: Basic b\r\n\r\n')
  // API keys: key-auth refuses two different keys (AMBIGUOUS_CREDENTIALS); the same key twice
  // is one key, and neither line goes upstream (hideCredentials).
  ex = await refused(t, 'two different API keys', `GET /key HTTP/1.1\r\nHost: a\r\napikey: ${KEY}\r\napikey: other-key-0123456789abcdef\r\n\r\n`, 400, up, gw.port, false)
  t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'AMBIGUOUS_CREDENTIALS' })
  await refused(t, 'API key in two headers', `GET /key HTTP/1.1\r\nHost: a\r\napikey: ${KEY}\r\nx-api-key: other-key-0123456789abcdef\r\n\r\n`, 400, up, gw.port, false)
  await accepted(t, 'the same API key twice', `GET /key HTTP/1.1\r\nHost: a\r\napikey: ${KEY}\r\nApikey: ${KEY}\r\n\r\n`,
    fwd({ method: 'GET', target: '/key' }).replace('\r\n\r\n', '\r\nx-consumer-id: alice\r\n\r\n'))
  // Repeatable headers stay repeatable, in order.
  await accepted(t, 'two Accept lines', 'GET /acc HTTP/1.1\r\nHost: a\r\nAccept: text/html\r\nAccept: application/json\r\n\r\n',
    fwd({ method: 'GET', target: '/acc', headers: [['Accept', 'text/html'], ['Accept', 'application/json']] }))
})

t.test('A25-A26: hop-by-hop and nominated headers go; the gateway\'s own stay', async (t) => {
  const ex = await accepted(t, 'A25', [
    'GET /a25 HTTP/1.1', 'Host: a', 'Connection: X-Foo, X-Bar', 'X-Foo: 1', 'X-Bar: 2', 'Keep-Alive: timeout=100',
    'Proxy: http://evil.example', 'Proxy-Connection: keep-alive', 'TE: trailers, deflate', 'Upgrade: foo/2',
    'X-Foo-Bar: k', 'Close: k', 'Trailer: X-T', 'Expect: 100-continue', '', ''
  ].join('\r\n'), fwd({ method: 'GET', target: '/a25', headers: [['X-Foo-Bar', 'k'], ['Close', 'k'], ['te', 'trailers']] }))
  t.equal(ex.finals[0]?.headers.connection, 'close', 'A25: an Upgrade request ends its connection')
  // TE becomes `trailers` (the only coding of the client's passed on), and only when asked.
  await accepted(t, 'A25 TE: deflate', 'GET /te HTTP/1.1\r\nHost: a\r\nTE: deflate\r\nConnection: TE\r\n\r\n', fwd({ method: 'GET', target: '/te' }))
  await accepted(t, 'A25 HTTP/1.0 TE: trailers', 'GET /te HTTP/1.0\r\nHost: a\r\nTE: trailers\r\n\r\n', fwd({ method: 'GET', target: '/te' }))
  // A26: nominating the gateway's own headers does not remove them.
  await accepted(t, 'A26 Connection: close, X-Forwarded-For', 'GET /a26 HTTP/1.1\r\nHost: a\r\nConnection: close, X-Forwarded-For, X-Real-IP, X-Forwarded-Host, Host\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n',
    fwd({ method: 'GET', target: '/a26' }))
  const id = fwd({ method: 'GET', target: '/auth' }).replace('\r\n\r\n', '\r\nx-consumer-id: bob\r\nx-consumer-groups: testers\r\nx-authenticated-scope: t:read\r\n\r\n')
  await accepted(t, 'A26 Connection: X-Consumer-Id', `GET /auth HTTP/1.1\r\nHost: a\r\nConnection: X-Consumer-Id, X-Consumer-Groups, X-Authenticated-Scope\r\nX-Consumer-Id: admin\r\nx-test-user: ${b64('bob')}\r\n\r\n`,
    id.replace('x-forwarded-for', `x-test-user: ${b64('bob')}\r\nx-forwarded-for`))
  // Authorization nominated by the client: read by the policies, not passed on (it is
  // hop-by-hop by the client's own word), and the identity the gateway adds still is.
  await accepted(t, 'A26 Connection: Authorization', `GET /auth HTTP/1.1\r\nHost: a\r\nConnection: Authorization\r\nAuthorization: Basic eA==\r\nx-test-user: ${b64('bob')}\r\n\r\n`,
    id.replace('x-forwarded-for', `x-test-user: ${b64('bob')}\r\nx-forwarded-for`))
})

t.test('A27: Upgrade and h2c are never forwarded', async (t) => {
  let ex = await accepted(t, 'h2c', 'GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    fwd({ method: 'GET', target: '/h2c' }))
  t.equal(ex.finals[0]?.headers.connection, 'close', 'h2c: answered over HTTP/1.1, then closed')
  // A websocket handshake on an ordinary route: a plain GET upstream, no 101, and nothing
  // after it on the connection is taken as a request.
  const mark = up.mark()
  ex = await exchange(gw.port, 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nGET /after-upgrade HTTP/1.1\r\nHost: a\r\n\r\n', { ms: 3000 })
  t.same(ex.responses.map((r) => r.status), [200], 'websocket: one plain answer, no 101')
  t.ok(ex.closed, 'websocket: the connection closes')
  const seen = up.since(mark)
  t.same(seen.requests.map((r) => r.target), ['/ws'], 'websocket: the bytes after the handshake were not a request')
  t.equal(seen.requests[0]?.bytes.toString('latin1'), fwd({ method: 'GET', target: '/ws', headers: [['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['Sec-WebSocket-Version', '13']] }))
  // A route may proxy WebSocket (test/websocket.test.ts); the config says so explicitly.
  const dir = t.testdir({})
  const file = join(dir, 'ws.json')
  writeFileSync(file, JSON.stringify({ routes: [{ name: 'ws', match: { path: '/ws' }, upstream: up.url, websocket: { idleTimeout: '30s', maxLifetime: '1h' } }] }))
  const v = await runCli(['validate', file])
  t.equal(v.code, 0, 'websocket: a block of limits is accepted (bad ones: test/config.test.ts)')
})

t.test('A28: header names with an underscore', async (t) => {
  await refused(t, 'X_User (reject, the default)', 'GET / HTTP/1.1\r\nHost: a\r\nX_User: admin\r\n\r\n')
  await refused(t, 'X_Consumer_Id next to the identity header', `GET /auth HTTP/1.1\r\nHost: a\r\nX_Consumer_Id: admin\r\nx-test-user: ${b64('bob')}\r\n\r\n`)
  const upDrop = await startRawUpstream(t)
  const gwDrop = await gatewayFor(t, upDrop, { limits: { headersWithUnderscores: 'drop' } })
  await accepted(t, 'drop', 'GET /d HTTP/1.1\r\nHost: a\r\nX_User: admin\r\nX-Kept: 1\r\nx_a_b: c\r\n\r\n',
    fwd({ method: 'GET', target: '/d', headers: [['X-Kept', '1']] }, upDrop, gwDrop.port), upDrop, gwDrop.port)
  const upAllow = await startRawUpstream(t)
  const gwAllow = await gatewayFor(t, upAllow, { limits: { headersWithUnderscores: 'allow' } })
  await accepted(t, 'allow', 'GET /d HTTP/1.1\r\nHost: a\r\nX_User: admin\r\n\r\n',
    fwd({ method: 'GET', target: '/d', headers: [['X_User', 'admin']] }, upAllow, gwAllow.port), upAllow, gwAllow.port)
})

t.test('A29: an identity with CR/LF never becomes a header', async (t) => {
  for (const id of ['bob\r\nX-Admin: 1', 'bob\nX-Admin: 1', 'bob\x00', 'bob\rX']) {
    const ex = await refused(t, JSON.stringify(id), `GET /auth HTTP/1.1\r\nHost: a\r\nx-test-user: ${b64(id)}\r\n\r\n`, 401)
    t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_UNAUTHENTICATED' })
    t.notMatch(ex.raw, /X-Admin/i, 'no extra header in the answer either')
  }
})

import { randomBytes, createHash } from 'node:crypto'
import t from 'tap'
import { request } from 'undici'
import { deadPort, rawRequest, startGateway, startUpstream } from './helpers/gateway.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test('bodies are proxied byte-exact both ways, streamed', async (t) => {
  const up = await startUpstream(t, (req, res, body) => {
    // Echo the body back, chunked (no content-length), to exercise streaming responses.
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-len': String(body.length) })
    for (let i = 0; i < body.length; i += 65536) res.write(body.subarray(i, i + 65536))
    res.end()
  })
  const gw = await startGateway(t, { args: ['--upstream', up.url, '--port', '0', '--workers', '1', '--log-level', 'warn'] })
  for (const method of ['POST', 'PUT'] as const) {
    const body = randomBytes(5 * 1024 * 1024 + 17)
    const res = await request(`${gw.url}/upload`, { method, body })
    const got = Buffer.from(await res.body.arrayBuffer())
    t.equal(res.statusCode, 200, `${method} status`)
    t.equal(got.length, body.length, `${method} response length`)
    t.equal(sha(got), sha(body), `${method} body round-trips byte-exact`)
    const seen = up.seen.at(-1)
    t.equal(seen?.method, method)
    t.equal(seen?.headers['content-length'], String(body.length), 'content-length is passed on')
    t.equal(sha(seen?.body ?? Buffer.alloc(0)), sha(body), 'upstream got the exact bytes')
  }

  // A chunked request body (no content-length) from a raw client.
  const chunks = ['hello ', 'chunked ', 'world']
  const raw = 'POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
    chunks.map((c) => `${c.length.toString(16)}\r\n${c}\r\n`).join('') + '0\r\n\r\n'
  const answer = await rawRequest(gw.port, raw)
  t.match(answer, /^HTTP\/1\.1 200 /, 'chunked request is accepted')
  const last = up.seen.at(-1)
  t.equal(last?.body.toString(), chunks.join(''), 'chunked body arrives whole')
  // Re-framed by undici: chunked, or a Content-Length when the whole body had already
  // arrived. Never both (CHECKLIST A1).
  const te = last?.headers['transfer-encoding']
  const cl = last?.headers['content-length']
  t.ok((te === 'chunked') !== (cl === String(chunks.join('').length)), `exactly one framing upstream (te=${String(te)}, cl=${String(cl)})`)

  // GET with a large response.
  const big = randomBytes(3 * 1024 * 1024)
  const up2 = await startUpstream(t, (_req, res) => { res.end(big) })
  const gw2 = await startGateway(t, { args: ['--upstream', up2.url, '--port', '0', '--workers', '1', '--log-level', 'warn'] })
  const r2 = await request(`${gw2.url}/big`)
  t.equal(sha(Buffer.from(await r2.body.arrayBuffer())), sha(big), 'large GET response is byte-exact')
})

t.test('hop-by-hop headers are removed, forwarded headers set', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { connection: 'x-secret-hop', 'x-secret-hop': '1', 'keep-alive': 'timeout=99', 'x-kept': 'yes', 'content-length': '2' })
    res.end('ok')
  })
  const gw = await startGateway(t, { args: ['--upstream', up.url, '--port', '0', '--workers', '1', '--log-level', 'warn'] })
  // Raw bytes: an HTTP client library would refuse to send most of these.
  const answer = await rawRequest(gw.port, [
    'GET /h?q=1 HTTP/1.1',
    'Host: public.example:8443',
    'Connection: keep-alive, x-foo, x-bar',
    'X-Foo: dropped',
    'X-Bar: dropped',
    'Keep-Alive: timeout=100',
    'Proxy-Connection: keep-alive',
    'Proxy-Authorization: Basic abc',
    'Upgrade: foo/2',
    'TE: trailers',
    'X-Foo-Bar: kept',
    'Close: kept',
    'X-Forwarded-For: 203.0.113.9',
    'X-Forwarded-Proto: https',
    'X-Forwarded-Host: evil.example',
    'X-Forwarded-Port: 1',
    '', ''
  ].join('\r\n'), 1500)
  const [head] = answer.split('\r\n\r\n')
  const resHeaders = new Map((head ?? '').split('\r\n').slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
  t.match(answer, /^HTTP\/1\.1 200 /)
  const h = up.seen.at(-1)?.headers ?? {}
  for (const name of ['x-foo', 'x-bar', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'upgrade']) {
    t.equal(h[name], undefined, `${name} does not reach the upstream`)
  }
  t.equal(h.te, 'trailers', 'TE: trailers is passed on (the client accepts trailers, so the gateway does)')
  t.equal(h['x-foo-bar'], 'kept', 'a header merely named like a nominated one is kept')
  t.equal(h.close, 'kept', 'a header called Close is kept')
  t.equal(h['x-forwarded-for'], '127.0.0.1', "an untrusted peer's X-Forwarded-For is replaced by the peer (CHECKLIST E7)")
  t.equal(h['x-real-ip'], '127.0.0.1', 'X-Real-IP is the resolved client')
  t.equal(h['x-forwarded-proto'], 'http', "the client's X-Forwarded-Proto is replaced")
  t.equal(h['x-forwarded-host'], 'public.example:8443', 'X-Forwarded-Host is the Host the client sent')
  t.equal(h['x-forwarded-port'], String(gw.port), "X-Forwarded-Port is the gateway's port, not the client's claim (E10)")
  t.equal(h.host, `127.0.0.1:${up.port}`, "Host is the upstream's by default")
  t.equal(up.seen.at(-1)?.url, '/h?q=1', 'path and query arrive')
  t.equal(resHeaders.get('x-secret-hop'), undefined, 'a response header the upstream nominated in Connection is removed')
  t.notMatch(resHeaders.get('keep-alive') ?? '', /99/, "the upstream's Keep-Alive is not passed on")
  t.equal(resHeaders.get('x-kept'), 'yes')

  // A client cannot make the gateway drop its own headers by nominating them (CHECKLIST A26).
  await rawRequest(gw.port, 'GET /h HTTP/1.1\r\nHost: a\r\nConnection: close, x-forwarded-for\r\n\r\n')
  t.equal(up.seen.at(-1)?.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For survives Connection: x-forwarded-for')
})

t.test('trailers: response trailers reach a client that sent TE: trailers; request trailers are dropped', async (t) => {
  const seenTrailers: string[][] = []
  const up = await startUpstream(t, (req, res) => {
    seenTrailers.push(req.rawTrailers)
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'X-Checksum, Content-Type, Set-Cookie, Server-Timing' })
    res.write('hello')
    // (A Content-Length trailer never gets this far: undici's parser refuses the response.)
    res.addTrailers([['X-Checksum', 'abc'], ['Content-Type', 'text/evil'], ['Set-Cookie', 'sid=stolen'], ['Location', '/evil'], ['Authorization', 'Bearer x'], ['Server-Timing', 'db;dur=5']])
    res.end()
  })
  const gw = await startGateway(t, { args: ['--upstream', up.url, '--port', '0', '--workers', '1', '--log-level', 'warn'] })

  const withTe = await rawRequest(gw.port, 'GET /t HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: TE, close\r\n\r\n')
  const [head, body] = withTe.split('\r\n\r\n', 2) as [string, string]
  t.match(head, /\r\ntransfer-encoding: chunked(\r\n|$)/i, 'chunked to the client')
  t.match(head, /\r\ntrailer: x-checksum, server-timing(\r\n|$)/i, 'Trailer announces the fields that will come, less the forbidden ones')
  t.equal(withTe.slice(head.length + 4), '5\r\nhello\r\n0\r\nx-checksum: abc\r\nserver-timing: db;dur=5\r\n\r\n',
    'the last chunk carries the allowed trailers; Content-Type, Set-Cookie, Location and Authorization are stripped (RFC 9110 §6.5.1)')
  t.ok(body.length > 0)

  const without = await rawRequest(gw.port, 'GET /t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
  const [head2] = without.split('\r\n\r\n', 1) as [string]
  t.notMatch(head2, /\r\ntrailer:/i, 'no TE: trailers: no Trailer header')
  t.equal(without.slice(head2.length + 4), '5\r\nhello\r\n0\r\n\r\n', 'no TE: trailers: trailers dropped')

  const http10 = await rawRequest(gw.port, 'GET /t HTTP/1.0\r\nHost: a\r\nTE: trailers\r\n\r\n')
  t.notMatch(http10, /x-checksum/i, 'HTTP/1.0 (no chunked): trailers dropped')
  t.match(http10, /\r\n\r\nhello$/, 'HTTP/1.0: the body, read to the close')

  // Request trailers: undici cannot send them, so the upstream gets the body and no trailer.
  seenTrailers.length = 0
  const post = await rawRequest(gw.port, 'POST /r HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sig\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Sig: s1\r\nAuthorization: Bearer smuggled\r\n\r\n')
  t.match(post, /^HTTP\/1\.1 200 /, 'a chunked body with trailers is proxied')
  t.equal(up.seen.at(-1)?.body.toString(), 'abc', 'its body arrives whole')
  t.equal(up.seen.at(-1)?.headers['x-sig'], undefined, 'a trailer field does not become a header upstream')
  t.same(seenTrailers, [[]], 'request trailers are not passed on')
})

t.test('gateway errors are problem+json: 404, 405, 502, 504', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/slow/x') return setTimeout(() => { if (!res.destroyed) res.end('late') }, 3000)
    res.end('ok')
  })
  const dead = await deadPort()
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      timeouts: { headers: '500ms' },
      routes: [
        { name: 'orders', match: { path: '/orders', methods: ['GET'] }, upstream: up.url },
        { name: 'slow', match: { path: '/slow' }, upstream: up.url },
        { name: 'dead', match: { path: '/dead' }, upstream: `http://127.0.0.1:${dead}` }
      ]
    }
  })
  const cases: Array<[string, string, number, string]> = [
    ['GET', '/nowhere', 404, 'GW_NO_ROUTE'],
    ['DELETE', '/orders/1', 405, 'GW_METHOD_NOT_ALLOWED'],
    ['GET', '/dead', 502, 'GW_UPSTREAM_UNAVAILABLE'],
    ['GET', '/slow/x', 504, 'GW_UPSTREAM_TIMEOUT']
  ]
  for (const [method, path, status, code] of cases) {
    const res = await request(`${gw.url}${path}`, { method: method as 'GET' })
    const body = await res.body.json() as Record<string, unknown>
    t.equal(res.statusCode, status, `${method} ${path} -> ${status}`)
    t.equal(res.headers['content-type'], 'application/problem+json')
    t.equal(body.status, status, 'problem.status')
    t.equal(body.code, code, 'problem.code')
    t.type(body.title, 'string', 'problem.title')
    if (status === 405) t.equal(res.headers.allow, 'GET, HEAD', 'Allow lists the methods')
  }
  const ok = await request(`${gw.url}/orders/1`)
  t.equal(ok.statusCode, 200, 'a matching route still works')
  await ok.body.text()
})

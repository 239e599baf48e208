import { writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { issue, makeCa } from './helpers/certs.js'
import { startGateway } from './helpers/gateway.js'

// Upstream TLS (https:// targets) and redirectToHttps, through a plain-HTTP gateway.

function plainRequest (port: number, path: string, host: string, method = 'GET', body?: string): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers: { host }, agent: false, timeout: 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end(body)
  })
}

t.test('upstream TLS: verified by default, custom CA, SNI, insecure flag; 308 redirect', async (t) => {
  const ca = makeCa('Upstream CA', (fn) => t.teardown(fn))
  const other = makeCa('Some Other CA', (fn) => t.teardown(fn))
  const leaf = issue(ca, 'upstream.test', ['DNS:upstream.test'])
  const caFile = join(ca.dir, 'bundle.pem')
  const otherFile = join(other.dir, 'bundle.pem')
  writeFileSync(caFile, ca.cert)
  writeFileSync(otherFile, other.cert)

  // A real HTTPS upstream on 127.0.0.1 that reports the SNI name it was reached with.
  const seen: Array<{ servername: string | false, proto: string | undefined }> = []
  const server = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    const servername = (req.socket as import('node:tls').TLSSocket & { servername?: string | false }).servername ?? false
    seen.push({ servername, proto: req.headers['x-forwarded-proto'] as string | undefined })
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ ok: true, url: req.url }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`

  const gw = await startGateway(t, {
    config: {
      routes: [
        { name: 'good', match: { path: '/good' }, upstream: { targets: [origin], tls: { ca: caFile, servername: 'upstream.test' } } },
        { name: 'wrong-ca', match: { path: '/wrong-ca' }, upstream: { targets: [origin], tls: { ca: otherFile, servername: 'upstream.test' } } },
        { name: 'wrong-name', match: { path: '/wrong-name' }, upstream: { targets: [origin], tls: { ca: caFile, servername: 'elsewhere.test' } } },
        { name: 'system', match: { path: '/system' }, upstream: origin },
        { name: 'insecure', match: { path: '/insecure' }, upstream: { targets: [origin], tls: { insecureSkipVerify: true } } },
        { name: 'secure-only', match: { path: '/secure' }, upstream: origin, redirectToHttps: { port: 8443 } },
        { name: 'secure-default', match: { path: '/std' }, upstream: origin, redirectToHttps: true }
      ]
    }
  })

  await t.test('a custom CA verifies the upstream; the SNI name is sent', async (t) => {
    const r = await fetch(`${gw.url}/good/x`)
    t.equal(r.status, 200)
    t.same(await r.json(), { ok: true, url: '/good/x' })
    t.equal(seen.at(-1)?.servername, 'upstream.test')
    t.equal(seen.at(-1)?.proto, 'http', 'the client came over plain HTTP')
  })

  await t.test('a certificate from another CA, or for another name, is 502 GW_UPSTREAM_TLS', async (t) => {
    const before = seen.length
    for (const path of ['/wrong-ca', '/wrong-name', '/system']) {
      const r = await fetch(`${gw.url}${path}`)
      t.equal(r.status, 502, path)
      t.equal(((await r.json()) as { code: string }).code, 'GW_UPSTREAM_TLS', path)
    }
    t.equal(seen.length, before, 'no request reached the upstream')
  })

  await t.test('insecureSkipVerify works, and is warned about at start', async (t) => {
    const r = await fetch(`${gw.url}/insecure`)
    t.equal(r.status, 200)
    const warning = gw.lines.find((l) => l.level === 40 && l.route === 'insecure')
    t.ok(warning, 'a warning names the route')
    t.match(warning?.msg, /NOT verified/)
  })

  await t.test('redirectToHttps: plain HTTP gets a 308 to https://, keeping method, path and query', async (t) => {
    const before = seen.length
    // node:http, since fetch does not let a caller set Host.
    const r = await plainRequest(gw.port, '/secure/a%20b?x=1&y=2', 'api.example.com:8080', 'POST', 'hello')
    t.equal(r.status, 308)
    t.equal(r.headers.location, 'https://api.example.com:8443/secure/a%20b?x=1&y=2')
    t.equal((JSON.parse(r.body) as { code: string }).code, 'GW_HTTPS_REQUIRED')
    const d = await plainRequest(gw.port, '/std', 'api.example.com')
    t.equal(d.status, 308)
    t.equal(d.headers.location, 'https://api.example.com/std')
    t.equal(seen.length, before, 'nothing was proxied')
  })
})

t.test('a config whose TLS files are missing or wrong is refused whole, with the path', async (t) => {
  const ca = makeCa('Refusal CA', (fn) => t.teardown(fn))
  const a = issue(ca, 'a.test')
  const b = issue(ca, 'b.test')
  const dir = t.testdir({ 'a.pem': a.cert, 'b.key': b.key, 'garbage.pem': 'hello\n' })
  const { runCli } = await import('./helpers/gateway.js')
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ listen: { tls: { certificates: [{ cert: 'missing.pem', key: 'b.key' }] } } }, /\/listen\/tls\/certificates\/0\/cert: .*missing\.pem.*cannot read/],
    [{ listen: { tls: { certificates: [{ cert: 'a.pem', key: 'b.key' }] } } }, /\/listen\/tls\/certificates\/0\/key: .*does not belong to the certificate/],
    [{ listen: { tls: { certificates: [{ cert: 'garbage.pem', key: 'b.key' }] } } }, /\/listen\/tls\/certificates\/0\/cert: .*no PEM certificate/],
    [{ listen: { tls: { certificates: [{ cert: 'a.pem', key: 'b.key' }], minVersion: 'TLSv1.1' } } }, /\/listen\/tls\/minVersion/],
    [{ routes: [{ name: 'r', match: { path: '/' }, upstream: { targets: ['https://127.0.0.1:1'], tls: { ca: 'nope.pem' } } }] }, /\/routes\/0\/upstream\/tls\/ca: .*cannot read/],
    [{ routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1', plugins: [{ name: 'mtls-auth' }] }] }, /mtls-auth needs a TLS listener/],
    [{ consumers: [{ id: 'a', credentials: { certificates: [{ subject: 'x' }] } }, { id: 'b', credentials: { certificates: [{ subject: 'x' }] } }] }, /\/consumers\/1\/credentials\/certificates\/0: the same certificate match already names consumer 'a'/],
    [{ consumers: [{ id: 'a', credentials: { certificates: [{}] } }] }, /\/consumers\/0\/credentials\/certificates\/0/]
  ]
  for (const [cfg, want] of cases) {
    const file = join(dir, 'gw.json')
    writeFileSync(file, JSON.stringify({ routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1' }], ...cfg }))
    const r = await runCli(['validate', file])
    t.equal(r.code, 2, JSON.stringify(cfg))
    t.match(r.stderr, want)
  }
})

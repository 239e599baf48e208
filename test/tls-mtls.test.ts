import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { issue, makeCa } from './helpers/certs.js'
import { startGateway, startUpstream } from './helpers/gateway.js'
import { handshake, tlsRequest } from './helpers/tls-client.js'

// Client certificates (mTLS): `clientCertificates` on the listener, the mtls-auth plugin and
// consumers' credentials.certificates.

function setup (t: Tap) {
  const serverCa = makeCa('Server CA', (fn) => t.teardown(fn))
  const clientCa = makeCa('Client CA', (fn) => t.teardown(fn))
  const rogueCa = makeCa('Rogue CA', (fn) => t.teardown(fn))
  const server = issue(serverCa, 'gw.test')
  const files = { cert: join(serverCa.dir, 'gw.pem'), key: join(serverCa.dir, 'gw.key'), ca: join(clientCa.dir, 'clients.pem') }
  writeFileSync(files.cert, server.cert)
  writeFileSync(files.key, server.key)
  writeFileSync(files.ca, clientCa.cert)
  return {
    files,
    alice: issue(clientCa, 'alice', ['DNS:alice.clients.test']),
    bob: issue(clientCa, 'bob-service', ['URI:spiffe://test/bob']),
    stranger: issue(clientCa, 'stranger'),
    rogue: issue(rogueCa, 'alice')
  }
}
type Tap = Parameters<Parameters<typeof t.test>[1]>[0]

const consumers = [
  { id: 'alice', groups: ['staff'], credentials: { certificates: [{ subject: 'alice' }] } },
  { id: 'bob', credentials: { certificates: [{ san: 'URI:spiffe://test/bob' }] } }
]

t.test('clientCertificates: optional, with mtls-auth mapping subject and SAN to consumers', async (t) => {
  const c = setup(t)
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      listen: { host: '127.0.0.1', port: 0, tls: { certificates: [{ cert: c.files.cert, key: c.files.key }], clientCertificates: { mode: 'optional', ca: c.files.ca } } },
      consumers,
      routes: [
        { name: 'm', match: { path: '/m' }, upstream: up.url, plugins: [{ name: 'mtls-auth', config: { forwardSubject: 'X-Client-Subject' } }] },
        { name: 'open', match: { path: '/open' }, upstream: up.url }
      ]
    }
  })

  await t.test('no certificate: the handshake succeeds, the route answers 401', async (t) => {
    const r = await tlsRequest(gw.port, { path: '/m', servername: 'gw.test' })
    t.equal(r.status, 401)
    t.equal(JSON.parse(r.body).code, 'MISSING_CLIENT_CERTIFICATE')
    const open = await tlsRequest(gw.port, { path: '/open', servername: 'gw.test' })
    t.equal(open.status, 200, 'routes without mtls-auth serve clients without certificates')
  })

  await t.test('subject (CN) and SAN map to consumers', async (t) => {
    const before = up.seen.length
    const a = await tlsRequest(gw.port, { path: '/m', servername: 'gw.test', cert: c.alice.cert, key: c.alice.key, headers: { 'x-client-subject': 'forged' } })
    t.equal(a.status, 200)
    t.equal(up.seen[before]?.headers['x-consumer-id'], 'alice')
    t.equal(up.seen[before]?.headers['x-client-subject'], 'alice', 'the verified subject, never the client-sent header')
    const b = await tlsRequest(gw.port, { path: '/m', servername: 'gw.test', cert: c.bob.cert, key: c.bob.key })
    t.equal(b.status, 200)
    t.equal(up.seen[before + 1]?.headers['x-consumer-id'], 'bob')
  })

  await t.test('a certificate from another CA does not count, even with a known CN', async (t) => {
    const r = await tlsRequest(gw.port, { path: '/m', servername: 'gw.test', cert: c.rogue.cert, key: c.rogue.key })
    t.equal(r.status, 401)
    t.equal(JSON.parse(r.body).code, 'UNTRUSTED_CLIENT_CERTIFICATE')
  })

  await t.test('a verified certificate that names no consumer is 401', async (t) => {
    const r = await tlsRequest(gw.port, { path: '/m', servername: 'gw.test', cert: c.stranger.cert, key: c.stranger.key })
    t.equal(r.status, 401)
    t.equal(JSON.parse(r.body).code, 'UNKNOWN_CLIENT_CERTIFICATE')
  })
})

t.test('clientCertificates: required refuses the handshake without a verified certificate; unknownServerName: reject', async (t) => {
  const c = setup(t)
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      listen: { host: '127.0.0.1', port: 0, tls: { certificates: [{ cert: c.files.cert, key: c.files.key }], clientCertificates: { mode: 'required', ca: c.files.ca }, unknownServerName: 'reject' } },
      consumers,
      routes: [{ name: 'm', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'mtls-auth' }] }]
    }
  })
  const ok = await tlsRequest(gw.port, { servername: 'gw.test', cert: c.alice.cert, key: c.alice.key })
  t.equal(ok.status, 200)
  const before = up.seen.length
  const none = await tlsRequest(gw.port, { servername: 'gw.test' }).then((r) => r.status, (e: Error) => e.message)
  t.type(none, 'string', `no certificate: no response (${String(none)})`)
  const rogue = await tlsRequest(gw.port, { servername: 'gw.test', cert: c.rogue.cert, key: c.rogue.key }).then((r) => r.status, (e: Error) => e.message)
  t.type(rogue, 'string', `another CA: no response (${String(rogue)})`)
  t.equal(up.seen.length, before, 'nothing reached the upstream')
  const unknown = await handshake(gw.port, { servername: 'elsewhere.test', cert: c.alice.cert, key: c.alice.key }).then((s) => { s.destroy(); return 'connected' }, (e: Error) => e.message)
  t.not(unknown, 'connected', 'an unknown SNI name is refused')
  t.match(unknown, /alert|disconnected|unrecognized name|socket hang up|ECONNRESET/i)
})

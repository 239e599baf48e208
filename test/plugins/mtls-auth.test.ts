import t from 'tap'
import mtlsAuth from '../../plugins/mtls-auth/index.js'
import { createPluginHarness } from '../../src/testing.js'
import type { GatewayConfig } from '../../src/config-schema.js'
import type { PeerCertificateInfo, TlsInfo } from '../../src/types.js'

const listen: GatewayConfig['listen'] = {
  host: '127.0.0.1',
  port: 0,
  tls: { certificates: [{ cert: 'c.pem', key: 'k.pem' }], unknownServerName: 'default', minVersion: 'TLSv1.2', handshakeTimeout: 10000, sniHostMatch: true, watch: false, clientCertificates: { mode: 'optional', ca: 'ca.pem' } }
}
const consumers = [
  { id: 'alice', groups: ['staff'], credentials: { certificates: [{ subject: 'alice' }] } },
  { id: 'bob', credentials: { certificates: [{ san: 'URI:spiffe://test/bob' }] } },
  { id: 'carol', credentials: { certificates: [{ subject: 'carol', san: 'DNS:carol.test' }] } }
]

function tls (peer: Partial<PeerCertificateInfo> | undefined, authorizationError?: string): TlsInfo {
  return {
    protocol: 'TLSv1.3',
    cipher: 'TLS_AES_128_GCM_SHA256',
    servername: 'gw.test',
    authorizationError,
    peerCertificate: peer === undefined ? undefined : { subject: '', san: [], issuer: 'Client CA', fingerprint256: 'AA', verified: true, ...peer }
  }
}

t.test('config: refused without a listener that asks for client certificates', async (t) => {
  await t.rejects(createPluginHarness(mtlsAuth, {}, { consumers }), /listen\.tls\.clientCertificates/)
  await t.rejects(createPluginHarness(mtlsAuth, { forwardSubject: 'bad header' }, { consumers, listen }), { code: 'GW_ERR_CONFIG_INVALID' })
})

t.test('verified certificates map to consumers by subject CN, by SAN, by both', async (t) => {
  const h = await createPluginHarness(mtlsAuth, { forwardSubject: 'X-Client-Subject' }, { consumers, listen })
  const a = await h.request({ tls: tls({ subject: 'alice' }), headers: { 'x-client-subject': 'forged' } })
  t.equal(a.consumer?.id, 'alice')
  t.same(a.consumer?.groups, ['staff'])
  t.equal(a.upstreamHeaders['x-client-subject'], 'alice')
  t.equal((await h.request({ tls: tls({ subject: 'anything', san: ['DNS:x.test', 'URI:spiffe://test/bob'] }) })).consumer?.id, 'bob')
  t.equal((await h.request({ tls: tls({ subject: 'carol', san: ['DNS:carol.test'] }) })).consumer?.id, 'carol')
  const half = await h.request({ tls: tls({ subject: 'carol', san: ['DNS:other.test'] }) })
  t.equal(half.consumer, undefined, 'every field of an entry must match')
  t.equal(half.authFailures[0]?.code, 'UNKNOWN_CLIENT_CERTIFICATE')
})

t.test('missing, unverified and unsafe certificates fail', async (t) => {
  const h = await createPluginHarness(mtlsAuth, { forwardSubject: 'X-Client-Subject' }, { consumers, listen })
  const plain = await h.request({})
  t.equal(plain.authFailures[0]?.code, 'MISSING_CLIENT_CERTIFICATE')
  t.match(plain.authFailures[0]?.detail, /not TLS/)
  t.equal(plain.upstreamHeaders['x-client-subject'], undefined)
  t.equal((await h.request({ tls: tls(undefined) })).authFailures[0]?.code, 'MISSING_CLIENT_CERTIFICATE')
  const rogue = await h.request({ tls: tls({ subject: 'alice', verified: false }, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') })
  t.equal(rogue.consumer, undefined)
  t.equal(rogue.authFailures[0]?.code, 'UNTRUSTED_CLIENT_CERTIFICATE')
  t.match(rogue.authFailures[0]?.detail, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/)
  const crlf = await createPluginHarness(mtlsAuth, { forwardSubject: 'X-Client-Subject' }, { consumers: [{ id: 'x', credentials: { certificates: [{ subject: 'a\r\nX-Admin: 1' }] } }], listen })
  const r = await crlf.request({ tls: tls({ subject: 'a\r\nX-Admin: 1' }) })
  t.equal(r.consumer, undefined, 'a CN with CR/LF never goes into a header')
  t.equal(r.authFailures[0]?.code, 'UNTRUSTED_CLIENT_CERTIFICATE')
})

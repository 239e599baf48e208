import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { request } from 'undici'
import { createClientIpResolver } from '../src/client-ip.js'
import type { ClientIpConfig } from '../src/client-ip.js'
import { startGateway, startUpstream } from './helpers/gateway.js'

const fakeReq = (peer: string, headers: Record<string, string> = {}): IncomingMessage =>
  ({ socket: { remoteAddress: peer, remotePort: 5000 }, headers }) as unknown as IncomingMessage

const lb: ClientIpConfig = { trustedProxies: ['10.0.0.0/8', '2001:db8:ffff::/48'], header: 'x-forwarded-for', hops: 0 }

// [case, config, peer, headers, expected client, expected upstream X-Forwarded-For]
const cases: Array<[string, ClientIpConfig, string, Record<string, string>, string, string]> = [
  ['no proxies: the peer', { ...lb, trustedProxies: [] }, '192.0.2.5', { 'x-forwarded-for': '1.2.3.4' }, '192.0.2.5', '192.0.2.5'],
  ['E7 untrusted peer: XFF not believed', lb, '192.0.2.5', { 'x-forwarded-for': '203.0.113.128, 203.0.113.1' }, '192.0.2.5', '192.0.2.5'],
  ['E8 trusted LB: rightmost untrusted', lb, '10.0.0.5', { 'x-forwarded-for': '1.2.3.4, 198.51.100.7' }, '198.51.100.7', '198.51.100.7, 10.0.0.5'],
  ['E8 recursive past trusted hops', lb, '10.0.0.5', { 'x-forwarded-for': '1.2.3.4, 198.51.100.7, 10.1.1.1, 10.2.2.2' }, '198.51.100.7', '198.51.100.7, 10.1.1.1, 10.2.2.2, 10.0.0.5'],
  ['E8 hops=2: second from the right', { ...lb, hops: 2 }, '10.0.0.5', { 'x-forwarded-for': '1.2.3.4, 198.51.100.7, 203.0.113.9' }, '198.51.100.7', '198.51.100.7, 203.0.113.9, 10.0.0.5'],
  ['E8 hops=3 with 2 entries: the peer', { ...lb, hops: 3 }, '10.0.0.5', { 'x-forwarded-for': '198.51.100.7, 203.0.113.9' }, '10.0.0.5', '10.0.0.5'],
  ['E1 mapped peer is IPv4', lb, '::ffff:10.0.0.5', { 'x-forwarded-for': '198.51.100.7' }, '198.51.100.7', '198.51.100.7, 10.0.0.5'],
  ['E9 unknown stops the walk', lb, '10.0.0.5', { 'x-forwarded-for': '198.51.100.7, unknown, 10.9.9.9' }, '10.9.9.9', '10.9.9.9, 10.0.0.5'],
  ['E9 port on IPv4', lb, '10.0.0.5', { 'x-forwarded-for': '198.51.100.7:8080' }, '198.51.100.7', '198.51.100.7, 10.0.0.5'],
  ['E9 bracketed IPv6 with port', lb, '10.0.0.5', { 'x-forwarded-for': '[2001:db8::1]:443' }, '2001:db8::1', '2001:db8::1, 10.0.0.5'],
  ['E9 empty entries stop the walk', lb, '10.0.0.5', { 'x-forwarded-for': ',,' }, '10.0.0.5', '10.0.0.5'],
  ['E5 octal in XFF is invalid', lb, '10.0.0.5', { 'x-forwarded-for': '010.000.015.001' }, '10.0.0.5', '10.0.0.5'],
  ['E5 short form in XFF is invalid', lb, '10.0.0.5', { 'x-forwarded-for': '1.2.3.4, 127.1' }, '10.0.0.5', '10.0.0.5'],
  ['garbage', lb, '10.0.0.5', { 'x-forwarded-for': '\u0000;DROP TABLE' }, '10.0.0.5', '10.0.0.5'],
  ['IPv6 LB', lb, '2001:db8:ffff::1', { 'x-forwarded-for': '2001:db8::7' }, '2001:db8::7', '2001:db8::7, 2001:db8:ffff::1'],
  ['Forwarded header', { ...lb, header: 'forwarded' }, '10.0.0.5', { forwarded: 'for=192.0.2.60;proto=http, for="[2001:db8::9]:4711"' }, '2001:db8::9', '2001:db8::9, 10.0.0.5'],
  ['Forwarded: obfuscated stops', { ...lb, header: 'forwarded' }, '10.0.0.5', { forwarded: 'for=192.0.2.60, for=_hidden' }, '10.0.0.5', '10.0.0.5'],
  ['X-Real-IP from a trusted peer', { ...lb, header: 'x-real-ip' }, '10.0.0.5', { 'x-real-ip': '192.0.2.60' }, '192.0.2.60', '192.0.2.60, 10.0.0.5'],
  ['X-Real-IP from an untrusted peer', { ...lb, header: 'x-real-ip' }, '192.0.2.1', { 'x-real-ip': '10.0.0.1' }, '192.0.2.1', '192.0.2.1']
]

for (const [name, cfg, peer, headers, client, xff] of cases) {
  const r = createClientIpResolver(cfg)(fakeReq(peer, headers))
  t.equal(r.ip, client, `${name}: client`)
  t.equal(r.forwardedFor, xff, `${name}: upstream chain`)
}

t.test('E9: a 1000-entry header is read from the right, bounded', async (t) => {
  const many = Array.from({ length: 1000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(', ') + ', 198.51.100.7'
  const r = createClientIpResolver(lb)(fakeReq('10.0.0.5', { 'x-forwarded-for': many }))
  t.equal(r.ip, '198.51.100.7')
  const allTrusted = Array.from({ length: 1000 }, () => '10.1.1.1').join(',')
  const r2 = createClientIpResolver(lb)(fakeReq('10.0.0.5', { 'x-forwarded-for': allTrusted }))
  t.equal(r2.ip, '10.1.1.1', 'all trusted: stops at the walk bound on a trusted address')
  t.ok(r2.forwardedFor.split(', ').length <= 33, 'the chain sent upstream is bounded too')
})

t.test('end to end: trusted proxy config, forwarded headers rewritten', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      clientIp: { trustedProxies: ['127.0.0.0/8'] },
      routes: [
        { name: 'lb', match: { path: '/lb' }, upstream: up.url },
        { name: 'direct', match: { path: '/direct' }, upstream: up.url, clientIp: { trustedProxies: [] } }
      ]
    }
  })
  const headers = { 'x-forwarded-for': '203.0.113.50, 198.51.100.7', 'x-real-ip': '1.1.1.1', forwarded: 'for=1.1.1.1' }
  let res = await request(`${gw.url}/lb`, { headers })
  await res.body.text()
  let h = up.seen.at(-1)?.headers ?? {}
  t.equal(h['x-forwarded-for'], '198.51.100.7, 127.0.0.1', 'from a trusted peer: client, then the peer')
  t.equal(h['x-real-ip'], '198.51.100.7', 'X-Real-IP is the resolved client, not what the client sent')
  t.equal(h.forwarded, undefined, "the client's Forwarded is not passed on")
  res = await request(`${gw.url}/direct`, { headers })
  await res.body.text()
  h = up.seen.at(-1)?.headers ?? {}
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'a route that trusts no proxy: the peer only')
  t.equal(h['x-real-ip'], '127.0.0.1')
})

t.test('an invalid trusted proxy CIDR is refused at load', async (t) => {
  const { validateGatewayConfig } = await import('../src/config.js')
  t.throws(() => validateGatewayConfig({ source: 'f', dir: '/', value: { clientIp: { trustedProxies: ['10.0.0.1/8', '127.1'] }, routes: [] } }), {
    code: 'GW_ERR_CONFIG_INVALID',
    details: [
      "f: /clientIp/trustedProxies/0: '10.0.0.1/8' has host bits set past /8; write the network address",
      "f: /clientIp/trustedProxies/1: '127.1' is not a valid IP address (IPv4 must be four decimal parts without leading zeros)"
    ]
  })
})

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import ipFilter from '../../plugins/ip-filter/index.js'
import { createPluginHarness } from '../../src/testing.js'
import { runCli, startGateway, startUpstream } from '../helpers/gateway.js'

t.test('config: inline in, success or a specific error out', async (t) => {
  await t.resolves(createPluginHarness(ipFilter, {}), 'empty config: allow all')
  await t.resolves(createPluginHarness(ipFilter, { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.1.0.0/16'] }))
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ allow: ['10.0.0.1/8'] }, "/allow/0: '10.0.0.1/8' has host bits set past /8; write the network address"],
    [{ deny: ['1.2.3.4', '127.1'] }, "/deny/1: '127.1' is not a valid IP address (IPv4 must be four decimal parts without leading zeros)"],
    [{ deny: ['::/129'] }, "/deny/0: '::/129' has an invalid prefix length (0-128)"],
    [{ allow: 'x' }, '/allow: must be an array'],
    [{ status: 401 }, '/status: must be one of: 403, 404'],
    [{ extra: 1 }, "/: unknown property 'extra'"]
  ]
  for (const [config, line] of bad) {
    await t.rejects(createPluginHarness(ipFilter, config), { code: 'GW_ERR_CONFIG_INVALID', details: [line] }, JSON.stringify(config))
  }
})

t.test('deny wins, empty allow means all, mapped addresses are IPv4', async (t) => {
  const h = await createPluginHarness(ipFilter, { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.66.0.0/16', '2001:db8:bad::/48'] })
  const cases: Array<[string, number | undefined, string | undefined]> = [
    ['10.1.2.3', undefined, undefined],
    ['10.66.0.1', 403, 'IP_DENIED'],
    ['11.0.0.1', 403, 'IP_NOT_ALLOWED'],
    ['2001:db8::1', undefined, undefined],
    ['2001:db8:bad::1', 403, 'IP_DENIED'],
    ['2001:db9::1', 403, 'IP_NOT_ALLOWED'],
    ['::ffff:10.1.2.3', undefined, undefined],
    ['::ffff:10.66.0.1', 403, 'IP_DENIED'],
    ['not-an-ip', 403, 'IP_INVALID']
  ]
  for (const [client, status, code] of cases) {
    const r = await h.request({ client })
    t.equal(r.status, status, `${client} -> ${status ?? 'through'}`)
    if (code !== undefined) t.equal((r.body as Record<string, unknown>).code, code)
  }
  const open = await createPluginHarness(ipFilter, { deny: ['192.0.2.0/24'] })
  t.equal((await open.request({ client: '198.51.100.1' })).replied, false, 'no allow list: everything not denied passes')
  t.equal((await open.request({ client: '192.0.2.200' })).status, 403)
  const v4all = await createPluginHarness(ipFilter, { allow: ['0.0.0.0/0'] })
  t.equal((await v4all.request({ client: '2001:db8::1' })).status, 403, '0.0.0.0/0 does not admit IPv6 (E6)')
})

t.test('lists from files: comments, blanks, errors with the index', async (t) => {
  const dir = t.testdir({ 'deny.txt': '# bad ranges\n192.0.2.0/24\n\n198.51.100.7 # one host\n', 'bad.txt': '10.0.0.0/8\n010.0.0.0/8\n' })
  const h = await createPluginHarness(ipFilter, { denyFile: join(dir, 'deny.txt'), deny: ['203.0.113.0/24'] })
  t.equal((await h.request({ client: '192.0.2.9' })).status, 403)
  t.equal((await h.request({ client: '198.51.100.7' })).status, 403)
  t.equal((await h.request({ client: '203.0.113.1' })).status, 403, 'inline entries still count')
  t.equal((await h.request({ client: '198.51.100.8' })).replied, false)
  await t.rejects(createPluginHarness(ipFilter, { denyFile: join(dir, 'bad.txt') }), { details: [/^\/deny\/1: '010\.0\.0\.0\/8' is not a valid IP address/] })
  await t.rejects(createPluginHarness(ipFilter, { denyFile: join(dir, 'missing.txt') }), /cannot read .*missing\.txt: ENOENT/)
})

t.test('end to end: per-route lists, a large list from a file, client from a trusted proxy', async (t) => {
  const up = await startUpstream(t)
  // 100,000 /32s and /24s that do not cover 198.51.100.0/24, plus the one range we test.
  const lines: string[] = []
  for (let i = 0; i < 100_000; i++) lines.push(i % 2 === 0 ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : `172.${16 + ((i >> 16) & 15)}.${(i >> 8) & 255}.0/24`)
  lines.push('198.51.100.0/25')
  const gw = await startGateway(t, {
    files: { 'deny.txt': lines.join('\n') },
    config: {
      logLevel: 'warn',
      clientIp: { trustedProxies: ['127.0.0.0/8'] },
      routes: [
        { name: 'big', match: { path: '/big' }, upstream: up.url, plugins: [{ name: 'ip-filter', config: { denyFile: 'deny.txt' } }] },
        { name: 'hidden', match: { path: '/hidden' }, upstream: up.url, plugins: [{ name: 'ip-filter', config: { allow: ['192.0.2.0/24'], status: 404 } }] },
        { name: 'open', match: { path: '/' }, upstream: up.url }
      ]
    }
  })
  const statusFor = async (path: string, client: string): Promise<number> => {
    const r = await request(`${gw.url}${path}`, { headers: { 'x-forwarded-for': client } })
    await r.body.text()
    return r.statusCode
  }
  t.equal(await statusFor('/big', '198.51.100.5'), 403, 'in the 100k-entry file: denied')
  t.equal(await statusFor('/big', '198.51.100.200'), 200, 'just outside it: allowed')
  t.equal(await statusFor('/big', '10.0.0.2'), 403)
  t.equal(await statusFor('/big', '10.0.0.1'), 200, 'odd entries are /24s elsewhere; 10.0.0.1 is not listed')
  t.equal(await statusFor('/hidden', '203.0.113.1'), 404, 'status 404 hides the route')
  t.equal(await statusFor('/hidden', '192.0.2.77'), 200)
  t.equal(await statusFor('/anything', '198.51.100.5'), 200, 'routes without the plugin are open')
  const denied = up.seen.filter((s) => s.url.startsWith('/big') && s.headers['x-real-ip'] === '198.51.100.5')
  t.equal(denied.length, 0, 'a denied request never reaches the upstream')
})

t.test('validate reports a bad CIDR in a file with its entry path', async (t) => {
  const dir = t.testdir({ 'bad.txt': '10.0.0.0/8\n1.2.3.4/24\n' })
  const file = join(dir, 'g.json')
  writeFileSync(file, JSON.stringify({ routes: [{ name: 'a', match: { path: '/' }, upstream: 'http://127.0.0.1:1', plugins: [{ name: 'ip-filter', config: { denyFile: 'bad.txt' } }] }] }))
  const r = await runCli(['validate', file])
  t.equal(r.code, 2)
  t.match(r.stderr, `${file}: /routes/0/plugins/0/config/deny/1: '1.2.3.4/24' has host bits set past /24; write the network address`)
})

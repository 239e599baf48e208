import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import threatGuard from '../../plugins/threat-guard/index.js'
import { createPluginHarness } from '../../src/testing.js'
import type { Harness } from '../../src/testing.js'

type Json = Record<string, any>

function capture (): { log: ReturnType<typeof pino>, lines: Json[] } {
  const lines: Json[] = []
  const log = pino({ level: 'info' }, new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(String(chunk)) as Json); cb() } }))
  return { log, lines }
}

/** One request from `client` answered `status` (by the upstream), then logged. */
async function strike (h: Harness, client: string, status: number): Promise<void> {
  const r = await h.request({ client })
  h.respond(r, status)
  h.log(r)
}

const blocked = async (h: Harness, client: string): Promise<boolean> => (await h.request({ client })).replied

t.test('config: inline in, success or a specific error out', async (t) => {
  await t.resolves(createPluginHarness(threatGuard, {}))
  await t.resolves(createPluginHarness(threatGuard, { threshold: 5, window: '30s', blockFor: '10m', statuses: [401, 404], allow: ['10.0.0.0/8', '2001:db8::/32'], status: 429, id: 'edge' }))
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ threshold: 0 }, '/threshold: must be >= 1'],
    [{ statuses: [] }, '/statuses: must NOT have fewer than 1 items'],
    [{ statuses: [200] }, '/statuses/0: must be >= 400'],
    [{ statuses: [401, 401] }, '/statuses: must NOT have duplicate items (items ## 1 and 0 are identical)'],
    [{ status: 500 }, '/status: must be one of: 403, 429'],
    [{ nope: 1 }, "/: unknown property 'nope'"]
  ]
  for (const [config, line] of bad) {
    await t.rejects(createPluginHarness(threatGuard, config), { code: 'GW_ERR_CONFIG_INVALID', details: [line] }, JSON.stringify(config))
  }
  await t.rejects(createPluginHarness(threatGuard, { allow: ['10.0.0.300/8'] }), { code: 'GW_ERR_CONFIG_INVALID' }, 'a bad CIDR in the allow list')
})

t.test('blocks exactly at the threshold, with Retry-After and a security event', async (t) => {
  const { log, lines } = capture()
  const h = await createPluginHarness(threatGuard, { id: 'exact', threshold: 3, window: '1h', blockFor: '10m' }, { log })
  await strike(h, '192.0.2.10', 401)
  await strike(h, '192.0.2.10', 401)
  t.equal(await blocked(h, '192.0.2.10'), false, 'two strikes: not blocked')
  await strike(h, '192.0.2.10', 200)
  await strike(h, '192.0.2.10', 404)
  await strike(h, '192.0.2.10', 500)
  t.equal(await blocked(h, '192.0.2.10'), false, '200, 404 and 500 are not strikes')
  await strike(h, '192.0.2.10', 403)
  const r = await h.request({ client: '192.0.2.10' })
  t.equal(r.status, 403, 'the third strike blocks')
  t.equal((r.body as Json).code, 'GW_IP_AUTO_BLOCKED')
  const retry = Number(r.responseHeaders['retry-after'])
  t.ok(retry > 590 && retry <= 600, `Retry-After ${retry} s is the block's length`)
  t.equal(await blocked(h, '192.0.2.11'), false, 'a neighbour is not blocked')
  const events = lines.filter((l) => l.securityEvent === 'ip-auto-blocked')
  t.equal(events.length, 1, 'one security event')
  t.match(events[0], { ip: '192.0.2.10', count: 3, code: 'GW_IP_AUTO_BLOCKED', reasons: { 401: 2, 403: 1 }, windowMs: 3_600_000, level: 40 })
  t.ok(Date.parse(events[0]!.until as string) - Date.now() > 590_000, 'until is blockFor from now')
  // Our own refusals are not strikes, and a blocked client places no second block.
  for (let i = 0; i < 5; i++) h.log(await h.request({ client: '192.0.2.10' }))
  t.equal(lines.filter((l) => l.securityEvent === 'ip-auto-blocked').length, 1)
})

t.test('the statuses are configurable', async (t) => {
  const h = await createPluginHarness(threatGuard, { id: 'statuses', threshold: 2, window: '1h', statuses: [404] })
  await strike(h, '192.0.2.20', 401)
  await strike(h, '192.0.2.20', 401)
  t.equal(await blocked(h, '192.0.2.20'), false, '401 is not configured')
  await strike(h, '192.0.2.20', 404)
  await strike(h, '192.0.2.20', 404)
  t.equal(await blocked(h, '192.0.2.20'), true, 'two 404s')
})

t.test('allow-listed ranges are never counted nor blocked', async (t) => {
  const { log, lines } = capture()
  const h = await createPluginHarness(threatGuard, { id: 'allow', threshold: 2, window: '1h', allow: ['192.0.2.64/26', '2001:db8:aa::/48'] }, { log })
  for (let i = 0; i < 10; i++) await strike(h, '192.0.2.70', 401)
  for (let i = 0; i < 10; i++) await strike(h, '2001:db8:aa::1', 429)
  t.equal(await blocked(h, '192.0.2.70'), false)
  t.equal(await blocked(h, '2001:db8:aa::1'), false)
  t.equal(lines.filter((l) => l.securityEvent !== undefined).length, 0, 'no security event')
  await strike(h, '192.0.2.63', 401)
  await strike(h, '192.0.2.63', 401)
  t.equal(await blocked(h, '192.0.2.63'), true, 'just outside the range: blocked')
})

t.test('a block expires after blockFor; counting then starts afresh', async (t) => {
  const h = await createPluginHarness(threatGuard, { id: 'expiry', threshold: 2, window: '1h', blockFor: '400ms' })
  await strike(h, '2001:db8::99', 401)
  await strike(h, '2001:db8::99', 401)
  const placed = Date.now()
  t.equal(await blocked(h, '2001:db8::99'), true, 'blocked (IPv6)')
  t.equal(await blocked(h, '2001:db8:0::99'), true, 'the same address written another way')
  let free = false
  const deadline = Date.now() + 5000
  while (!free && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    free = !(await blocked(h, '2001:db8::99'))
  }
  t.ok(free, 'unblocked within 5 s')
  t.ok(Date.now() - placed >= 400, 'not before blockFor')
  await strike(h, '2001:db8::99', 401)
  t.equal(await blocked(h, '2001:db8::99'), false, 'one strike after the block is not a block')
  await strike(h, '2001:db8::99', 401)
  t.equal(await blocked(h, '2001:db8::99'), true, 'two are')
})

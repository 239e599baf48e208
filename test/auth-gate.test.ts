import t from 'tap'
import { request } from 'undici'
import { FIXTURES, startGateway, startUpstream } from './helpers/gateway.js'

const KEY = 'carol-key-0123456789abcdef'
const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64')

t.test('several authn plugins on a route: the first that succeeds wins, else one 401', async (t) => {
  const up = await startUpstream(t)
  const headerAuth = { name: 'header-auth', module: FIXTURES + 'plugins/header-auth.mjs' }
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      consumers: [{ id: 'carol', groups: ['keyed'], credentials: { keys: [{ key: KEY }] } }, { id: 'visitor' }],
      routes: [
        { name: 'both', match: { path: '/both' }, upstream: up.url, plugins: [{ name: 'key-auth' }, headerAuth] },
        { name: 'async', match: { path: '/async' }, upstream: up.url, plugins: [{ ...headerAuth, config: { async: true } }, { name: 'key-auth' }] },
        { name: 'busy', match: { path: '/busy' }, upstream: up.url, anonymous: 'visitor', plugins: [{ ...headerAuth, config: { status: 503 } }] }
      ]
    }
  })
  const call = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> => {
    const r = await request(gw.url + path, { headers })
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
  }
  const last = (): Record<string, string | string[] | undefined> => up.seen[up.seen.length - 1]?.headers ?? {}

  t.equal((await call('/both', { apikey: KEY, 'x-test-user': b64('dave') })).status, 200)
  t.equal(last()['x-consumer-id'], 'carol', 'key-auth runs first and wins')
  t.equal((await call('/both', { 'x-test-user': b64('dave') })).status, 200)
  t.equal(last()['x-consumer-id'], 'dave', 'no key: the next plugin authenticates')
  t.equal(last()['x-consumer-groups'], 'testers')
  t.equal((await call('/both', { apikey: 'wrong-key-0123456789abcdef', 'x-test-user': b64('dave') })).status, 200)
  t.equal(last()['x-consumer-id'], 'dave', 'a wrong key does not stop a later plugin that succeeds')

  const none = await call('/both')
  t.equal(none.status, 401)
  t.same(none.headers['www-authenticate'], ['Key realm="tollgate"', 'Test realm="t"'], 'every plugin offers its challenge')
  t.match(JSON.parse(none.body), { code: 'MISSING_API_KEY' })

  const bad = await call('/both', { 'x-test-user': 'bad' })
  t.equal(bad.status, 401)
  t.match(JSON.parse(bad.body), { code: 'TEST_BAD' }, 'the failure about a credential that was sent is the one reported')

  // Async authn hooks are awaited before the gate decides.
  t.equal((await call('/async', { 'x-test-user': b64('erin') })).status, 200)
  t.equal(last()['x-consumer-id'], 'erin')
  t.equal((await call('/async', { apikey: KEY })).status, 200)
  t.equal(last()['x-consumer-id'], 'carol')
  t.equal((await call('/async', { 'x-test-user': 'bad' })).status, 401)

  // An identity a header cannot carry is refused, never forwarded.
  const before = up.seen.length
  const crlf = await call('/both', { 'x-test-user': b64('mallory\r\nx-admin: 1') })
  t.equal(crlf.status, 401)
  t.match(JSON.parse(crlf.body), { code: 'GW_UNAUTHENTICATED' })
  t.equal((await call('/both', { 'x-test-user': b64('nul\u0000') })).status, 401)
  t.equal(up.seen.length, before, 'neither reached the upstream')

  // A plugin that cannot decide (503) is not turned into the anonymous consumer.
  const busy = await call('/busy', { 'x-test-user': 'bad' })
  t.equal(busy.status, 503)
  t.equal(busy.headers['www-authenticate'], undefined, 'no challenge on a 503')
  t.equal(busy.headers['retry-after'], '5', "the failure's own headers are sent")
  t.equal((await call('/busy')).status, 200)
  t.equal(last()['x-consumer-id'], 'visitor')
  t.equal(last()['x-anonymous-consumer'], 'true')
})

t.test('access log and rate-limit see the consumer', async (t) => {
  const up = await startUpstream(t)
  const dir = t.testdir({})
  const log = `${dir}/access.log`
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      consumers: [{ id: 'carol', credentials: { keys: [{ key: KEY }] } }, { id: 'frank', credentials: { keys: [{ key: KEY + 'f' }] } }],
      plugins: [{ name: 'access-log', config: { destination: log } }],
      routes: [{ name: 'r', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'key-auth' }, { name: 'rate-limit', config: { key: 'consumer', limits: [{ limit: 2, window: '1m' }] } }] }]
    }
  })
  const statuses: Record<string, number[]> = { carol: [], frank: [] }
  for (const [who, key] of [['carol', KEY], ['carol', KEY], ['carol', KEY], ['frank', KEY + 'f']] as const) {
    const r = await request(gw.url + '/', { headers: { apikey: key } })
    await r.body.text()
    statuses[who]?.push(r.statusCode)
  }
  t.same(statuses, { carol: [200, 200, 429], frank: [200] }, 'counted per consumer, not per address')
  await gw.stop()
  const { readFileSync } = await import('node:fs')
  const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { consumer?: string, status: number })
  t.same(lines.map((l) => [l.consumer, l.status]), [['carol', 200], ['carol', 200], ['carol', 429], ['frank', 200]])
})

t.test('two plugins that each hide a query parameter: both are removed', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      consumers: [{ id: 'carol', credentials: { keys: [{ key: KEY }] } }],
      routes: [{
        name: 'r',
        match: { path: '/' },
        upstream: up.url,
        plugins: [
          { name: 'key-auth', config: { query: 'apikey' } },
          { name: 'jwt-auth', config: { hideCredentials: true, token: { query: 'access_token' }, issuers: [{ issuer: 'https://i.test', algorithms: ['HS256'], keys: [{ secret: 'x'.repeat(32) }] }] } }
        ]
      }]
    }
  })
  const r = await request(`${gw.url}/p?a=1&apikey=${KEY}&b=%2F&access_token=whatever&c`)
  await r.body.text()
  t.equal(r.statusCode, 200)
  t.equal(up.seen[0]?.url, '/p?a=1&b=%2F&c')
  t.equal(up.seen[0]?.headers['x-consumer-id'], 'carol')
})

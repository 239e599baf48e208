import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import keyAuth from '../../plugins/key-auth/index.js'
import { takeParam } from '../../src/query.js'
import { createPluginHarness } from '../../src/testing.js'
import { runCli, startGateway, startUpstream } from '../helpers/gateway.js'

const ALICE = 'alice-key-0123456789abcdef'
const BOB = 'bob-key-0123456789abcdef!!'
const digest = (k: string): string => 'sha256:' + createHash('sha256').update(k).digest('hex')

const consumers = [
  { id: 'alice', groups: ['admins', 'staff'], scopes: ['orders:read', 'orders:write'], credentials: { keys: [{ digest: digest(ALICE), name: 'laptop' }] } },
  { id: 'bob', groups: ['staff'], scopes: ['orders:read'], credentials: { keys: [{ key: BOB }] } }
]

t.test('config: a bad one is refused with the path and reason', async (t) => {
  await t.resolves(createPluginHarness(keyAuth, {}))
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ headers: [] }, '/headers: must NOT have fewer than 1 items'],
    [{ headers: ['x api key'] }, '/headers/0: must match'],
    [{ query: 'a&b' }, '/query: must match'],
    [{ hideCredentials: 'yes' }, '/hideCredentials: must be a boolean'],
    [{ realm: 'a"b' }, '/realm: must match'],
    [{ key: 'x' }, "/: unknown property 'key'"]
  ]
  for (const [config, line] of bad) {
    await t.rejects(createPluginHarness(keyAuth, config), { code: 'GW_ERR_CONFIG_INVALID', details: [new RegExp('^' + line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))] }, JSON.stringify(config))
  }
})

t.test('a key in a header or the query names its consumer', async (t) => {
  const h = await createPluginHarness(keyAuth, { query: 'apikey' }, { consumers })
  for (const req of [{ headers: { apikey: ALICE } }, { headers: { 'X-API-Key': ALICE } }, { query: `a=1&apikey=${encodeURIComponent(ALICE)}` }]) {
    const r = await h.request(req)
    t.equal(r.replied, false, JSON.stringify(req))
    t.same(r.consumer && { id: r.consumer.id, groups: r.consumer.groups, scopes: r.consumer.scopes, anonymous: r.consumer.anonymous }, { id: 'alice', groups: ['admins', 'staff'], scopes: ['orders:read', 'orders:write'], anonymous: false })
    t.same(r.authFailures, [])
  }
  // A plain key in the config is hashed and found the same way.
  t.equal((await h.request({ headers: { 'x-api-key': BOB } })).consumer?.id, 'bob')
})

t.test('missing, wrong and ambiguous keys are reported, never authenticated', async (t) => {
  const h = await createPluginHarness(keyAuth, { query: 'apikey' }, { consumers })
  const missing = await h.request({})
  t.equal(missing.consumer, undefined)
  t.match(missing.authFailures, [{ code: 'MISSING_API_KEY', presented: false, challenge: 'Key realm="tollgate"' }])

  // A wrong key sharing all but the last character with a real one, and one sharing nothing.
  for (const wrong of [ALICE.slice(0, -1) + 'X', 'Z' + ALICE.slice(1), 'x', '']) {
    const r = await h.request({ headers: { apikey: wrong } })
    t.equal(r.consumer, undefined, JSON.stringify(wrong))
    t.match(r.authFailures, [{ code: 'INVALID_API_KEY', presented: true }])
    t.notMatch(JSON.stringify(r.authFailures), ALICE.slice(0, 10), 'the key is not echoed')
  }

  const ambiguous = [
    { headers: { apikey: ALICE }, query: 'apikey=' + encodeURIComponent(BOB) },
    { headers: { apikey: [ALICE, BOB] } },
    { headers: { apikey: ALICE, 'x-api-key': BOB } },
    { query: `apikey=${encodeURIComponent(ALICE)}&apikey=${encodeURIComponent(BOB)}` },
    // The parameter name percent-encoded is the same parameter.
    { headers: { apikey: ALICE }, query: 'api%6Bey=' + encodeURIComponent(BOB) }
  ]
  for (const req of ambiguous) {
    const r = await h.request(req)
    t.equal(r.consumer, undefined, JSON.stringify(req))
    t.match(r.authFailures, [{ status: 400, code: 'AMBIGUOUS_CREDENTIALS', presented: true }], JSON.stringify(req))
  }
  // The same key twice is one key.
  t.equal((await h.request({ headers: { apikey: ALICE }, query: 'apikey=' + encodeURIComponent(ALICE) })).consumer?.id, 'alice')
})

t.test('the key is removed before proxying unless hideCredentials is false', async (t) => {
  const hide = await createPluginHarness(keyAuth, { query: 'apikey' }, { consumers })
  const r = await hide.request({ headers: { apikey: ALICE, accept: 'a' }, query: 'x=%2F1&apikey=' + encodeURIComponent(ALICE) + '&y=a+b' })
  t.equal(r.upstreamHeaders.apikey, undefined)
  t.equal(r.upstreamHeaders.accept, 'a')
  t.equal(r.upstreamQuery, 'x=%2F1&y=a+b', 'other parameters are kept byte for byte')
  // Even a key that does not authenticate is not passed on.
  t.equal((await hide.request({ headers: { 'x-api-key': 'nope' } })).upstreamHeaders['x-api-key'], undefined)

  const keep = await createPluginHarness(keyAuth, { query: 'apikey', hideCredentials: false }, { consumers })
  const k = await keep.request({ headers: { apikey: ALICE }, query: 'apikey=' + encodeURIComponent(ALICE) })
  t.equal(k.upstreamHeaders.apikey, ALICE)
  t.equal(k.upstreamQuery, 'apikey=' + encodeURIComponent(ALICE))
})

t.test('an earlier authn plugin wins; the key is still hidden', async (t) => {
  const h = await createPluginHarness(keyAuth, {}, { consumers })
  const r = await h.request({ headers: { apikey: 'whatever' }, consumer: { id: 'from-jwt' } })
  t.equal(r.consumer?.id, 'from-jwt')
  t.same(r.authFailures, [])
  t.equal(r.upstreamHeaders.apikey, undefined)
})

t.test('takeParam: values decoded, the rest untouched', async (t) => {
  t.same(takeParam('', 'k'), { values: [], rest: '' })
  t.same(takeParam('a=1&k=v%20w&b', 'k'), { values: ['v w'], rest: 'a=1&b' })
  t.same(takeParam('k&k=', 'k'), { values: ['', ''], rest: '' })
  t.same(takeParam('k=%ZZ', 'k'), { values: ['\u0000'], rest: '' }, 'a malformed value is a value that matches no key')
  t.same(takeParam('kk=1&k%=2', 'k'), { values: [], rest: 'kk=1&k%=2' })
})

t.test('through the gateway: identity headers, 401/400 answers, anonymous, acl and scopes', async (t) => {
  const up = await startUpstream(t)
  const keyAuthRef = { name: 'key-auth', config: { query: 'apikey' } }
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      consumers: [...consumers, { id: 'guest', groups: ['public'] }],
      routes: [
        { name: 'orders', match: { path: '/orders' }, upstream: up.url, plugins: [keyAuthRef, { name: 'scopes', config: { methods: { GET: { anyOf: ['orders:read'] }, POST: { allOf: ['orders:write'] } } } }] },
        { name: 'admin', match: { path: '/admin' }, upstream: up.url, plugins: [keyAuthRef, { name: 'acl', config: { allow: ['admins'] } }] },
        { name: 'catalog', match: { path: '/catalog' }, upstream: up.url, anonymous: 'guest', plugins: [keyAuthRef] },
        { name: 'open', match: { path: '/open' }, upstream: up.url }
      ]
    }
  })
  const get = async (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> => {
    const r = await request(gw.url + path, { method: method as 'GET', headers })
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
  }
  const seen = (): Record<string, string | string[] | undefined> => up.seen[up.seen.length - 1]?.headers ?? {}

  const ok = await get('/orders/1', { apikey: ALICE, 'x-consumer-id': 'root', 'X-Consumer-Groups': 'admins', 'x-authenticated-scope': 'all' })
  t.equal(ok.status, 200)
  t.equal(seen()['x-consumer-id'], 'alice')
  t.equal(seen()['x-consumer-groups'], 'admins, staff')
  t.equal(seen()['x-authenticated-scope'], 'orders:read orders:write')
  t.equal(seen().apikey, undefined, 'the key is not forwarded')
  t.equal(seen()['x-anonymous-consumer'], undefined)

  const before = up.seen.length
  const missing = await get('/orders/1')
  t.equal(missing.status, 401)
  t.equal(missing.headers['www-authenticate'], 'Key realm="tollgate"')
  t.match(missing.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(missing.body), { status: 401, code: 'MISSING_API_KEY' })

  const wrong = await get('/orders/1?apikey=' + encodeURIComponent(ALICE + 'x'))
  t.equal(wrong.status, 401)
  t.match(JSON.parse(wrong.body), { code: 'INVALID_API_KEY' })
  t.notMatch(wrong.body, 'alice-key', 'the detail never echoes the key')

  const ambiguous = await get('/orders/1?apikey=' + encodeURIComponent(BOB), { apikey: ALICE })
  t.equal(ambiguous.status, 400)
  t.match(JSON.parse(ambiguous.body), { code: 'AMBIGUOUS_CREDENTIALS' })
  t.equal(up.seen.length, before, 'no refused request reached the upstream')

  // scopes: bob may read, not write.
  t.equal((await get('/orders/1', { apikey: BOB })).status, 200)
  const post = await get('/orders', { apikey: BOB }, 'POST')
  t.equal(post.status, 403)
  t.match(JSON.parse(post.body), { code: 'INSUFFICIENT_SCOPE' })
  t.equal(post.headers['www-authenticate'], 'Bearer realm="tollgate", error="insufficient_scope", scope="orders:write"')
  t.equal((await get('/orders', { apikey: ALICE }, 'POST')).status, 200)

  // acl: only admins.
  t.equal((await get('/admin', { apikey: ALICE })).status, 200)
  const denied = await get('/admin', { apikey: BOB })
  t.equal(denied.status, 403)
  t.match(JSON.parse(denied.body), { code: 'GROUP_NOT_ALLOWED' })

  // anonymous: no key -> guest; a wrong key is still refused, not downgraded.
  const anon = await get('/catalog', { 'x-anonymous-consumer': 'false' })
  t.equal(anon.status, 200)
  t.equal(seen()['x-consumer-id'], 'guest')
  t.equal(seen()['x-consumer-groups'], 'public')
  t.equal(seen()['x-anonymous-consumer'], 'true')
  t.equal((await get('/catalog', { apikey: 'not-a-key-at-all-really' })).status, 401)
  t.equal((await get('/catalog', { apikey: BOB })).status, 200)
  t.equal(seen()['x-consumer-id'], 'bob')
  t.equal(seen()['x-anonymous-consumer'], undefined)

  // A route without authentication still never passes forged identity headers on.
  t.equal((await get('/open', { 'x-consumer-id': 'root', 'x-consumer-groups': 'admins', 'x-authenticated-scope': 'all', 'x-anonymous-consumer': 'true' })).status, 200)
  for (const h of ['x-consumer-id', 'x-consumer-groups', 'x-authenticated-scope', 'x-anonymous-consumer']) t.equal(seen()[h], undefined, `${h} removed`)

  t.ok(gw.lines.some((l) => l.level === 40 && /\/consumers\/1\/credentials\/keys\/0: a plain API key/.test(String(l.msg))), 'a plain key in the config is warned about')
  t.notOk(gw.lines.some((l) => JSON.stringify(l).includes(BOB)), 'the plain key itself is never logged')
})

t.test('identity header names are configurable', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      consumers,
      identity: { headers: { id: 'X-User', groups: 'X-Roles' } },
      routes: [{ name: 'r', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'key-auth' }] }]
    }
  })
  const r = await request(gw.url + '/', { headers: { apikey: ALICE, 'x-consumer-id': 'forged' } })
  await r.body.text()
  const h = up.seen[0]?.headers ?? {}
  t.equal(h['x-user'], 'alice')
  t.equal(h['x-roles'], 'admins, staff')
  t.equal(h['x-authenticated-scope'], 'orders:read orders:write')
  // The default name is no longer the gateway's, so it is an ordinary client header now.
  t.equal(h['x-consumer-id'], 'forged')
})

t.test('consumer config mistakes are refused whole, with file and path', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'gateway.json')
  writeFileSync(file, JSON.stringify({
    consumers: [
      { id: 'a', credentials: { keys: [{ key: ALICE }] } },
      { id: 'a', credentials: { keys: [{ digest: digest(ALICE) }, { key: 'short' }, {}, { key: BOB, digest: digest(BOB) }], subjects: [{ issuer: 'i', subject: 's' }] } },
      { id: 'c', groups: ['bad group'], credentials: { subjects: [{ issuer: 'i', subject: 's' }] } },
      { id: 'bad id!' }
    ],
    routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1', anonymous: 'nobody' }]
  }))
  const r = await runCli(['validate', file])
  t.equal(r.code, 2)
  for (const line of [
    '/consumers/1/credentials/keys/1/key: must NOT have fewer than 16 characters',
    '/consumers/2/groups/0: must match',
    '/consumers/3/id: must match'
  ]) t.match(r.stderr, `${file}: ${line}`)
  // Schema problems are reported first; the cross-field ones once the schema passes.
  writeFileSync(file, JSON.stringify({
    consumers: [
      { id: 'a', credentials: { keys: [{ key: ALICE }] } },
      { id: 'a', credentials: { keys: [{ digest: digest(ALICE) }, {}, { key: BOB, digest: digest(BOB) }], subjects: [{ issuer: 'i', subject: 's' }] } },
      { id: 'c', credentials: { subjects: [{ issuer: 'i', subject: 's' }] } }
    ],
    routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1', anonymous: 'nobody' }]
  }))
  const r2 = await runCli(['validate', file])
  t.equal(r2.code, 2)
  for (const line of [
    "/consumers/1/id: consumer id 'a' is used twice",
    "/consumers/1/credentials/keys/0: the same key is already given to consumer 'a'",
    '/consumers/1/credentials/keys/1: give exactly one of digest and key',
    '/consumers/1/credentials/keys/2: give exactly one of digest and key',
    "/consumers/2/credentials/subjects/0: issuer 'i' subject 's' already names consumer 'a'",
    "/routes/0/anonymous: no consumer has the id 'nobody'"
  ]) t.match(r2.stderr, `${file}: ${line}`)
  t.notMatch(r2.stderr, ALICE, 'a plain key is never printed')
})

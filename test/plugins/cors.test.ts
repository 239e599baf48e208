import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import cors from '../../plugins/cors/index.js'
import { addVary } from '../../plugins/cors/cors.js'
import { canonicalOrigin, parseOrigin, parseWildcard, unsafePattern, wildcardMatches } from '../../plugins/cors/origin.js'
import { createPluginHarness } from '../../src/testing.js'
import { runCli, startGateway, startUpstream } from '../helpers/gateway.js'

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const APP = 'https://app.example.com'
const preflightOf = (origin: string, method = 'PUT', headers?: string): { method: string, headers: Record<string, string> } => ({
  method: 'OPTIONS',
  headers: { origin, 'access-control-request-method': method, ...(headers === undefined ? {} : { 'access-control-request-headers': headers }) }
})

t.test('config: schema problems are refused with the path and reason', async (t) => {
  await t.resolves(createPluginHarness(cors, { origins: [APP] }))
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ origins: 'https://a.example.com' }, '/origins: must be an array'],
    [{ origins: [APP], methods: [] }, '/methods: must NOT have fewer than 1 items'],
    [{ origins: [APP], methods: ['GET POST'] }, '/methods/0: must match'],
    [{ origins: [APP], headers: ['x-a\r\nx-b: 1'] }, '/headers/0: must match'],
    [{ origins: [APP], exposeHeaders: ['a b'] }, '/exposeHeaders/0: must match'],
    [{ origins: [APP], maxAge: -1 }, '/maxAge: must be >= 0'],
    [{ origins: [APP], preflightStatus: 403 }, '/preflightStatus: must be one of: 200, 204'],
    [{ origins: [APP], deniedPreflightStatus: 401 }, '/deniedPreflightStatus: must be one of: 200, 204, 403'],
    [{ origins: [APP], credentials: 'yes' }, '/credentials: must be a boolean'],
    [{ origins: [APP], origin: APP }, "/: unknown property 'origin'"]
  ]
  for (const [config, line] of bad) {
    await t.rejects(createPluginHarness(cors, config), { code: 'GW_ERR_CONFIG_INVALID', details: [new RegExp('^' + esc(line))] }, JSON.stringify(config))
  }
})

t.test('config: what a schema cannot say is refused by create()', async (t) => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ origins: ['*'], credentials: true }, /^\/origins: '\*' cannot be used with credentials/],
    [{ origins: ['*', APP] }, /^\/origins: '\*' allows every origin: list it alone/],
    [{ origins: ['*'], originPatterns: ['^https://a\\.com$'] }, /^\/origins: '\*' allows every origin/],
    [{}, /^\/origins: give at least one origin/],
    [{ origins: [] }, /^\/origins: give at least one origin/],
    [{ origins: [APP + '/'] }, /^\/origins\/0: 'https:\/\/app.example.com\/' is not an origin.*\('https:\/\/app.example.com'\)/],
    [{ origins: [APP + '/path'] }, /^\/origins\/0: .* is not an origin/],
    [{ origins: ['app.example.com'] }, /^\/origins\/0: .* is not an origin/],
    [{ origins: ['https://user@app.example.com'] }, /^\/origins\/0: .* is not an origin/],
    [{ origins: [APP + '\r\nx-evil: 1'] }, /^\/origins\/0: 'https:\/\/app\.example\.com\\x0d\\x0ax-evil: 1' is not an origin/],
    [{ origins: ['https://app.example.com:99999'] }, /^\/origins\/0: .* is not an origin/],
    [{ origins: [APP, 'https://*example.com'] }, /^\/origins\/1: .* is not a wildcard origin/],
    [{ origins: ['https://api.*.example.com'] }, /^\/origins\/0: .* is not a wildcard origin/],
    [{ origins: ['https://*.com'] }, /^\/origins\/0: .* is not a wildcard origin/],
    [{ origins: ['https://*.example.com:*'] }, /^\/origins\/0: .* is not a wildcard origin/],
    [{ origins: ['*.example.com'] }, /^\/origins\/0: .* is not a wildcard origin/],
    [{ originPatterns: ['https://.*\\.example\\.com$'] }, /^\/originPatterns\/0: .* must be anchored: start it with '\^'/],
    [{ originPatterns: ['^https://.*\\.example\\.com'] }, /^\/originPatterns\/0: .* must be anchored: end it with '\$'/],
    [{ originPatterns: ['^https://a\\.com\\$'] }, /must be anchored: end it with '\$'/],
    [{ originPatterns: ['^https://a\\.com$|^https://b\\.com$'] }, /has '\|' outside a group/],
    [{ originPatterns: ['^https://([a-z0-9-]+\\.)+example\\.com$'] }, /repeats a group that holds a quantifier/],
    [{ originPatterns: ['^https://(a|ab)*\\.example\\.com$'] }, /repeats a group that holds an alternation/],
    [{ originPatterns: ['^https://(a)\\1\\.com$'] }, /must not use back-references/],
    [{ originPatterns: ['^https://[a-z$'] }, /^\/originPatterns\/0: .* is not a valid regular expression/],
    [{ origins: [APP], methods: ['*'] }, /^\/methods\/0: '\*' is not supported: list the methods/],
    [{ origins: [APP], headers: ['*'] }, /^\/headers\/0: '\*' is not supported: list the headers, or set mirrorRequestHeaders/],
    [{ origins: [APP], headers: ['x-a'], mirrorRequestHeaders: true }, /^\/headers: give headers or mirrorRequestHeaders, not both/],
    [{ origins: [APP], exposeHeaders: ['*'], credentials: true }, /^\/exposeHeaders\/0: '\*' means the header named \* with credentials/]
  ]
  for (const [config, message] of bad) {
    await t.rejects(createPluginHarness(cors, config), { message }, JSON.stringify(config))
  }
  // Allowed: '*' with 'null', '*' exposing every header without credentials, 'null' alone.
  await t.resolves(createPluginHarness(cors, { origins: ['*', 'null'], exposeHeaders: ['*'] }))
  await t.resolves(createPluginHarness(cors, { origins: ['null'] }))
  await t.resolves(createPluginHarness(cors, { originPatterns: ['^https://(app|admin)\\.example\\.(com|org)$', '^https://[a-z0-9.-]+\\.example\\.net(:[0-9]+)?$', '^http://localhost:[0-9]{4}$'] }))
})

t.test('origins: parsed strictly, compared canonically', async (t) => {
  t.equal(canonicalOrigin('HTTPS://App.Example.COM:443'), APP)
  t.equal(canonicalOrigin('http://localhost:80'), 'http://localhost')
  t.equal(canonicalOrigin('http://localhost:3000'), 'http://localhost:3000')
  t.equal(canonicalOrigin('http://[::1]:8080'), 'http://[::1]:8080')
  t.equal(canonicalOrigin('capacitor://localhost'), 'capacitor://localhost')
  for (const bad of ['null', '', 'https://', 'https://a.com/', 'https://a.com.', 'https://a..com', 'https://a.com:0', 'https://a.com:65536', 'https://a.com, https://b.com', 'https://a.com?x', 'https://u:p@a.com', 'https:a.com', 'x'.repeat(301)]) {
    t.equal(parseOrigin(bad), undefined, JSON.stringify(bad).slice(0, 40))
  }
  const w = parseWildcard('https://*.example.com')
  if (w === undefined) throw new Error('no wildcard')
  const table: Array<[string, boolean]> = [
    ['https://a.example.com', true],
    ['https://a.b.example.com', true],
    ['https://A.Example.com', true],
    ['https://a.example.com:443', true],
    ['https://example.com', false],
    ['https://evil-example.com', false],
    ['https://example.com.evil.com', false],
    ['https://a.example.com.evil.com', false],
    ['https://aexample.com', false],
    ['http://a.example.com', false],
    ['https://a.example.com:8443', false],
    ['https://.example.com', false]
  ]
  for (const [origin, want] of table) {
    const o = parseOrigin(origin)
    t.equal(o !== undefined && wildcardMatches(w, o), want, origin)
  }
  const wp = parseWildcard('https://*.example.com:8443')
  t.equal(wildcardMatches(wp!, parseOrigin('https://a.example.com:8443')!), true)
  t.equal(wildcardMatches(wp!, parseOrigin('https://a.example.com')!), false)
})

t.test('unsafePattern: a table of patterns', async (t) => {
  const ok = [
    '^https://app\\.example\\.com$',
    '^https://(?:app|admin)\\.example\\.com$',
    '^https://(www\\.)?example\\.com$',
    '^https://[a-z0-9-]+\\.example\\.com$',
    '^https://[a-z0-9.-]+\\.example\\.com(:[0-9]{2,5})?$',
    '^https://[()|+*]+\\.example\\.com$',
    '^https://a\\(b\\)+\\.com$',
    '^https://x{2}\\.com$'
  ]
  for (const p of ok) t.equal(unsafePattern(p), undefined, p)
  const bad = [
    'https://a\\.com$', '^https://a\\.com', '^https://a\\.com\\$', 'a|^b$',
    '^(a+)+$', '^(a*)*$', '^(a?){20}$', '^([a-z]+\\.)+com$', '^(a|a)+$', '^((a|b)c)+$', '^(a+){2,}$',
    '^(a)\\1$', '^(?<n>a)\\k<n>$', '^(a$', '^a)$'
  ]
  for (const p of bad) t.type(unsafePattern(p), 'string', p)
  t.equal(unsafePattern('^(a+)?$'), undefined, 'an optional group may hold a quantifier')
})

t.test('addVary merges, never duplicates, leaves * alone', async (t) => {
  t.equal(addVary(undefined, 'Origin'), 'Origin')
  t.equal(addVary('', 'Origin'), 'Origin')
  t.equal(addVary('Accept-Encoding', 'Origin'), 'Accept-Encoding, Origin')
  t.equal(addVary(['Accept-Encoding', 'Accept'], 'Origin'), 'Accept-Encoding, Accept, Origin')
  t.equal(addVary('accept-encoding, origin', 'Origin'), 'accept-encoding, origin')
  t.equal(addVary('*', 'Origin'), '*')
})

t.test('preflight: allowed ones are answered with the policy', async (t) => {
  const h = await createPluginHarness(cors, { origins: [APP, 'https://*.example.org'], headers: ['Content-Type', 'X-Api-Key'], exposeHeaders: ['ETag', 'X-Request-Id'], credentials: true, maxAge: 300 })
  const r = await h.request(preflightOf(APP, 'PUT', 'content-type,X-API-KEY'))
  t.equal(r.replied, true)
  t.equal(r.status, 204)
  t.equal(r.body, '', 'no problem+json body')
  t.same(r.responseHeaders, {
    'access-control-allow-origin': APP,
    'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE',
    'access-control-allow-headers': 'Content-Type, X-Api-Key',
    'access-control-allow-credentials': 'true',
    'access-control-max-age': '300',
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'
  })
  t.equal(r.ctx.outcome.code, undefined)
  const w = await h.request(preflightOf('https://a.b.example.org', 'GET'))
  t.equal(w.status, 204)
  t.equal(w.responseHeaders['access-control-allow-origin'], 'https://a.b.example.org')

  const status200 = await createPluginHarness(cors, { origins: [APP], preflightStatus: 200 })
  t.equal((await status200.request(preflightOf(APP, 'GET'))).status, 200)
})

t.test('preflight: refused ones get no Access-Control-Allow-* headers, and a reason code', async (t) => {
  const h = await createPluginHarness(cors, { origins: [APP, 'https://*.example.com'], methods: ['GET', 'POST'], headers: ['content-type'] })
  const cases: Array<[ReturnType<typeof preflightOf>, string]> = [
    [preflightOf('https://evil.com', 'GET'), 'CORS_ORIGIN_NOT_ALLOWED'],
    [preflightOf('https://evil-example.com', 'GET'), 'CORS_ORIGIN_NOT_ALLOWED'],
    [preflightOf('https://example.com.evil.com', 'GET'), 'CORS_ORIGIN_NOT_ALLOWED'],
    [preflightOf('https://a.example.com:8443', 'GET'), 'CORS_ORIGIN_NOT_ALLOWED'],
    [preflightOf('http://app.example.com', 'GET'), 'CORS_ORIGIN_NOT_ALLOWED'],
    [preflightOf('null', 'GET'), 'CORS_ORIGIN_NOT_ALLOWED'],
    [preflightOf(APP + '/', 'GET'), 'CORS_ORIGIN_NOT_ALLOWED'],
    [{ method: 'OPTIONS', headers: { origin: [APP, APP] as unknown as string, 'access-control-request-method': 'GET' } }, 'CORS_ORIGIN_NOT_ALLOWED'],
    [preflightOf(APP, 'DELETE'), 'CORS_METHOD_NOT_ALLOWED'],
    [preflightOf(APP, 'get'), 'CORS_METHOD_NOT_ALLOWED'],
    [preflightOf(APP, ''), 'CORS_METHOD_NOT_ALLOWED'],
    [preflightOf(APP, 'POST', 'content-type, x-secret'), 'CORS_HEADERS_NOT_ALLOWED'],
    [preflightOf(APP, 'POST', 'content type'), 'CORS_HEADERS_NOT_ALLOWED'],
    [preflightOf(APP, 'POST', Array.from({ length: 65 }, () => 'content-type').join(',')), 'CORS_HEADERS_NOT_ALLOWED']
  ]
  for (const [req, code] of cases) {
    const r = await h.request(req)
    const what = JSON.stringify(req.headers)
    t.equal(r.status, 204, what)
    t.equal(r.ctx.outcome.code, code, what)
    t.equal(r.body, '', what)
    t.same(Object.keys(r.responseHeaders), ['vary'], what)
  }
  // The safelisted case: no Access-Control-Request-Headers at all is fine.
  t.equal((await h.request(preflightOf(APP, 'POST'))).responseHeaders['access-control-allow-origin'], APP)
  t.equal((await h.request(preflightOf(APP, 'POST', ' , Content-Type '))).responseHeaders['access-control-allow-headers'], 'content-type')

  const strict = await createPluginHarness(cors, { origins: [APP], deniedPreflightStatus: 403 })
  const r = await strict.request(preflightOf('https://evil.com', 'GET'))
  t.equal(r.status, 403)
  t.match(r.body, { status: 403, code: 'CORS_ORIGIN_NOT_ALLOWED' })
  t.equal(r.responseHeaders['access-control-allow-origin'], undefined)
  t.equal((await strict.request(preflightOf(APP, 'GET'))).status, 204, 'allowed ones keep preflightStatus')
})

t.test('preflight: mirrored request headers, * and null', async (t) => {
  const mirror = await createPluginHarness(cors, { origins: [APP], mirrorRequestHeaders: true })
  const m = await mirror.request(preflightOf(APP, 'PUT', 'X-B, x-a,x-b'))
  t.equal(m.responseHeaders['access-control-allow-headers'], 'x-b, x-a')
  t.equal((await mirror.request(preflightOf(APP, 'PUT'))).responseHeaders['access-control-allow-headers'], undefined)

  const any = await createPluginHarness(cors, { origins: ['*'] })
  const a = await any.request(preflightOf('https://anything.test', 'GET'))
  t.equal(a.responseHeaders['access-control-allow-origin'], '*')
  t.equal(a.responseHeaders['access-control-allow-credentials'], undefined)
  t.equal((await any.request(preflightOf('null', 'GET'))).ctx.outcome.code, 'CORS_ORIGIN_NOT_ALLOWED', "'*' does not cover null")
  const anyNull = await createPluginHarness(cors, { origins: ['*', 'null'] })
  t.equal((await anyNull.request(preflightOf('null', 'GET'))).responseHeaders['access-control-allow-origin'], '*')
  const onlyNull = await createPluginHarness(cors, { origins: ['null'], credentials: true })
  t.equal((await onlyNull.request(preflightOf('null', 'GET'))).responseHeaders['access-control-allow-origin'], 'null')
})

t.test('regex origins are matched against the canonical origin', async (t) => {
  const h = await createPluginHarness(cors, { originPatterns: ['^https://(app|admin)\\.example\\.com$', '^http://localhost(:[0-9]+)?$'] })
  const table: Array<[string, boolean]> = [
    ['https://app.example.com', true],
    ['https://ADMIN.example.com', true],
    ['https://app.example.com:443', true],
    ['https://app.example.com.evil.com', false],
    ['https://xapp.example.com', false],
    ['http://localhost:5173', true],
    ['http://localhost', true],
    ['http://localhost.evil.com', false],
    ['http://localhost:5173/x', false]
  ]
  for (const [origin, want] of table) {
    const r = await h.request({ headers: { origin } })
    t.equal(r.responseHeaders['access-control-allow-origin'] === origin, want, origin)
  }
})

t.test('actual requests: headers for allowed origins; the upstream cannot widen the policy', async (t) => {
  const h = await createPluginHarness(cors, { origins: [APP], exposeHeaders: ['ETag'], credentials: true })
  const ok = await h.request({ headers: { origin: APP } })
  t.equal(ok.replied, false)
  // Vary is a 'default': a reply gets it as is, a proxied response merges it (below).
  t.same(ok.responseHeaders, { vary: 'Origin', 'access-control-allow-origin': APP, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'ETag' })
  const res = h.respond(ok, 200, { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'DELETE', 'access-control-allow-private-network': 'true', vary: 'Accept-Encoding', etag: '"1"' })
  t.same(res.headers, { 'access-control-allow-origin': APP, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'ETag', vary: 'Accept-Encoding, Origin', etag: '"1"' })

  const evil = await h.request({ headers: { origin: 'https://evil.com' } })
  t.same(evil.responseHeaders, { vary: 'Origin' })
  t.same(h.respond(evil, 200, { 'access-control-allow-origin': '*', 'Access-Control-Allow-Credentials': 'true', vary: ['Accept', 'Cookie'] as unknown as string }).headers, { vary: 'Accept, Cookie, Origin' })

  const none = await h.request({})
  t.same(none.responseHeaders, { vary: 'Origin' })
  t.same(h.respond(none, 200, {}).headers, { vary: 'Origin' }, 'Vary: Origin even without an Origin header')

  const noRoute = await h.request({ route: '', headers: { origin: APP } })
  t.equal(noRoute.responseHeaders.vary, 'Origin', 'a request that matches no route gets Vary too')

  const any = await createPluginHarness(cors, { origins: ['*'], exposeHeaders: ['*'] })
  t.same((await any.request({ headers: { origin: 'https://x.test' } })).responseHeaders, { vary: 'Origin', 'access-control-allow-origin': '*', 'access-control-expose-headers': '*' })
  // An OPTIONS without Access-Control-Request-Method is an actual request, passed on.
  const opt = await h.request({ method: 'OPTIONS', headers: { origin: APP } })
  t.equal(opt.replied, false)
  t.equal(opt.responseHeaders['access-control-allow-origin'], APP)
})

t.test('through the gateway: preflights, actual requests, 401s, Vary, the upstream overruled', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', vary: 'Accept-Encoding', 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true', etag: '"v1"' })
    res.end(JSON.stringify({ url: req.url }))
  })
  const KEY = 'cors-test-key-0123456789'
  const corsRef = { name: 'cors', config: { origins: [APP, 'https://*.example.com'], headers: ['content-type', 'apikey'], exposeHeaders: ['ETag'], credentials: true, maxAge: 120 } }
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      consumers: [{ id: 'alice', credentials: { keys: [{ key: KEY }] } }],
      routes: [
        { name: 'api', match: { path: '/api' }, upstream: up.url, plugins: [corsRef, { name: 'key-auth' }] },
        // Route-level cors on a route whose methods lack OPTIONS: the router answers 405 first.
        { name: 'get-only', match: { path: '/get-only', methods: ['GET'] }, upstream: up.url, plugins: [corsRef] }
      ]
    }
  })
  const send = async (path: string, headers: Record<string, string>, method = 'GET'): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> => {
    const r = await request(gw.url + path, { method: method as 'GET', headers })
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
  }

  const pre = await send('/api/orders', { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,apikey' }, 'OPTIONS')
  t.equal(pre.status, 204)
  t.equal(pre.headers['access-control-allow-origin'], APP)
  t.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT, PATCH, DELETE')
  t.equal(pre.headers['access-control-allow-headers'], 'content-type, apikey')
  t.equal(pre.headers['access-control-allow-credentials'], 'true')
  t.equal(pre.headers['access-control-max-age'], '120')
  t.match(pre.headers.vary, /^Origin\b/)
  t.equal(pre.body, '')

  // Refused preflights: answered at the gateway too, without the Allow headers.
  for (const origin of ['https://evil-example.com', 'https://example.com.evil.com', 'https://a.example.com:8443', 'https://example.com', 'null']) {
    const r = await send('/api/orders', { origin, 'access-control-request-method': 'GET' }, 'OPTIONS')
    t.equal(r.status, 204, origin)
    t.equal(r.headers['access-control-allow-origin'], undefined, origin)
    t.equal(r.headers['access-control-allow-methods'], undefined, origin)
  }
  const badHeader = await send('/api/orders', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-secret' }, 'OPTIONS')
  t.equal(badHeader.headers['access-control-allow-origin'], undefined)
  t.equal(up.seen.length, 0, 'no preflight reached the upstream, and none needed an API key')

  // An actual request from an allowed origin: the gateway's policy, the upstream's Vary kept.
  const ok = await send('/api/orders', { origin: 'https://shop.example.com', apikey: KEY })
  t.equal(ok.status, 200)
  t.equal(up.seen.length, 1)
  t.equal(ok.headers['access-control-allow-origin'], 'https://shop.example.com', 'the origin itself, not the upstream\'s *')
  t.equal(ok.headers['access-control-allow-credentials'], 'true')
  t.equal(ok.headers['access-control-expose-headers'], 'ETag')
  t.equal(ok.headers.vary, 'Accept-Encoding, Origin')
  t.equal(ok.headers.etag, '"v1"')

  // A disallowed origin: proxied (CORS is not access control), but nothing lets the page read it.
  const evil = await send('/api/orders', { origin: 'https://evil-example.com', apikey: KEY })
  t.equal(evil.status, 200)
  t.equal(evil.headers['access-control-allow-origin'], undefined, "the upstream's * is removed")
  t.equal(evil.headers['access-control-allow-credentials'], undefined)
  t.equal(evil.headers.vary, 'Accept-Encoding, Origin')

  // A 401 from key-auth is readable by the page: the CORS headers were set before it.
  const denied = await send('/api/orders', { origin: APP })
  t.equal(denied.status, 401)
  t.equal(denied.headers['access-control-allow-origin'], APP)
  t.equal(denied.headers['access-control-allow-credentials'], 'true')
  t.equal(denied.headers.vary, 'Origin', 'a reply varies by Origin too')
  t.match(JSON.parse(denied.body), { code: 'MISSING_API_KEY' })
  t.equal(up.seen.length, 2, 'the 401 was not proxied')

  // Route-level cors cannot answer a preflight the router refuses first (README).
  const r405 = await send('/get-only', { origin: APP, 'access-control-request-method': 'GET' }, 'OPTIONS')
  t.equal(r405.status, 405)
  t.equal(r405.headers['access-control-allow-origin'], undefined)
  t.equal(up.seen.length, 2)
})

t.test('through the gateway: global cors answers preflights on routes without OPTIONS, and on 404s', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      plugins: [{ name: 'security-headers' }, { name: 'cors', config: { origins: [APP], headers: ['content-type'] } }],
      routes: [{ name: 'get-only', match: { path: '/items', methods: ['GET', 'POST'] }, upstream: up.url }]
    }
  })
  const pre = await request(gw.url + '/items', { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
  await pre.body.text()
  t.equal(pre.statusCode, 204)
  t.equal(pre.headers['access-control-allow-origin'], APP)
  t.equal(pre.headers['access-control-allow-headers'], 'content-type')
  t.equal(pre.headers['x-content-type-options'], 'nosniff', 'security-headers, listed first, applies to the preflight answer too')
  t.equal(up.seen.length, 0)

  // A plain OPTIONS on that route is still the router's 405, with CORS headers for the page.
  const plain = await request(gw.url + '/items', { method: 'OPTIONS', headers: { origin: APP } })
  await plain.body.text()
  t.equal(plain.statusCode, 405)
  t.equal(plain.headers['access-control-allow-origin'], APP)
  t.equal(plain.headers.vary, 'Origin')

  const notFound = await request(gw.url + '/nothing-here', { headers: { origin: APP } })
  await notFound.body.text()
  t.equal(notFound.statusCode, 404)
  t.equal(notFound.headers['access-control-allow-origin'], APP)
  t.equal(notFound.headers.vary, 'Origin')

  const get = await request(gw.url + '/items', { headers: { origin: APP } })
  await get.body.text()
  t.equal(get.statusCode, 200)
  t.equal(get.headers['access-control-allow-origin'], APP)
  t.equal(get.headers['access-control-allow-credentials'], undefined)
  t.equal(get.headers.vary, 'Origin')
  t.equal(up.seen.length, 1)
})

t.test('validate refuses * with credentials, with the entry path', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'gateway.json')
  writeFileSync(file, JSON.stringify({
    plugins: [{ name: 'cors', config: { origins: ['*'], credentials: true } }],
    routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1', plugins: [{ name: 'cors', config: { origins: ['https://*.com'] } }] }]
  }))
  const r = await runCli(['validate', file])
  t.not(r.code, 0)
  t.match(r.stderr, /\/plugins\/0: plugin 'cors' failed in create\(\): \/origins: '\*' cannot be used with credentials/)
})

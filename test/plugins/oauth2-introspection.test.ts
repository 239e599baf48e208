import { createServer } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import t from 'tap'
import { Pool, request } from 'undici'
import introspection from '../../plugins/oauth2-introspection/index.js'
import { kTestInternals } from '../../plugins/oauth2-introspection/oauth2-introspection.js'
import { createPluginHarness } from '../../src/testing.js'
import type { Harness, HarnessOptions, HarnessResult } from '../../src/testing.js'
import type { AuthFailure, RequestContext } from '../../src/types.js'
import { deadPort, runCli, startGateway, startUpstream } from '../helpers/gateway.js'

interface Tap { teardown: (fn: () => void | Promise<void>) => void }

/** What the authorization server does for one token. */
interface Behaviour {
  /** The JSON body (default `{"active":false}`). */
  body?: unknown
  /** A body sent as is, instead of `body`. */
  raw?: string
  status?: number
  /** Answer this long after the request arrived. */
  delayMs?: number
}

interface Call { headers: IncomingHttpHeaders, form: URLSearchParams, raw: string }

interface AuthServer {
  /** The introspection endpoint. */
  url: string
  origin: string
  /** Every call, in arrival order. */
  calls: Call[]
  /** Calls for one token. */
  callsFor: (token: string) => number
  /** token -> behaviour; tokens not listed are inactive. */
  tokens: Map<string, Behaviour>
}

/**
 * A real RFC 7662 endpoint on 127.0.0.1: it records each call (headers and form) and answers
 * per token from `tokens`, possibly late or with an error status.
 */
async function startAuthServer (t: Tap): Promise<AuthServer> {
  const calls: Call[] = []
  const tokens = new Map<string, Behaviour>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString()
      const form = new URLSearchParams(raw)
      calls.push({ headers: req.headers, form, raw })
      const b = tokens.get(form.get('token') ?? '') ?? { body: { active: false } }
      const send = (): void => {
        if (res.destroyed) return
        const text = b.raw ?? JSON.stringify(b.body ?? { active: false })
        res.writeHead(b.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        res.end(text)
      }
      if (b.delayMs === undefined) send()
      else setTimeout(send, b.delayMs).unref()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url: `${origin}/oauth2/introspect`,
    origin,
    calls,
    callsFor: (token) => calls.filter((c) => c.form.get('token') === token).length,
    tokens
  }
}

const SECRET = 'gw-secret-0123456789'

async function harness (t: Tap, as: AuthServer, config: Record<string, unknown> = {}, opts: HarnessOptions = {}): Promise<Harness> {
  const h = await createPluginHarness(introspection, { endpoint: as.url, clientId: 'gateway', clientSecret: SECRET, ...config }, opts)
  t.teardown(() => h.close())
  return h
}

const bearer = (token: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${token}` } })

function failure (r: HarnessResult): AuthFailure | undefined {
  return r.authFailures[0]
}

t.test('config: inline in, success or a specific error out', async (t) => {
  const ok = { endpoint: 'https://as.example/introspect', clientId: 'gw', clientSecret: 's' }
  const h = await createPluginHarness(introspection, ok)
  await h.close()
  const bad: Array<[Record<string, unknown>, string[]]> = [
    [{}, ["/: must have property 'endpoint'", "/: must have property 'clientId'"]],
    [{ ...ok, endpoint: 'ftp://as.example/introspect' }, ['/endpoint: must be a URL (http:// or https://)']],
    [{ ...ok, endpoint: 'https://user:pw@as.example/introspect' }, ['/endpoint: must be a URL (http:// or https://)']],
    [{ ...ok, endpoint: 'not a url' }, ['/endpoint: must be a URL (http:// or https://)']],
    [{ ...ok, clientId: '' }, ['/clientId: must NOT have fewer than 1 characters']],
    [{ ...ok, authMethod: 'private_key_jwt' }, ['/authMethod: must be one of: "client_secret_basic", "client_secret_post"']],
    [{ ...ok, timeout: 0 }, ['/timeout: must be >= 1']],
    [{ ...ok, timeout: 'soon' }, ['/timeout: must be a duration such as 500ms, 10s or 2m']],
    [{ ...ok, cacheTtl: -1 }, ['/cacheTtl: must be >= 0']],
    [{ ...ok, onError: 'open' }, ['/onError: must be one of: "unavailable", "unauthorized"']],
    [{ ...ok, consumer: { claim: 'email' } }, ['/consumer/claim: must be one of: "sub", "client_id", "username"']],
    [{ ...ok, audience: [] }, ['/audience: must NOT have fewer than 1 items']],
    [{ ...ok, cacheSize: 0 }, ['/cacheSize: must be >= 1']],
    [{ ...ok, realm: 'a"b' }, ['/realm: must match ^[\\x20\\x21\\x23-\\x5B\\x5D-\\x7E]{1,64}$']],
    [{ ...ok, extra: 1 }, ["/: unknown property 'extra'"]]
  ]
  for (const [config, details] of bad) {
    await t.rejects(createPluginHarness(introspection, config), { code: 'GW_ERR_CONFIG_INVALID', details }, JSON.stringify(config))
  }
  // Checks across fields, in create().
  const { clientSecret: _, ...noSecret } = ok
  await t.rejects(createPluginHarness(introspection, noSecret), /^clientSecret or clientSecretFile is required/)
  await t.rejects(createPluginHarness(introspection, { ...ok, clientSecretFile: 'x' }), /set one of clientSecret and clientSecretFile, not both/)
  const dir = t.testdir({ empty: '\n', twolines: 'a\nb\n', good: 'from-a-file\n' })
  await t.rejects(createPluginHarness(introspection, { ...noSecret, clientSecretFile: join(dir, 'missing') }), /cannot read clientSecretFile .*missing: ENOENT/)
  await t.rejects(createPluginHarness(introspection, { ...noSecret, clientSecretFile: join(dir, 'empty') }), /clientSecretFile .*empty is empty/)
  await t.rejects(createPluginHarness(introspection, { ...noSecret, clientSecretFile: join(dir, 'twolines') }), /holds more than one line/)
  await t.rejects(createPluginHarness(introspection, { ...ok, endpoint: 'https://as.example/introspect#x' }), /endpoint must not have a #fragment/)
  await t.rejects(createPluginHarness(introspection, { ...ok, timeout: '0s' }), /timeout must be between 1ms and 60s/)
  await t.rejects(createPluginHarness(introspection, { ...ok, timeout: '2m' }), /timeout must be between 1ms and 60s/)
  const fromFile = await createPluginHarness(introspection, { ...noSecret, clientSecretFile: join(dir, 'good') })
  await fromFile.close()
  t.equal(introspection.phase, 'authn')
  t.equal(introspection.authenticates, true)
})

t.test('the bearer credential: missing, ambiguous, malformed, other schemes', async (t) => {
  const as = await startAuthServer(t)
  as.tokens.set('abc.DEF-ghi_jkl~+/x==', { body: { active: true, sub: 'alice' } })
  const h = await harness(t, as)
  const cases: Array<[Record<string, string | string[]>, string | undefined, number | undefined, boolean | undefined, string | undefined]> = [
    // headers, code, status, presented, challenge
    [{}, 'MISSING_TOKEN', 401, false, 'Bearer realm="tollgate"'],
    [{ authorization: 'Basic YTpi' }, 'MISSING_TOKEN', 401, false, 'Bearer realm="tollgate"'],
    [{ authorization: '' }, 'MISSING_TOKEN', 401, false, undefined],
    [{ authorization: 'Bearerabc' }, 'MISSING_TOKEN', 401, false, undefined],
    [{ authorization: 'Bearer' }, 'INVALID_TOKEN', 401, true, 'Bearer realm="tollgate", error="invalid_token"'],
    [{ authorization: 'Bearer a b' }, 'INVALID_TOKEN', 401, true, undefined],
    [{ authorization: 'Bearer a,Bearer b' }, 'INVALID_TOKEN', 401, true, undefined],
    [{ authorization: 'Bearer tok"en' }, 'INVALID_TOKEN', 401, true, undefined],
    [{ authorization: 'Bearer =abc' }, 'INVALID_TOKEN', 401, true, undefined],
    [{ authorization: `Bearer ${'a'.repeat(9000)}` }, 'INVALID_TOKEN', 401, true, undefined],
    [{ authorization: ['Bearer abc', 'Bearer abc'] }, 'AMBIGUOUS_CREDENTIALS', 400, true, undefined],
    [{ authorization: ['Bearer abc', 'Basic YTpi'] }, 'AMBIGUOUS_CREDENTIALS', 400, true, undefined],
    [{ authorization: 'Bearer abc.DEF-ghi_jkl~+/x==' }, undefined, undefined, undefined, undefined],
    [{ authorization: 'bEaReR   abc.DEF-ghi_jkl~+/x==' }, undefined, undefined, undefined, undefined]
  ]
  for (const [headers, code, status, presented, challenge] of cases) {
    const r = await h.request({ headers })
    const label = JSON.stringify(headers).slice(0, 80)
    t.equal(r.replied, false, `${label}: the plugin never answers itself`)
    const f = failure(r)
    if (code === undefined) {
      t.equal(r.consumer?.id, 'alice', `${label}: authenticated`)
      continue
    }
    t.equal(r.consumer, undefined, label)
    t.equal(f?.code, code, label)
    t.equal(f?.status, status, label)
    t.equal(f?.presented, presented, label)
    if (challenge !== undefined) t.equal(f?.challenge, challenge, label)
  }
  t.equal(as.calls.length, 1, 'only the well-formed token was introspected (then cached)')
  const custom = await harness(t, as, { realm: 'orders api' })
  t.equal(failure(await custom.request({}))?.challenge, 'Bearer realm="orders api"')
})

t.test('D3: only the boolean active: true passes', async (t) => {
  const as = await startAuthServer(t)
  const now = Math.floor(Date.now() / 1000)
  const cases: Array<[string, Behaviour, string | undefined]> = [
    ['t-inactive', { body: { active: false } }, 'INACTIVE_TOKEN'],
    ['t-string', { body: { active: 'true', sub: 'alice' } }, 'INACTIVE_TOKEN'],
    ['t-one', { body: { active: 1, sub: 'alice' } }, 'INACTIVE_TOKEN'],
    ['t-absent', { body: { sub: 'alice' } }, 'INACTIVE_TOKEN'],
    ['t-expired', { body: { active: true, sub: 'alice', exp: now - 5 } }, 'TOKEN_EXPIRED'],
    ['t-bad-exp', { body: { active: true, sub: 'alice', exp: 'tomorrow' } }, 'INVALID_CLAIMS'],
    ['t-bad-scope', { body: { active: true, sub: 'alice', scope: ['a'] } }, 'INVALID_CLAIMS'],
    ['t-no-sub', { body: { active: true, client_id: 'c1' } }, 'MISSING_CLAIM'],
    ['t-num-sub', { body: { active: true, sub: 42 } }, 'MISSING_CLAIM'],
    ['t-good', { body: { active: true, sub: 'alice', exp: now + 600 } }, undefined]
  ]
  for (const [token, b] of cases) as.tokens.set(token, b)
  const h = await harness(t, as)
  for (const [token, , code] of cases) {
    const r = await h.request(bearer(token))
    const f = failure(r)
    if (code === undefined) {
      t.equal(r.consumer?.id, 'alice', token)
      t.same(r.authFailures, [], token)
      continue
    }
    t.equal(r.consumer, undefined, `${token}: not authenticated`)
    t.equal(f?.code, code, token)
    t.equal(f?.status, 401, token)
    t.equal(f?.presented, true, token)
    t.equal(f?.challenge, 'Bearer realm="tollgate", error="invalid_token"', token)
    t.notMatch(JSON.stringify(r.authFailures), token, `${token}: the detail does not echo the token`)
  }
})

t.test('client credentials: client_secret_basic (form-encoded) and client_secret_post', async (t) => {
  const as = await startAuthServer(t)
  as.tokens.set('tok+/=', { body: { active: true, sub: 'alice' } })
  const id = 'gw:client 1'
  const secret = 's:c/r%t ü'
  const basic = await harness(t, as, { clientId: id, clientSecret: secret })
  t.equal((await basic.request(bearer('tok+/='))).consumer?.id, 'alice')
  const c1 = as.calls[0] as Call
  t.equal(c1.headers['content-type'], 'application/x-www-form-urlencoded')
  t.equal(c1.headers.accept, 'application/json')
  const auth = c1.headers.authorization ?? ''
  t.match(auth, /^Basic [A-Za-z0-9+/]+=*$/)
  const [user, pass] = Buffer.from(auth.slice(6), 'base64').toString().split(':')
  // RFC 6749 2.3.1: each part form-encoded before joining, so a ':' in the id is safe.
  t.equal(decodeURIComponent((user ?? '').replace(/\+/g, ' ')), id)
  t.equal(decodeURIComponent((pass ?? '').replace(/\+/g, ' ')), secret)
  t.equal(c1.form.get('token'), 'tok+/=', 'the token arrives intact (+, / and = encoded)')
  t.equal(c1.form.get('token_type_hint'), 'access_token')
  t.equal(c1.form.get('client_id'), null, 'basic: no credentials in the body')
  t.equal(c1.form.get('client_secret'), null)

  const post = await harness(t, as, { clientId: id, clientSecret: secret, authMethod: 'client_secret_post' })
  t.equal((await post.request(bearer('tok+/='))).consumer?.id, 'alice', 'another client: its own cache, its own call')
  const c2 = as.calls[1] as Call
  t.equal(c2.headers.authorization, undefined, 'post: no Authorization header')
  t.equal(c2.form.get('client_id'), id)
  t.equal(c2.form.get('client_secret'), secret)
  t.equal(c2.form.get('token'), 'tok+/=')
  t.equal(c2.form.get('token_type_hint'), 'access_token')
  t.equal(as.calls.length, 2)
})

t.test('consumer mapping, scopes, claims, issuer and audience checks', async (t) => {
  const as = await startAuthServer(t)
  const consumers: HarnessOptions['consumers'] = [
    { id: 'alice-app', groups: ['admins', 'staff'], scopes: ['never-from-tokens'], credentials: { subjects: [{ issuer: 'https://as.example', subject: 'alice' }] } },
    { id: 'bob-app', groups: ['staff'], credentials: { subjects: [{ issuer: as.origin, subject: 'bob' }] } },
    { id: 'svc', groups: ['services'], credentials: { subjects: [{ issuer: 'corp', subject: 'client-7' }] } }
  ]
  const alice = { active: true, sub: 'alice', iss: 'https://as.example', scope: 'orders:read  orders:write', aud: ['orders', 'billing'], client_id: 'client-7', username: 'alice@example' }
  as.tokens.set('t-alice', { body: alice })
  as.tokens.set('t-bob', { body: { active: true, sub: 'bob' } })
  as.tokens.set('t-carol', { body: { active: true, sub: 'carol', iss: 'https://as.example' } })
  as.tokens.set('t-other-iss', { body: { active: true, sub: 'alice', iss: 'https://evil.example', aud: 'orders' } })

  const h = await harness(t, as, {}, { consumers })
  const a = await h.request(bearer('t-alice'))
  t.equal(a.consumer?.id, 'alice-app', "mapped by (the response's iss, sub)")
  t.same(a.consumer?.groups, ['admins', 'staff'], 'groups from the configured consumer')
  t.same(a.consumer?.scopes, ['orders:read', 'orders:write'], "scopes from the response's scope only")
  t.same(a.consumer?.claims, alice, 'claims: the introspection response')
  t.equal(a.consumer?.via, 'oauth2-introspection')
  t.equal(a.consumer?.anonymous, false)
  const b = await h.request(bearer('t-bob'))
  t.equal(b.consumer?.id, 'bob-app', "no iss in the response: looked up under the endpoint's origin")
  const c = await h.request(bearer('t-carol'))
  t.equal(c.consumer?.id, 'carol', 'not a configured consumer: the claim value is the id')
  t.same(c.consumer?.groups, [])
  t.same(c.consumer?.scopes, [])

  // Same endpoint and client as h: the results are shared, the decisions are each instance's.
  const before = as.calls.length
  const strict = await harness(t, as, { consumer: { required: true } }, { consumers })
  t.equal((await strict.request(bearer('t-alice'))).consumer?.id, 'alice-app')
  const unknown = failure(await strict.request(bearer('t-carol')))
  t.equal(unknown?.code, 'UNKNOWN_CONSUMER')
  t.equal(unknown?.status, 401)
  t.equal(as.calls.length, before, 'a second instance with the same endpoint and client reuses the cached results')

  const byClient = await harness(t, as, { consumer: { claim: 'client_id', issuer: 'corp' } }, { consumers })
  t.equal((await byClient.request(bearer('t-alice'))).consumer?.id, 'svc', 'claim client_id under a configured issuer name')
  const byUser = await harness(t, as, { consumer: { claim: 'username' } }, { consumers })
  t.equal((await byUser.request(bearer('t-alice'))).consumer?.id, 'alice@example')
  t.equal(failure(await byUser.request(bearer('t-bob')))?.code, 'MISSING_CLAIM')

  const checked = await harness(t, as, { issuer: 'https://as.example', audience: ['orders', 'payments'] }, { consumers })
  t.equal((await checked.request(bearer('t-alice'))).consumer?.id, 'alice-app', 'iss equal, aud (an array) shares a member')
  t.equal(failure(await checked.request(bearer('t-other-iss')))?.code, 'WRONG_ISSUER')
  t.equal(failure(await checked.request(bearer('t-bob')))?.code, 'WRONG_ISSUER', 'no iss in the response: refused when an issuer is expected')
  const audOnly = await harness(t, as, { audience: 'payments' }, { consumers })
  t.equal(failure(await audOnly.request(bearer('t-alice')))?.code, 'WRONG_AUDIENCE')
  t.equal(failure(await audOnly.request(bearer('t-bob')))?.code, 'WRONG_AUDIENCE', 'no aud: refused when an audience is expected')
  const audString = await harness(t, as, { audience: 'orders' }, { consumers })
  t.equal((await audString.request(bearer('t-other-iss'))).consumer?.id, 'alice', 'aud as a string; iss not checked without issuer')

  const hidden = await harness(t, as, { hideCredentials: true }, { consumers })
  const hr = await hidden.request(bearer('t-alice'))
  t.equal(hr.upstreamHeaders.authorization, undefined, 'hideCredentials: the token does not go upstream')
  t.equal(a.upstreamHeaders.authorization, 'Bearer t-alice', 'by default it does')
})

t.test('an earlier authn plugin succeeded: nothing to do, no call', async (t) => {
  const as = await startAuthServer(t)
  const h = await harness(t, as)
  let failed = 0
  const ctx = {
    consumer: { id: 'someone', groups: [], scopes: [], claims: {}, anonymous: false, via: 'key-auth' },
    headers: { authorization: 'Bearer abc' },
    headerValues: () => ['Bearer abc'],
    authFailed: () => { failed++ },
    authenticate: () => { failed++ }
  } as unknown as RequestContext
  t.equal(h.hooks.onRequest?.(ctx), undefined)
  t.equal(failed, 0)
  t.equal(as.calls.length, 0)
})

t.test('a cache hit is synchronous: no promise, decided before the hook returns', async (t) => {
  const as = await startAuthServer(t)
  as.tokens.set('sync-tok', { body: { active: true, sub: 'alice', scope: 'a' } })
  const h = await harness(t, as)
  const first = await h.request(bearer('sync-tok'))
  t.equal(first.consumer?.id, 'alice')
  const seen: unknown[] = []
  const ctx = {
    consumer: undefined,
    headers: { authorization: 'Bearer sync-tok' },
    headerValues: () => ['Bearer sync-tok'],
    authFailed: (f: unknown) => seen.push(f),
    authenticate: (id: unknown) => seen.push(id),
    removeUpstreamHeader: () => {}
  } as unknown as RequestContext
  const r = h.hooks.onRequest?.(ctx)
  t.equal(r, undefined, 'the hook returned nothing')
  t.match(seen, [{ id: 'alice', scopes: ['a'] }], 'and already authenticated')
  t.equal(as.calls.length, 1)
})

t.test('the endpoint fails: fail closed, never cached', async (t) => {
  const as = await startAuthServer(t)
  const big = JSON.stringify({ active: true, sub: 'alice', pad: 'x'.repeat(70 * 1024) })
  const failing: Array<[string, Behaviour]> = [
    ['f-500', { status: 500, body: { error: 'boom' } }],
    ['f-503', { status: 503, raw: '' }],
    ['f-401', { status: 401, body: { error: 'invalid_client' } }],
    ['f-html', { raw: '<html>oops</html>' }],
    ['f-array', { raw: '[{"active":true}]' }],
    ['f-null', { raw: 'null' }],
    ['f-big', { raw: big }],
    ['f-slow', { delayMs: 3000, body: { active: true, sub: 'alice' } }]
  ]
  for (const [token, b] of failing) as.tokens.set(token, b)
  const unavailable = await harness(t, as, { timeout: '300ms' })
  const unauthorized = await harness(t, as, { timeout: '300ms', onError: 'unauthorized' })
  for (const [token] of failing) {
    for (const [h, status] of [[unavailable, 503], [unauthorized, 401]] as const) {
      const before = as.callsFor(token)
      const started = performance.now()
      const r = await h.request(bearer(token))
      const f = failure(r)
      t.equal(r.consumer, undefined, `${token}: not admitted`)
      t.equal(f?.code, 'INTROSPECTION_UNAVAILABLE', token)
      t.equal(f?.status, status, `${token}: onError -> ${status}`)
      t.equal(f?.presented, true)
      t.notMatch(JSON.stringify(r.authFailures), token)
      t.equal(as.callsFor(token), before + 1, `${token}: the server saw the call`)
      if (token === 'f-slow') t.ok(performance.now() - started < 2500, 'f-slow: refused at the timeout, not when the server answered (3 s)')
    }
  }
  // Not cached: once the server is fine, the same token passes on the next request.
  as.tokens.set('f-500', { body: { active: true, sub: 'alice' } })
  t.equal((await unavailable.request(bearer('f-500'))).consumer?.id, 'alice')

  const refused = await harness(t, { ...as, url: `http://127.0.0.1:${await deadPort()}/introspect` }, { timeout: '1s' })
  const r = await refused.request(bearer('any'))
  t.equal(failure(r)?.code, 'INTROSPECTION_UNAVAILABLE', 'connection refused')
  t.equal(failure(r)?.status, 503)
})

t.test('cache: TTL, negative TTL, size bound, digests only', async (t) => {
  const as = await startAuthServer(t)
  for (const tok of ['c-1', 'c-2', 'c-3', 'c-secret-token-value']) as.tokens.set(tok, { body: { active: true, sub: 'alice' } })
  as.tokens.set('c-off', { body: { active: false } })

  const cached = await harness(t, as, { cacheTtl: '1h', negativeCacheTtl: '1h' })
  for (let i = 0; i < 3; i++) await cached.request(bearer('c-1'))
  t.equal(as.callsFor('c-1'), 1, 'active: one call for three requests')
  for (let i = 0; i < 3; i++) t.equal(failure(await cached.request(bearer('c-off')))?.code, 'INACTIVE_TOKEN')
  t.equal(as.callsFor('c-off'), 1, 'inactive: cached for negativeCacheTtl')

  const noCache = await harness(t, as, { cacheTtl: 0, negativeCacheTtl: 0 })
  for (let i = 0; i < 3; i++) await noCache.request(bearer('c-2'))
  t.equal(as.callsFor('c-2'), 3, 'cacheTtl 0: every request calls')
  for (let i = 0; i < 2; i++) await noCache.request(bearer('c-off'))
  t.equal(as.callsFor('c-off'), 3, 'negativeCacheTtl 0: inactive results are not kept')

  const small = await harness(t, as, { cacheSize: 2 })
  await small.request(bearer('c-1'))
  await small.request(bearer('c-2'))
  await small.request(bearer('c-3'))
  const c1 = as.callsFor('c-1')
  await small.request(bearer('c-3'))
  t.equal(as.callsFor('c-3'), 1, 'c-3 still cached')
  await small.request(bearer('c-1'))
  t.equal(as.callsFor('c-1'), c1 + 1, 'cacheSize 2: the oldest entry (c-1) was dropped')
  for (let i = 0; i < 5; i++) t.equal(failure(await small.request(bearer(`made-up-${i}`)))?.code, 'INACTIVE_TOKEN')
  await small.request(bearer('c-1'))
  t.equal(as.callsFor('c-1'), c1 + 1, 'made-up (inactive) tokens do not push active results out')

  await cached.request(bearer('c-secret-token-value'))
  let entries = 0
  for (const cache of kTestInternals.caches.values()) {
    for (const [key, entry] of [...cache.active, ...cache.inactive]) {
      entries++
      t.notMatch(key, /c-/, 'keys are digests')
      t.notMatch(JSON.stringify(entry.response), 'c-secret-token-value')
    }
  }
  t.ok(entries > 0)
  const sizes = [...kTestInternals.caches.values()].flatMap((c) => [c.active.size, c.inactive.size])
  t.ok(sizes.every((n) => n <= 10000))
})

t.test('D5: TTL bounded by exp - now; a revoked token is refused once the TTL is over', async (t) => {
  const as = await startAuthServer(t)
  const h = await harness(t, as, { cacheTtl: '1h' })
  const exp = Math.floor(Date.now() / 1000) + 2
  as.tokens.set('d5-exp', { body: { active: true, sub: 'alice', exp } })
  t.equal((await h.request(bearer('d5-exp'))).consumer?.id, 'alice')
  const entry = [...kTestInternals.caches.values()].flatMap((c) => [...c.active.values()]).find((e) => e.response.exp === exp)
  t.ok(entry !== undefined && entry.expiresAt <= exp * 1000, 'cached until exp at the latest, though cacheTtl is 1h')
  // Bounded wait: past exp the entry is gone, the server is asked again and says expired.
  let code: string | undefined
  for (let i = 0; i < 60 && code === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    code = failure(await h.request(bearer('d5-exp')))?.code
  }
  t.equal(code, 'TOKEN_EXPIRED')
  t.ok(as.callsFor('d5-exp') >= 2, 'asked again after exp')

  const short = await harness(t, as, { cacheTtl: '500ms', negativeCacheTtl: '1h' })
  as.tokens.set('d5-rev', { body: { active: true, sub: 'alice' } })
  t.equal((await short.request(bearer('d5-rev'))).consumer?.id, 'alice')
  as.tokens.set('d5-rev', { body: { active: false } })
  let revoked: string | undefined
  for (let i = 0; i < 50 && revoked === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    revoked = failure(await short.request(bearer('d5-rev')))?.code
  }
  t.equal(revoked, 'INACTIVE_TOKEN', 'revoked at the server: refused after the TTL')
  const calls = as.callsFor('d5-rev')
  t.equal(failure(await short.request(bearer('d5-rev')))?.code, 'INACTIVE_TOKEN')
  t.equal(as.callsFor('d5-rev'), calls, 'and the refusal is cached (negativeCacheTtl)')
})

t.test('single flight in one thread: concurrent requests for one token make one call', async (t) => {
  const as = await startAuthServer(t)
  as.tokens.set('sf-ok', { delayMs: 200, body: { active: true, sub: 'alice' } })
  as.tokens.set('sf-500', { delayMs: 200, status: 500 })
  const h = await harness(t, as)
  const ok = await Promise.all(Array.from({ length: 200 }, () => h.request(bearer('sf-ok'))))
  t.equal(ok.filter((r) => r.consumer?.id === 'alice').length, 200)
  t.equal(as.callsFor('sf-ok'), 1)
  const failed = await Promise.all(Array.from({ length: 50 }, () => h.request(bearer('sf-500'))))
  t.equal(failed.filter((r) => failure(r)?.code === 'INTROSPECTION_UNAVAILABLE').length, 50)
  t.equal(as.callsFor('sf-500'), 1, 'a failing call is shared too, and then forgotten')
  await h.request(bearer('sf-500'))
  t.equal(as.callsFor('sf-500'), 2)
})

t.test('close() releases the pool and the cache once no instance uses them', async (t) => {
  const as = await startAuthServer(t)
  const cfg = { endpoint: as.url, clientId: 'release-test', clientSecret: SECRET }
  const a = await createPluginHarness(introspection, cfg)
  const b = await createPluginHarness(introspection, cfg)
  t.ok(kTestInternals.pools.has(as.origin))
  const count = (): number => [...kTestInternals.caches.keys()].filter((k) => k.includes('release-test')).length
  t.equal(count(), 1, 'one cache for both instances')
  await a.close()
  t.ok(kTestInternals.pools.has(as.origin), 'still used by b')
  t.equal(count(), 1)
  await b.close()
  t.notOk(kTestInternals.pools.has(as.origin))
  t.equal(count(), 0)
})

async function text (url: string, headers: Record<string, string> | string[] = {}): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> {
  const r = await request(url, { headers })
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
}

t.test('end to end: the gateway binary, a real server and upstream', async (t) => {
  const as = await startAuthServer(t)
  const up = await startUpstream(t)
  const now = Math.floor(Date.now() / 1000)
  as.tokens.set('e2e-alice', { body: { active: true, sub: 'alice', iss: 'https://as.example', scope: 'orders:read orders:write', exp: now + 3600 } })
  as.tokens.set('e2e-stranger', { body: { active: true, sub: 'stranger', scope: 'orders:read' } })
  as.tokens.set('e2e-off', { body: { active: false } })
  as.tokens.set('e2e-string', { body: { active: 'true', sub: 'alice' } })
  as.tokens.set('e2e-500', { status: 500 })
  as.tokens.set('e2e-slow', { delayMs: 10_000, body: { active: true, sub: 'alice' } })
  as.tokens.set('e2e-revoke', { body: { active: true, sub: 'alice' } })
  const plugin = (config: Record<string, unknown> = {}): Record<string, unknown> => ({
    name: 'oauth2-introspection',
    config: { endpoint: as.url, clientId: 'gateway', clientSecretFile: 'introspection.secret', timeout: '500ms', ...config }
  })
  const gw = await startGateway(t, {
    files: { 'introspection.secret': `${SECRET}\n` },
    config: {
      logLevel: 'warn',
      consumers: [{ id: 'alice-app', groups: ['admins'], credentials: { subjects: [{ issuer: 'https://as.example', subject: 'alice' }] } }],
      routes: [
        { name: 'strict', match: { path: '/strict' }, upstream: up.url, plugins: [plugin({ onError: 'unauthorized', hideCredentials: true })] },
        { name: 'short', match: { path: '/short' }, upstream: up.url, plugins: [plugin({ cacheTtl: '500ms', negativeCacheTtl: '1h' })] },
        { name: 'api', match: { path: '/api' }, upstream: up.url, plugins: [plugin()] }
      ]
    }
  })

  const missing = await text(`${gw.url}/api/orders`)
  t.equal(missing.status, 401)
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="tollgate"', 'no token: a bare challenge (RFC 6750 3.1)')
  t.match(JSON.parse(missing.body), { code: 'MISSING_TOKEN' })

  const ok = await text(`${gw.url}/api/orders`, { authorization: 'Bearer e2e-alice', 'x-consumer-id': 'mallory', 'x-consumer-groups': 'root', 'x-authenticated-scope': 'everything' })
  t.equal(ok.status, 200)
  const seen = up.seen.at(-1)
  t.equal(seen?.headers['x-consumer-id'], 'alice-app', 'the mapped consumer, not what the client sent')
  t.equal(seen?.headers['x-consumer-groups'], 'admins')
  t.equal(seen?.headers['x-authenticated-scope'], 'orders:read orders:write')
  t.equal(seen?.headers.authorization, 'Bearer e2e-alice', 'the token goes upstream by default')
  t.equal(up.seen.filter((s) => JSON.stringify(s.rawHeaders).includes('mallory')).length, 0, 'no client-sent identity header reached the upstream')

  const stranger = await text(`${gw.url}/strict/x`, { authorization: 'Bearer e2e-stranger', 'x-consumer-id': 'mallory' })
  t.equal(stranger.status, 200)
  t.equal(up.seen.at(-1)?.headers['x-consumer-id'], 'stranger', 'unmapped: the sub')
  t.equal(up.seen.at(-1)?.headers['x-consumer-groups'], undefined)
  t.equal(up.seen.at(-1)?.headers.authorization, undefined, 'hideCredentials')

  const upstreamBefore = up.seen.length
  // D3
  for (const token of ['e2e-off', 'e2e-string']) {
    const r = await text(`${gw.url}/api/x`, { authorization: `Bearer ${token}` })
    t.equal(r.status, 401, token)
    t.equal(r.headers['www-authenticate'], 'Bearer realm="tollgate", error="invalid_token"', token)
    t.match(JSON.parse(r.body), { status: 401, code: 'INACTIVE_TOKEN' })
    t.notMatch(r.body, token, 'the answer does not echo the token')
  }
  // Duplicate Authorization lines.
  const dup = await text(`${gw.url}/api/x`, ['authorization', 'Bearer e2e-alice', 'authorization', 'Bearer e2e-off'])
  t.equal(dup.status, 400)
  t.match(JSON.parse(dup.body), { code: 'AMBIGUOUS_CREDENTIALS' })

  // D4: 5xx and a slow server, both onError choices.
  for (const [path, status] of [['/api/x', 503], ['/strict/x', 401]] as const) {
    for (const token of ['e2e-500', 'e2e-slow']) {
      const before = as.callsFor(token)
      const started = performance.now()
      const r = await text(`${gw.url}${path}`, { authorization: `Bearer ${token}` })
      t.equal(r.status, status, `${path} ${token}`)
      t.match(JSON.parse(r.body), { code: 'INTROSPECTION_UNAVAILABLE' })
      t.notMatch(r.body, token)
      t.ok(as.callsFor(token) > before, `${path} ${token}: the server saw the call`)
      if (token === 'e2e-slow') t.ok(performance.now() - started < 5000, 'answered at the 500 ms timeout, not when the server did (10 s)')
    }
  }
  t.equal(up.seen.length, upstreamBefore, 'nothing refused reached the upstream')

  // D5: revoked at the server, refused once the (short) TTL is over.
  t.equal((await text(`${gw.url}/short/x`, { authorization: 'Bearer e2e-revoke' })).status, 200)
  as.tokens.set('e2e-revoke', { body: { active: false } })
  let status = 200
  for (let i = 0; i < 50 && status === 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    status = (await text(`${gw.url}/short/x`, { authorization: 'Bearer e2e-revoke' })).status
  }
  t.equal(status, 401, 'the revocation is seen within the TTL')

  // Single flight per worker thread: this gateway has 2, so at most 2 calls.
  as.tokens.set('e2e-burst', { delayMs: 300, body: { active: true, sub: 'alice', iss: 'https://as.example' } })
  const pool = new Pool(gw.url, { connections: 100 })
  t.teardown(() => pool.close())
  const codes = await Promise.all(Array.from({ length: 200 }, async () => {
    const r = await pool.request({ method: 'GET', path: '/api/burst', headers: { authorization: 'Bearer e2e-burst' } })
    await r.body.dump()
    return r.statusCode
  }))
  t.equal(codes.filter((c) => c === 200).length, 200)
  t.ok(as.callsFor('e2e-burst') >= 1 && as.callsFor('e2e-burst') <= 2, `at most one call per worker (${as.callsFor('e2e-burst')})`)

  // Every call the server saw carried the gateway's credentials.
  const basic = 'Basic ' + Buffer.from(`gateway:${SECRET}`).toString('base64')
  t.ok(as.calls.every((c) => c.headers.authorization === basic), 'secret read from the file, relative to the config')
  t.notOk(gw.lines.some((l) => JSON.stringify(l).includes('e2e-')), 'no token in the gateway log')
  t.ok(gw.lines.some((l) => l.msg === 'oauth2-introspection: the introspection endpoint failed; requests are refused'), 'failures are logged')
})

t.test('D6: 1000 concurrent requests, one uncached token, one worker: exactly one call', async (t) => {
  const as = await startAuthServer(t)
  const up = await startUpstream(t)
  // The server holds its answer, so most requests arrive while the call is in flight; any
  // that arrive after it find the result cached. Either way: one call.
  as.tokens.set('d6-token', { delayMs: 500, body: { active: true, sub: 'alice', scope: 'read' } })
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'warn',
      routes: [{ name: 'api', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'oauth2-introspection', config: { endpoint: as.url, clientId: 'gateway', clientSecret: SECRET, authMethod: 'client_secret_post' } }] }]
    }
  })
  const pool = new Pool(gw.url, { connections: 1000 })
  t.teardown(() => pool.close())
  const codes = await Promise.all(Array.from({ length: 1000 }, async () => {
    const r = await pool.request({ method: 'GET', path: '/d6', headers: { authorization: 'Bearer d6-token' } })
    await r.body.dump()
    return r.statusCode
  }))
  t.equal(codes.filter((c) => c === 200).length, 1000, 'all admitted')
  t.equal(as.callsFor('d6-token'), 1, 'exactly one introspection call')
  t.equal(as.calls[0]?.form.get('client_secret'), SECRET, 'client_secret_post through the gateway')
  t.equal(up.seen.filter((s) => s.headers['x-consumer-id'] === 'alice' && s.headers['x-authenticated-scope'] === 'read').length, 1000)
})

t.test('a reload keeps the cached results and makes the decisions again', async (t) => {
  const as = await startAuthServer(t)
  const up = await startUpstream(t)
  as.tokens.set('rl-token', { body: { active: true, sub: 'dana', iss: 'https://as.example' } })
  const dir = t.testdir({})
  const file = join(dir, 'gateway.json')
  const write = (consumers: unknown[]): void => writeFileSync(file, JSON.stringify({
    listen: { host: '127.0.0.1', port: 0 },
    workers: 1,
    logLevel: 'info',
    consumers,
    routes: [{ name: 'api', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'oauth2-introspection', config: { endpoint: as.url, clientId: 'gateway', clientSecret: SECRET } }] }]
  }))
  write([])
  const gw = await startGateway(t, { args: ['--config', file] })
  const consumerId = async (): Promise<unknown> => {
    const r = await request(`${gw.url}/x`, { headers: { authorization: 'Bearer rl-token' } })
    await r.body.dump()
    t.equal(r.statusCode, 200)
    return up.seen.at(-1)?.headers['x-consumer-id']
  }
  t.equal(await consumerId(), 'dana')
  write([{ id: 'dana-app', groups: ['ops'], credentials: { subjects: [{ issuer: 'https://as.example', subject: 'dana' }] } }])
  const applied = gw.lines.length
  gw.proc.kill('SIGHUP')
  await gw.waitFor((l) => l.msg === 'policy update applied' && gw.lines.indexOf(l) >= applied)
  t.equal(await consumerId(), 'dana-app', 'the new consumer list applies at once')
  t.equal(up.seen.at(-1)?.headers['x-consumer-groups'], 'ops')
  t.equal(as.callsFor('rl-token'), 1, 'no second call: the cache outlived the old generation')
})

t.test('validate: the CLI refuses a config without client credentials', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'g.json')
  writeFileSync(file, JSON.stringify({ routes: [{ name: 'a', match: { path: '/' }, upstream: 'http://127.0.0.1:1', plugins: [{ name: 'oauth2-introspection', config: { endpoint: 'https://as.example/introspect', clientId: 'gw' } }] }] }))
  const r = await runCli(['validate', file])
  t.equal(r.code, 2)
  t.match(r.stderr, /routes\/0\/plugins\/0: plugin 'oauth2-introspection' failed in create\(\): clientSecret or clientSecretFile is required/)
})

import { constants, createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import jwtAuth from '../../plugins/jwt-auth/index.js'
import { jwtAuthInternals } from '../../plugins/jwt-auth/jwt-auth.js'
import { kTestInternals } from '../../src/symbols.js'
import { createPluginHarness } from '../../src/testing.js'
import type { HarnessResult } from '../../src/testing.js'
import type { RequestContext } from '../../src/types.js'
import { FIXTURES, rawRequest, runCli, startGateway, startUpstream } from '../helpers/gateway.js'
import type { RunningGateway, Upstream } from '../helpers/gateway.js'

type Json = Record<string, unknown>
interface Tap { teardown: (fn: () => void | Promise<void>) => void }

/* ---------------------------------- keys ---------------------------------- */

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ecOther = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ed = generateKeyPairSync('ed25519')
const SECRET = 'a-shared-secret-of-at-least-32-bytes!'
const OTHER_SECRET = 'another-shared-secret-of-32-bytes-or-more'
const spki = (k: KeyObject): string => k.export({ type: 'spki', format: 'pem' }) as string
const jwkOf = (k: KeyObject, extra: Json = {}): Json => ({ ...k.export({ format: 'jwk' }), ...extra })
const RSA_PEM = spki(rsa.publicKey)

const b64u = (v: string | Buffer): string => Buffer.from(v).toString('base64url')
const now = (): number => Math.floor(Date.now() / 1000)

interface Signer { alg: string, key: KeyObject | string }

/** A compact JWS made by hand, so that tests can sign whatever header an attacker would. */
function jwt (header: Json, payload: Json, s?: Signer): string {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`
  if (s === undefined) return `${input}.`
  const data = Buffer.from(input)
  const bits = s.alg.slice(2)
  let sig: Buffer
  if (s.alg.startsWith('HS')) sig = createHmac(`sha${bits}`, s.key as string).update(data).digest()
  else if (s.alg.startsWith('RS')) sig = cryptoSign(`sha${bits}`, data, s.key as KeyObject)
  else if (s.alg.startsWith('PS')) sig = cryptoSign(`sha${bits}`, data, { key: s.key as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(bits) / 8 })
  else if (s.alg.startsWith('ES')) sig = cryptoSign(`sha${bits}`, data, { key: s.key as KeyObject, dsaEncoding: 'ieee-p1363' })
  else sig = cryptoSign(null, data, s.key as KeyObject)
  return `${input}.${sig.toString('base64url')}`
}

const ISS = {
  rs: 'https://rs.test',
  es: 'https://es.test',
  ed: 'https://ed.test',
  hs: 'https://hs.test',
  typ: 'https://typ.test',
  age: 'https://age.test',
  mixed: 'https://mixed.test',
  jwks: 'https://jwks.test'
}
const RS: Signer = { alg: 'RS256', key: rsa.privateKey }
const ES: Signer = { alg: 'ES256', key: ec.privateKey }
const HS: Signer = { alg: 'HS256', key: SECRET }

const claims = (iss: string, extra: Json = {}): Json => ({ iss, sub: 'u-1', aud: 'api', iat: now(), exp: now() + 600, ...extra })
const good = (iss: string, s: Signer, extra: Json = {}, header: Json = {}): string => jwt({ alg: s.alg, typ: 'JWT', ...header }, claims(iss, extra), s)

function flipBit (token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string]
  const sig = Buffer.from(s, 'base64url')
  sig[sig.length >> 1] = (sig[sig.length >> 1] as number) ^ 0x01
  return `${h}.${p}.${sig.toString('base64url')}`
}

/* --------------------------------- servers --------------------------------- */

interface KeyServer {
  url: string
  /** Path -> the keys served there. */
  keys: Map<string, Json[]>
  /** Path -> requests received (every one, failed or not). */
  hits: (path: string) => number
  /** Path -> performance.now() of the last key set served. */
  servedAt: (path: string) => number
  /** Path -> 'up' | 'down' (503) | 'hang' (never answers). */
  mode: Map<string, 'up' | 'down' | 'hang'>
}

/** A JWKS server on 127.0.0.1 that counts every request, also serving as the attacker's. */
async function startKeyServer (t: Tap): Promise<KeyServer> {
  const keys = new Map<string, Json[]>()
  const mode = new Map<string, 'up' | 'down' | 'hang'>()
  const counts = new Map<string, number>()
  const served = new Map<string, number>()
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] as string
    counts.set(path, (counts.get(path) ?? 0) + 1)
    const m = mode.get(path) ?? 'up'
    if (m === 'hang') return
    const set = keys.get(path)
    if (m === 'down' || set === undefined) {
      res.writeHead(m === 'down' ? 503 : 404).end()
      return
    }
    const body = JSON.stringify({ keys: set })
    served.set(path, performance.now())
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, keys, mode, hits: (p) => counts.get(p) ?? 0, servedAt: (p) => served.get(p) ?? 0 }
}

interface Answer { status: number, code: string | undefined, challenge: string | string[] | undefined, retryAfter: string | string[] | undefined, body: string }

async function call (gw: RunningGateway, path: string, token?: string, headers: Record<string, string> = {}): Promise<Answer> {
  const r = await request(gw.url + path, { headers: token === undefined ? headers : { ...headers, authorization: `Bearer ${token}` }, reset: true })
  const body = await r.body.text()
  let code: string | undefined
  try { code = (JSON.parse(body) as Json).code as string | undefined } catch { code = undefined }
  return { status: r.statusCode, code, challenge: r.headers['www-authenticate'], retryAfter: r.headers['retry-after'], body }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Poll until `pred` holds, at most `ms`. */
async function until (pred: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms
  while (!pred() && performance.now() < end) await sleep(20)
  return pred()
}
const internals = jwtAuthInternals[kTestInternals]

/* ------------------------------ config (harness) ------------------------------ */

t.test('config: inline in, success or a specific error out', async (t) => {
  const ok = (issuer: Json, extra: Json = {}): Json => ({ issuers: [{ issuer: 'https://i.test', ...issuer }], ...extra })
  await t.resolves(createPluginHarness(jwtAuth, ok({ algorithms: ['RS256', 'PS256'], keys: [{ pem: RSA_PEM }] })))
  await t.resolves(createPluginHarness(jwtAuth, ok({ algorithms: ['ES256'], keys: [{ jwk: jwkOf(ec.publicKey, { kid: 'a' }) }, { jwk: jwkOf(ecOther.publicKey, { kid: 'b' }) }] })))
  await t.resolves(createPluginHarness(jwtAuth, ok({ algorithms: ['EdDSA'], keys: [{ pem: spki(ed.publicKey) }] })))
  await t.resolves(createPluginHarness(jwtAuth, ok({ algorithms: ['HS256'], keys: [{ secret: randomBytes(32).toString('base64'), encoding: 'base64' }] })))
  await t.resolves(createPluginHarness(jwtAuth, ok({ algorithms: ['HS256'], keys: [{ jwk: { kty: 'oct', k: randomBytes(32).toString('base64url') } }] })))
  await t.resolves(createPluginHarness(jwtAuth, ok({ algorithms: ['RS256'], keys: [{ pem: rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string }] })), 'PKCS#1 PEM')
  await t.resolves(createPluginHarness(jwtAuth, ok({ algorithms: ['ES256'], keys: [{ pemFile: join(FIXTURES, 'jwt-auth/es256-cert.pem') }] })), 'an X.509 certificate')
  await t.rejects(createPluginHarness(jwtAuth, ok({ algorithms: ['RS256'], keys: [{ pemFile: join(FIXTURES, 'jwt-auth/es256-cert.pem') }] })), { message: /an EC P-256 public key fits none of the issuer's algorithms \(RS256\)/ })

  const dir = t.testdir({ 'short.txt': 'x'.repeat(31) + '\n', 'pub.pem': RSA_PEM })
  const schemaErrors: Array<[Json, string]> = [
    [{}, "/: must have property 'issuers'"],
    [{ issuers: [] }, '/issuers: must NOT have fewer than 1 items'],
    [ok({ algorithms: ['none'], keys: [{ secret: SECRET }] }), '/issuers/0/algorithms/0: must be one of: "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519", "HS256", "HS384", "HS512"'],
    [ok({ algorithms: [] }), '/issuers/0/algorithms: must NOT have fewer than 1 items'],
    [ok({ algorithms: ['HS256'], keys: [{ secret: SECRET }] }, { token: { maxBytes: 10 } }), '/token/maxBytes: must be >= 256'],
    [ok({ algorithms: ['HS256'], keys: [{ secret: SECRET }] }, { forwardClaims: { email: 'Bad Header' } }), "/forwardClaims/email: must match ^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"],
    [ok({ algorithms: ['HS256'], keys: [{ secret: SECRET }] }, { realm: 'a"b' }), '/realm: must match ^[\\x20\\x21\\x23-\\x5B\\x5D-\\x7E]{1,64}$'],
    [ok({ algorithms: ['HS256'], keys: [{ secret: SECRET }], extra: 1 }), "/issuers/0: unknown property 'extra'"]
  ]
  for (const [config, line] of schemaErrors) {
    await t.rejects(createPluginHarness(jwtAuth, config), { code: 'GW_ERR_CONFIG_INVALID', details: [line] }, line)
  }

  const createErrors: Array<[Json, RegExp]> = [
    [ok({ algorithms: ['HS256'], keys: [{ pem: RSA_PEM }] }), /^\/issuers\/0\/keys\/0: an RSA public key fits none of the issuer's algorithms \(HS256\)$/],
    [ok({ algorithms: ['RS256'], keys: [{ secret: SECRET }] }), /^\/issuers\/0\/keys\/0: a shared secret fits none of the issuer's algorithms \(RS256\); a secret needs an HS algorithm$/],
    [ok({ algorithms: ['RS256', 'HS256'], keys: [{ pem: RSA_PEM }] }), /^\/issuers\/0: HS256 needs a shared secret of at least 32 bytes \(secret, secretFile or an oct jwk\) in keys$/],
    [ok({ algorithms: ['ES256'], keys: [{ pem: RSA_PEM }] }), /^\/issuers\/0\/keys\/0: an RSA public key fits none/],
    [ok({ algorithms: ['ES384'], keys: [{ jwk: jwkOf(ec.publicKey) }] }), /^\/issuers\/0\/keys\/0: an EC P-256 public key fits none of the issuer's algorithms \(ES384\)$/],
    [ok({ algorithms: ['HS256'], keys: [{ secretFile: join(dir, 'short.txt') }] }), /^\/issuers\/0\/keys\/0: HS256 needs a secret of at least 32 bytes \(RFC 7518 §3\.2\); this one has 31$/],
    [ok({ algorithms: ['HS256'], keys: [{ secretFile: join(dir, 'missing.txt') }] }), /^\/issuers\/0\/keys\/0: cannot read .*missing\.txt: ENOENT$/],
    [ok({ algorithms: ['HS256'], keys: [{ secret: 'x'.repeat(31) }] }), /^\/issuers\/0\/keys\/0: HS256 needs a secret of at least 32 bytes \(RFC 7518 §3\.2\); this one has 31$/],
    [ok({ algorithms: ['HS512'], keys: [{ secret: 'x'.repeat(40) }] }), /HS512 needs a secret of at least 64 bytes/],
    [ok({ algorithms: ['HS256'], keys: [{ secret: RSA_PEM }] }), /^\/issuers\/0\/keys\/0: this looks like a PEM key, not a shared secret; a public key goes in pem$/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }] }), /this is a private key; give the public key or certificate/],
    [ok({ algorithms: ['ES256'], keys: [{ jwk: ec.privateKey.export({ format: 'jwk' }) }] }), /this JWK is a private key/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: 'not a pem' }] }), /^\/issuers\/0\/keys\/0: not a usable PEM public key or certificate/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: spki(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey) }] }), /RSA keys must be 2048 bits or larger/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM, secret: SECRET }] }), /give exactly one of pem, pemFile, jwk, secret, secretFile \(got pem, secret\)/],
    [ok({ algorithms: ['RS256'], keys: [{}] }), /give exactly one of pem, pemFile, jwk, secret, secretFile$/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM, encoding: 'base64' }] }), /encoding applies to secret and secretFile only/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM }, { pem: spki(rsa2.publicKey) }] }), /several RS256 keys have no kid; give each a kid/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM, kid: 'k' }, { pem: spki(rsa2.publicKey), kid: 'k' }] }), /kid 'k' is used twice for RS256/],
    [ok({ algorithms: ['ES256'], keys: [{ jwk: jwkOf(ec.publicKey, { alg: 'ES384' }) }] }), /the JWK's alg ES384 is not among the issuer's algorithms/],
    [ok({ algorithms: ['RS256'] }), /^\/issuers\/0: give keys or jwks$/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM }], jwks: { url: 'https://idp.test/jwks' } }), /^\/issuers\/0: give keys or jwks, not both$/],
    [ok({ algorithms: ['HS256'], jwks: { url: 'https://idp.test/jwks' } }), /HS256 needs a shared secret in keys; a JWKS URL cannot carry one/],
    [ok({ algorithms: ['RS256'], jwks: { url: 'http://idp.test/jwks' } }), /\/issuers\/0\/jwks\/url: must be https:\/\/ \(http:\/\/ only for a loopback host\)/],
    [ok({ algorithms: ['RS256'], jwks: { url: 'nope' } }), /\/issuers\/0\/jwks\/url: not a URL/],
    [ok({ algorithms: ['RS256'], jwks: { url: 'https://idp.test/jwks', cooldownDuration: '10ms' } }), /cooldownDuration: must be at least 1s/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM }] }, { token: { header: false } }), /^\/token: no token source/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM }] }, { forwardClaims: { sub: 'X-Consumer-Id' } }), /X-Consumer-Id cannot carry a claim/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM }] }, { forwardClaims: { sub: 'Host' } }), /Host cannot carry a claim/],
    [ok({ algorithms: ['RS256'], keys: [{ pem: RSA_PEM }] }, { forwardClaims: { a: 'X-A', b: 'x-a' } }), /x-a is used by two claims/],
    [{ issuers: [{ issuer: 'https://i.test', algorithms: ['RS256'], keys: [{ pem: RSA_PEM }] }, { issuer: 'https://i.test', algorithms: ['ES256'], keys: [{ jwk: jwkOf(ec.publicKey) }] }] }, /^\/issuers\/1: issuer 'https:\/\/i.test' is listed twice$/]
  ]
  for (const [config, message] of createErrors) {
    await t.rejects(createPluginHarness(jwtAuth, config), { message }, String(message))
  }
  await t.resolves(createPluginHarness(jwtAuth, ok({ algorithms: ['RS256'], keys: [{ pemFile: join(dir, 'pub.pem') }] })), 'pemFile')
})

t.test('validate reports a key mismatch with its entry path', async (t) => {
  const dir = t.testdir({ 'g.json': JSON.stringify({ routes: [{ name: 'a', match: { path: '/' }, upstream: 'http://127.0.0.1:1', plugins: [{ name: 'jwt-auth', config: { issuers: [{ issuer: ISS.rs, algorithms: ['RS256', 'HS256'], keys: [{ pem: RSA_PEM }] }] } }] }] }) })
  const r = await runCli(['validate', join(dir, 'g.json')])
  t.equal(r.code, 2)
  t.match(r.stderr, "/routes/0/plugins/0: plugin 'jwt-auth' failed in create(): /issuers/0: HS256 needs a shared secret of at least 32 bytes (secret, secretFile or an oct jwk) in keys")
})

/* ------------------------------ behaviour (harness) ------------------------------ */

t.test('token sources, ambiguity, and checks that run before any crypto', async (t) => {
  const h = await createPluginHarness(jwtAuth, {
    issuers: [{ issuer: ISS.hs, algorithms: ['HS256'], audience: 'api', keys: [{ secret: SECRET }] }],
    token: { cookie: 'session', query: 'access_token' }
  })
  const tok = good(ISS.hs, HS)
  const first = (r: HarnessResult): Json => r.authFailures[0] as unknown as Json

  let r = await h.request({ headers: { authorization: `Bearer ${tok}` } })
  t.equal(r.consumer?.id, 'u-1')
  t.same(r.consumer?.scopes, [])
  t.equal((await h.request({ headers: { authorization: `bEaReR   ${tok}` } })).consumer?.id, 'u-1', 'the scheme is case-insensitive')
  t.equal((await h.request({ headers: { cookie: `a=1; session=${tok}; b=2` } })).consumer?.id, 'u-1', 'from the cookie')
  t.equal((await h.request({ query: `x=1&access_token=${tok}` })).consumer?.id, 'u-1', 'from the query')

  r = await h.request({})
  t.match(first(r), { status: 401, code: 'MISSING_TOKEN', presented: false, challenge: 'Bearer realm="tollgate"' })
  r = await h.request({ headers: { cookie: 'session=; other=1' }, query: 'access_token=' })
  t.match(first(r), { code: 'MISSING_TOKEN', presented: false }, 'an empty cookie or parameter is no token')
  r = await h.request({ headers: { authorization: 'Basic dXNlcjpwYXNz' } })
  t.match(first(r), { code: 'MISSING_TOKEN', presented: false }, 'another scheme is not a bearer token')
  r = await h.request({ headers: { authorization: 'Bearer' } })
  t.match(first(r), { code: 'INVALID_TOKEN', presented: true })
  r = await h.request({ headers: { authorization: [`Bearer ${tok}`, `Bearer ${tok}`] } })
  t.match(first(r), { status: 400, code: 'AMBIGUOUS_CREDENTIALS', presented: true })
  t.equal(r.consumer, undefined)
  r = await h.request({ headers: { authorization: `Bearer ${tok}` }, query: `access_token=${tok}` })
  t.match(first(r), { status: 400, code: 'AMBIGUOUS_CREDENTIALS' }, 'header and query: one method per request (RFC 6750 §2)')
  r = await h.request({ query: `access_token=${tok}&access_token=${tok}` })
  t.match(first(r), { status: 400, code: 'AMBIGUOUS_CREDENTIALS' })

  // Refused without a signature check: the verification counter does not move.
  const before = internals.verifications
  const junk: Array<[string, string]> = [
    ['a'.repeat(8193), 'TOKEN_TOO_LARGE'],
    [`${b64u(JSON.stringify({ alg: 'HS256', pad: 'x'.repeat(200_000) }))}.${b64u('{}')}.AAAA`, 'TOKEN_TOO_LARGE'],
    ['.'.repeat(1000), 'INVALID_TOKEN'],
    ['a.b', 'INVALID_TOKEN'],
    ['ab$c.de*f.ghi', 'INVALID_TOKEN'],
    [`${Buffer.from('{"alg":"HS256"}').toString('base64')}+/.e30.AAAA`, 'INVALID_TOKEN'],
    ['a.b.c.d.e', 'INVALID_TOKEN'],
    [`${b64u('not json')}.${b64u('{}')}.AAAA`, 'INVALID_TOKEN'],
    [`${b64u('[1]')}.${b64u('{}')}.AAAA`, 'INVALID_TOKEN'],
    [`${b64u('{"alg":"HS256"}')}.${b64u('"x"')}.AAAA`, 'INVALID_TOKEN'],
    [jwt({ alg: 'HS256' }, { sub: 'x' }, HS), 'UNKNOWN_ISSUER'],
    [jwt({ alg: 'HS256' }, claims('https://evil.test'), HS), 'UNKNOWN_ISSUER'],
    [jwt({ alg: 'RS256' }, claims(ISS.hs), RS), 'INVALID_TOKEN']
  ]
  for (const [token, code] of junk) {
    r = await h.request({ headers: { authorization: `Bearer ${token}` } })
    t.match(first(r), { status: 401, code, presented: true }, `${token.slice(0, 24)}... -> ${code}`)
    t.notMatch(JSON.stringify(first(r)), token.slice(0, 40), 'the detail never echoes the token')
  }
  t.equal(internals.verifications, before, 'none of them reached a signature check')
})

t.test('verified-token cache: a hit stays sync, bounded by exp and maxAge, per token', async (t) => {
  const h = await createPluginHarness(jwtAuth, {
    issuers: [{ issuer: ISS.hs, algorithms: ['HS256'], keys: [{ secret: SECRET }] }],
    clockTolerance: 0,
    cache: { entries: 2, maxAge: '60s' }
  })
  const tok = good(ISS.hs, HS)
  const before = internals.verifications
  t.equal((await h.request({ headers: { authorization: `Bearer ${tok}` } })).consumer?.id, 'u-1')
  t.equal(internals.verifications, before + 1)

  // A minimal context, to see what the hook itself returns.
  const fake = (token: string): { ctx: RequestContext, ids: string[] } => {
    const ids: string[] = []
    const ctx = {
      headers: { authorization: `Bearer ${token}` },
      query: '',
      consumer: undefined,
      headerValues: (n: string) => (n === 'authorization' ? [`Bearer ${token}`] : []),
      authenticate: (i: { id: string }) => { ids.push(i.id) },
      authFailed: () => { ids.push('failed') },
      removeUpstreamHeader: () => {},
      setUpstreamHeader: () => {}
    } as unknown as RequestContext
    return { ctx, ids }
  }
  const hit = fake(tok)
  t.equal(h.hooks.onRequest?.(hit.ctx), undefined, 'a cache hit returns no promise')
  t.same(hit.ids, ['u-1'])
  t.equal(internals.verifications, before + 1, 'and verifies nothing')

  // Concurrent requests with one new token share one verification.
  const fresh = good(ISS.hs, HS, { jti: 'concurrent' })
  const rs = await Promise.all(Array.from({ length: 10 }, () => h.request({ headers: { authorization: `Bearer ${fresh}` } })))
  t.ok(rs.every((x) => x.consumer?.id === 'u-1'))
  t.equal(internals.verifications, before + 2, 'ten concurrent requests, one verification')

  // entries: 2 -> a third token evicts the oldest.
  await h.request({ headers: { authorization: `Bearer ${good(ISS.hs, HS, { jti: 'third' })}` } })
  const evicted = fake(tok)
  const p = h.hooks.onRequest?.(evicted.ctx)
  t.ok(p instanceof Promise, 'the oldest entry was evicted: verified again')
  await p
  t.same(evicted.ids, ['u-1'])

  // An entry never outlives the token's exp (tolerance 0 here).
  const short = good(ISS.hs, HS, { exp: now() + 1, jti: 'short' })
  t.equal((await h.request({ headers: { authorization: `Bearer ${short}` } })).consumer?.id, 'u-1')
  await sleep(2100)
  const late = await h.request({ headers: { authorization: `Bearer ${short}` } })
  t.match(late.authFailures[0], { code: 'TOKEN_EXPIRED' }, 'the cached grant ended with exp')
})

t.test('consumers, scopes and forwarded claims (harness)', async (t) => {
  const consumers = [
    { id: 'alice', groups: ['admins'], scopes: ['ignored'], credentials: { subjects: [{ issuer: ISS.hs, subject: 'u-1' }] } },
    { id: 'bob' }
  ]
  const base = { issuers: [{ issuer: ISS.hs, algorithms: ['HS256'], keys: [{ secret: SECRET }] }] }
  const h = await createPluginHarness(jwtAuth, { ...base, forwardClaims: { email: 'X-User-Email', roles: 'X-Roles', n: 'X-N', ok: 'X-Ok' } }, { consumers })
  const req = (extra: Json, headers: Record<string, string> = {}): Promise<HarnessResult> => h.request({ headers: { ...headers, authorization: `Bearer ${good(ISS.hs, HS, extra)}` } })

  let r = await req({ scope: 'orders:read  orders:write', email: 'a@example.com', roles: ['x', 'y'], n: 42, ok: true }, { 'x-user-email': 'spoofed@example.com' })
  t.match(r.consumer, { id: 'alice', groups: ['admins'], scopes: ['orders:read', 'orders:write'], via: 'jwt-auth', anonymous: false })
  t.equal((r.consumer?.claims as Json).email, 'a@example.com', 'claims are the verified payload')
  t.ok(Object.isFrozen(r.consumer?.claims), 'and frozen')
  t.match(r.upstreamHeaders, { 'x-user-email': 'a@example.com', 'x-roles': 'x, y', 'x-n': '42', 'x-ok': 'true' })

  r = await req({ sub: 'u-2', scp: ['a', 'b'] }, { 'x-user-email': 'spoofed@example.com' })
  t.match(r.consumer, { id: 'u-2', groups: [], scopes: ['a', 'b'] }, 'unmapped: the claim is the id')
  t.notOk('x-user-email' in r.upstreamHeaders, 'a client-sent forwarded header is removed even when the claim is absent')
  t.match((await req({ scp: 'c d' })).consumer, { scopes: ['c', 'd'] })

  const refused: Array<[Json, string, string]> = [
    [{ email: 'a@example.com\r\nX-Admin: 1' }, 'INVALID_CLAIM', 'CRLF in a forwarded claim'],
    [{ email: 'nul\u0000' }, 'INVALID_CLAIM', 'NUL in a forwarded claim'],
    [{ roles: ['ok', 'bad\n'] }, 'INVALID_CLAIM', 'LF in a list'],
    [{ roles: { admin: true } }, 'INVALID_CLAIM', 'an object cannot be forwarded'],
    [{ sub: 'eve\r\nX-Admin: 1' }, 'INVALID_CLAIM', 'CRLF in the consumer claim'],
    [{ sub: '' }, 'INVALID_CLAIM', 'empty subject'],
    [{ sub: 42 }, 'INVALID_CLAIM', 'non-string subject'],
    [{ sub: 'bob' }, 'UNKNOWN_CONSUMER', 'an unmapped subject cannot pass for a configured consumer'],
    [{ scope: 'a "b"' }, 'INVALID_CLAIM', 'a scope with a quote'],
    [{ scp: [1] }, 'INVALID_CLAIM', 'a non-string scope']
  ]
  for (const [extra, code, name] of refused) {
    r = await req(extra, { 'x-user-email': 'spoofed@example.com' })
    t.equal(r.consumer, undefined, name)
    t.match(r.authFailures[0], { status: 401, code, presented: true }, name)
    t.notOk('x-user-email' in r.upstreamHeaders, `${name}: nothing forwarded`)
  }

  const required = await createPluginHarness(jwtAuth, { ...base, consumer: { required: true } }, { consumers })
  t.equal((await required.request({ headers: { authorization: `Bearer ${good(ISS.hs, HS)}` } })).consumer?.id, 'alice')
  const u2 = await required.request({ headers: { authorization: `Bearer ${good(ISS.hs, HS, { sub: 'u-2' })}` } })
  t.match(u2.authFailures[0], { code: 'UNKNOWN_CONSUMER' })

  const byClaim = await createPluginHarness(jwtAuth, { ...base, consumer: { claim: 'client_id' } }, { consumers: [{ id: 'svc', credentials: { subjects: [{ issuer: ISS.hs, subject: 'c-9' }] } }] })
  t.equal((await byClaim.request({ headers: { authorization: `Bearer ${good(ISS.hs, HS, { client_id: 'c-9' })}` } })).consumer?.id, 'svc')

  // Already authenticated by an earlier authn plugin: strip, and nothing else.
  const ids: string[] = []
  const removed: string[] = []
  const ctx = {
    headers: { authorization: 'Bearer x' },
    consumer: { id: 'earlier' },
    headerValues: () => ['Bearer x'],
    authenticate: (i: { id: string }) => { ids.push(i.id) },
    authFailed: () => { ids.push('failed') },
    removeUpstreamHeader: (n: string) => { removed.push(n) }
  } as unknown as RequestContext
  t.equal(h.hooks.onRequest?.(ctx), undefined)
  t.same(ids, [], 'neither authenticates nor fails')
  t.same(removed.sort(), ['x-n', 'x-ok', 'x-roles', 'x-user-email'])

  const hiding = await createPluginHarness(jwtAuth, { ...base, hideCredentials: true, token: { query: 'access_token', cookie: 'sess' } })
  const tok = good(ISS.hs, HS)
  r = await hiding.request({ headers: { authorization: `Bearer ${tok}` } })
  t.notOk('authorization' in r.upstreamHeaders, 'hideCredentials: the bearer token does not go upstream')
  r = await hiding.request({ query: `a=1&access_token=${tok}&b=2` })
  t.equal(r.upstreamQuery, 'a=1&b=2')
  r = await hiding.request({ headers: { cookie: `x=1; sess=${tok}` } })
  t.equal(r.upstreamHeaders.cookie, 'x=1')
})

t.test('JWKS sets: one per URL and options per thread; a failing source is retried once per cooldown (harness)', async (t) => {
  const keys = await startKeyServer(t)
  keys.keys.set('/s', [jwkOf(ec.publicKey, { kid: 'ec-1' })])
  keys.keys.set('/d', [jwkOf(ec.publicKey, { kid: 'ec-1' })])
  const cfg = (path: string, extra: Json = {}): Json => ({ issuers: [{ issuer: ISS.jwks, algorithms: ['ES256'], jwks: { url: `${keys.url}${path}`, ...extra } }] })
  const setsFor = (path: string): number => [...internals.sharedSets.keys()].filter((k) => k.startsWith(`${keys.url}${path} `)).length
  const token = good(ISS.jwks, ES, { aud: undefined }, { kid: 'ec-1' })

  const h1 = await createPluginHarness(jwtAuth, cfg('/s'))
  t.ok(await until(() => keys.hits('/s') === 1, 5000), 'fetched once when the set was made')
  const h2 = await createPluginHarness(jwtAuth, cfg('/s'))
  t.equal((await h1.request({ headers: { authorization: `Bearer ${token}` } })).consumer?.id, 'u-1')
  t.equal((await h2.request({ headers: { authorization: `Bearer ${token}` } })).consumer?.id, 'u-1')
  t.equal(keys.hits('/s'), 1, 'a second instance (a reload) reuses the set and its keys: no fetch')
  t.equal(setsFor('/s'), 1)
  const h3 = await createPluginHarness(jwtAuth, cfg('/s', { cacheMaxAge: '5m' }))
  t.ok(await until(() => keys.hits('/s') === 2, 5000), 'other options: a set of its own')
  t.equal(setsFor('/s'), 2)
  await h1.close()
  t.equal(setsFor('/s'), 2, 'still used by the second instance')
  await h2.close()
  await h3.close()
  t.equal(setsFor('/s'), 0, 'dropped with the last instance using it')

  keys.mode.set('/d', 'down')
  const hd = await createPluginHarness(jwtAuth, cfg('/d', { cooldownDuration: '10s' }))
  t.ok(await until(() => keys.hits('/d') === 1, 5000))
  for (let i = 0; i < 50; i++) {
    const r = await hd.request({ headers: { authorization: `Bearer ${good(ISS.jwks, ES, { aud: undefined, jti: String(i) }, { kid: 'ec-1' })}` } })
    if (i === 0 || i === 49) t.match(r.authFailures[0], { status: 503, code: 'JWKS_UNAVAILABLE', presented: true, headers: { 'retry-after': 10 } })
  }
  t.equal(keys.hits('/d'), 1, '50 requests while the source is down: no retry within the cooldown')
  await hd.close()
})

/* ------------------------------ end to end: C1-C9 ------------------------------ */

t.test('end to end: CHECKLIST C1-C9 against a real gateway', async (t) => {
  const up = await startUpstream(t)
  const keys = await startKeyServer(t)
  keys.keys.set('/keys', [jwkOf(ec.publicKey, { kid: 'ec-1', alg: 'ES256', use: 'sig' })])
  const attackerKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
  keys.keys.set('/attacker.json', [jwkOf(attackerKey.publicKey, { kid: 'attacker' })])

  const issuers = [
    { issuer: ISS.rs, algorithms: ['RS256', 'PS256'], audience: 'api', keys: [{ pemFile: 'rsa.pem', kid: 'rsa-1' }] },
    { issuer: ISS.es, algorithms: ['ES256'], audience: 'api', keys: [{ jwk: jwkOf(ec.publicKey, { kid: 'ec-1' }) }] },
    { issuer: ISS.ed, algorithms: ['EdDSA'], keys: [{ pem: spki(ed.publicKey) }] },
    { issuer: ISS.hs, algorithms: ['HS256'], audience: ['api', 'other-api'], keys: [{ secretFile: 'secret.txt' }] },
    { issuer: ISS.typ, algorithms: ['HS256'], typ: 'at+jwt', keys: [{ secret: SECRET }] },
    { issuer: ISS.age, algorithms: ['ES256'], maxTokenAge: '5m', keys: [{ jwk: jwkOf(ec.publicKey) }] },
    { issuer: ISS.mixed, algorithms: ['RS256', 'HS256'], keys: [{ pem: RSA_PEM }, { secret: OTHER_SECRET }] },
    { issuer: ISS.jwks, algorithms: ['ES256'], jwks: { url: `${keys.url}/keys` } }
  ]
  const gw = await startGateway(t, {
    files: { 'rsa.pem': RSA_PEM, 'secret.txt': SECRET + '\n' },
    config: {
      workers: 1,
      logLevel: 'warn',
      // Room for a 200 KB token header, to show the plugin refuses it (C9), not the parser.
      limits: { maxHeaderSize: 400_000 },
      routes: [
        { name: 'api', match: { path: '/api' }, upstream: up.url, plugins: [{ name: 'jwt-auth', config: { issuers } }] },
        { name: 'strict', match: { path: '/strict' }, upstream: up.url, plugins: [{ name: 'jwt-auth', config: { issuers, clockTolerance: 0, realm: 'strict' } }] }
      ]
    }
  })
  await until(() => keys.hits('/keys') >= 1, 5000)
  const jwksFetches = keys.hits('/keys')

  const ok = await call(gw, '/api', good(ISS.rs, RS))
  t.equal(ok.status, 200, 'RS256 from a pemFile')
  t.equal(up.seen.at(-1)?.headers['x-consumer-id'], 'u-1')
  t.equal((await call(gw, '/api', good(ISS.rs, { alg: 'PS256', key: rsa.privateKey }))).status, 200, 'PS256 with the same RSA key')
  t.equal((await call(gw, '/api', good(ISS.es, ES))).status, 200, 'ES256 from a JWK')
  t.equal((await call(gw, '/api', good(ISS.ed, { alg: 'EdDSA', key: ed.privateKey }))).status, 200, 'EdDSA from a PEM')
  t.equal((await call(gw, '/api', good(ISS.hs, HS))).status, 200, 'HS256 from a secretFile (trailing newline dropped)')
  t.equal((await call(gw, '/api', good(ISS.jwks, ES, {}, { kid: 'ec-1' }))).status, 200, 'ES256 from a JWKS')
  t.equal((await call(gw, '/api', good(ISS.mixed, { alg: 'HS256', key: OTHER_SECRET }))).status, 200)

  const S = ISS.hs
  const p = claims(S)
  const cases: Array<[string, string, number, string?]> = [
    // C1: unsecured JWTs, whatever the spelling, with or without a signature.
    ...['none', 'None', 'NONE', 'nOnE'].flatMap((alg): Array<[string, string, number, string]> => [
      [`C1 alg ${alg}, empty signature`, jwt({ alg, typ: 'JWT' }, p), 401, 'INVALID_TOKEN'],
      [`C1 alg ${alg}, junk signature`, `${jwt({ alg }, p)}AAAA`, 401, 'INVALID_TOKEN']
    ]),
    // C2: signature stripped or one bit flipped.
    ['C2 HS256 signature stripped', good(S, HS).split('.').slice(0, 2).join('.') + '.', 401, 'INVALID_TOKEN'],
    ['C2 two parts only', good(S, HS).split('.').slice(0, 2).join('.'), 401, 'INVALID_TOKEN'],
    ['C2 HS256 bit flipped', flipBit(good(S, HS)), 401, 'INVALID_TOKEN'],
    ['C2 RS256 bit flipped', flipBit(good(ISS.rs, RS)), 401, 'INVALID_TOKEN'],
    ['C2 ES256 bit flipped', flipBit(good(ISS.es, ES)), 401, 'INVALID_TOKEN'],
    ['C2 payload changed, signature kept', (() => { const [h, , s] = good(S, HS).split('.'); return `${h}.${b64u(JSON.stringify(claims(S, { sub: 'admin' })))}.${s}` })(), 401, 'INVALID_TOKEN'],
    // C3: RS256 -> HS256 with the public key as the HMAC secret.
    ['C3 HS256 signed with the RSA PEM (RS256-only issuer)', good(ISS.rs, { alg: 'HS256', key: RSA_PEM }), 401, 'INVALID_TOKEN'],
    ['C3 HS256 signed with the PEM without its newline', good(ISS.rs, { alg: 'HS256', key: RSA_PEM.trim() }), 401, 'INVALID_TOKEN'],
    ['C3 HS256 signed with the RSA JWK', good(ISS.rs, { alg: 'HS256', key: JSON.stringify(jwkOf(rsa.publicKey)) }), 401, 'INVALID_TOKEN'],
    ['C3 HS256 signed with the PEM (issuer allowing RS256 and HS256)', good(ISS.mixed, { alg: 'HS256', key: RSA_PEM }), 401, 'INVALID_TOKEN'],
    ['C3 HS256 signed with the EC JWK', good(ISS.es, { alg: 'HS256', key: JSON.stringify(jwkOf(ec.publicKey)) }), 401, 'INVALID_TOKEN'],
    ['C3 ES256 token on an RSA issuer', good(ISS.rs, ES), 401, 'INVALID_TOKEN'],
    // C4: keys named by the token are never trusted nor fetched.
    ['C4 embedded jwk, signed with it', good(ISS.rs, { alg: 'RS256', key: attackerKey.privateKey }, {}, { jwk: jwkOf(attackerKey.publicKey) }), 401, 'INVALID_TOKEN'],
    ['C4 jku to the attacker, signed with its key', good(ISS.rs, { alg: 'RS256', key: attackerKey.privateKey }, {}, { jku: `${keys.url}/attacker.json`, kid: 'attacker' }), 401, 'UNKNOWN_KEY'],
    ['C4 jku on the JWKS issuer', good(ISS.jwks, { alg: 'ES256', key: ecOther.privateKey }, {}, { jku: `${keys.url}/attacker.json`, kid: 'ec-1' }), 401, 'INVALID_TOKEN'],
    ['C4 x5u to the attacker', good(ISS.rs, { alg: 'RS256', key: attackerKey.privateKey }, {}, { x5u: `${keys.url}/attacker.pem` }), 401, 'INVALID_TOKEN'],
    ['C4 x5c with junk', good(ISS.rs, { alg: 'RS256', key: attackerKey.privateKey }, {}, { x5c: [randomBytes(300).toString('base64')] }), 401, 'INVALID_TOKEN'],
    ['C4 jku on a token signed with the real key: ignored', good(ISS.rs, RS, {}, { jku: `${keys.url}/attacker.json` }), 200],
    // C5: kid is a map key, nothing more.
    ...['../../../../dev/null', "x' UNION SELECT '1';--", '', 'k'.repeat(300)].flatMap((kid): Array<[string, string, number, string]> => [
      [`C5 kid ${JSON.stringify(kid.slice(0, 24))} (static keys)`, good(ISS.rs, RS, {}, { kid }), 401, kid.length > 256 ? 'INVALID_TOKEN' : 'UNKNOWN_KEY'],
      [`C5 kid ${JSON.stringify(kid.slice(0, 24))} (JWKS)`, good(ISS.jwks, ES, {}, { kid }), 401, kid.length > 256 ? 'INVALID_TOKEN' : 'UNKNOWN_KEY']
    ]),
    ['C5 10 KB kid', good(ISS.rs, RS, {}, { kid: 'k'.repeat(10_000) }), 401, 'TOKEN_TOO_LARGE'],
    ['C5 kid a number', good(ISS.rs, RS, {}, { kid: 7 }), 401, 'INVALID_TOKEN'],
    ['C5 kid an object', good(ISS.jwks, ES, {}, { kid: { $ne: null } }), 401, 'INVALID_TOKEN'],
    ['C5 kid an array', good(ISS.jwks, ES, {}, { kid: ['ec-1'] }), 401, 'INVALID_TOKEN'],
    // C6: time, with the default 30 s tolerance.
    ['C6 exp in the past beyond tolerance', good(S, HS, { exp: now() - 60 }), 401, 'TOKEN_EXPIRED'],
    ['C6 exp within clockTolerance', good(S, HS, { exp: now() - 10 }), 200],
    ['C6 nbf = now + 120', good(S, HS, { nbf: now() + 120 }), 401, 'INVALID_CLAIM'],
    ['C6 nbf within clockTolerance', good(S, HS, { nbf: now() + 10 }), 200],
    ['C6 iat in the future', good(S, HS, { iat: now() + 120 }), 401, 'INVALID_CLAIM'],
    ['C6 iat in the future, maxTokenAge issuer', good(ISS.age, ES, { iat: now() + 120 }), 401, 'INVALID_CLAIM'],
    ['C6 maxTokenAge exceeded', good(ISS.age, ES, { iat: now() - 600 }), 401, 'TOKEN_EXPIRED'],
    ['C6 maxTokenAge: iat required', good(ISS.age, ES, { iat: undefined }), 401, 'INVALID_CLAIM'],
    ['C6 maxTokenAge within', good(ISS.age, ES, { iat: now() - 60 }), 200],
    ['C6 missing exp', good(S, HS, { exp: undefined }), 401, 'INVALID_CLAIM'],
    ['C6 exp not a number', good(S, HS, { exp: String(now() + 600) }), 401, 'INVALID_CLAIM'],
    // C7: audience, issuer, type.
    ['C7 wrong aud', good(S, HS, { aud: 'someone-else' }), 401, 'INVALID_CLAIM'],
    ['C7 aud array without ours', good(S, HS, { aud: ['a', 'b'] }), 401, 'INVALID_CLAIM'],
    ['C7 aud array with ours', good(S, HS, { aud: ['a', 'other-api'] }), 200],
    ['C7 no aud where one is required', good(S, HS, { aud: undefined }), 401, 'INVALID_CLAIM'],
    ['C7 unknown iss', good('https://evil.test', HS), 401, 'UNKNOWN_ISSUER'],
    ['C7 iss names the RS issuer, HS secret of another', good(ISS.rs, HS), 401, 'INVALID_TOKEN'],
    ['C7 typ JWT where at+jwt is required', good(ISS.typ, HS), 401, 'INVALID_CLAIM'],
    ['C7 typ missing where at+jwt is required', jwt({ alg: 'HS256' }, claims(ISS.typ), HS), 401, 'INVALID_CLAIM'],
    ['C7 typ application/at+jwt', good(ISS.typ, HS, {}, { typ: 'application/at+jwt' }), 200],
    // C8: crit.
    ['C8 crit [exp]', good(S, HS, {}, { crit: ['exp'], exp: now() + 600 }), 401, 'INVALID_TOKEN'],
    ['C8 crit naming an unknown parameter', good(S, HS, {}, { crit: ['x-custom'], 'x-custom': 1 }), 401, 'INVALID_TOKEN'],
    ['C8 empty crit', good(S, HS, {}, { crit: [] }), 401, 'INVALID_TOKEN'],
    ['C8 crit not an array', good(S, HS, {}, { crit: 'b64' }), 401, 'INVALID_TOKEN'],
    ['C8 b64 false', good(S, HS, {}, { crit: ['b64'], b64: false }), 401, 'INVALID_TOKEN'],
    // C9: sizes and shapes, refused before any crypto.
    ['C9 token over 8 KiB', good(S, HS, { pad: 'x'.repeat(8200) }), 401, 'TOKEN_TOO_LARGE'],
    ['C9 1000 dots', '.'.repeat(1000), 401, 'INVALID_TOKEN'],
    ['C9 invalid base64url', 'e$J.e*J.A!A', 401, 'INVALID_TOKEN'],
    ['C9 200 KB JSON header', `${b64u(JSON.stringify({ alg: 'HS256', x: 'y'.repeat(200_000) }))}.${b64u(JSON.stringify(p))}.AAAA`, 401, 'TOKEN_TOO_LARGE']
  ]
  for (const [name, token, status, code] of cases) {
    const r = await call(gw, '/api', token)
    t.equal(r.status, status, name)
    if (code !== undefined) t.equal(r.code, code, `${name}: ${code}`)
    if (status === 401) {
      t.match(r.challenge, /^Bearer realm="tollgate", error="invalid_token", error_description="[^"\\]+"$/, `${name}: RFC 6750 challenge`)
      const probe = token.split('.').sort((a, b) => b.length - a.length)[0] ?? ''
      if (probe.length >= 8) t.notOk(r.body.includes(probe.slice(0, 64)), `${name}: the token is not echoed`)
    }
  }
  t.equal(keys.hits('/attacker.json'), 0, 'C4: the attacker server was never contacted')
  t.equal(keys.hits('/attacker.pem'), 0)
  t.ok(keys.hits('/keys') - jwksFetches <= 1, 'the unknown kids caused at most one refetch (30 s cooldown)')

  // C6 with clockTolerance 0: exp = now - 1 is expired.
  const strict = await call(gw, '/strict', good(S, HS, { exp: now() - 1 }))
  t.equal(strict.status, 401)
  t.equal(strict.code, 'TOKEN_EXPIRED')
  t.match(strict.challenge, /^Bearer realm="strict", error="invalid_token"/)
  t.equal((await call(gw, '/strict', good(S, HS, { exp: now() + 60 }))).status, 200)

  const missing = await call(gw, '/api')
  t.equal(missing.status, 401)
  t.equal(missing.code, 'MISSING_TOKEN')
  t.equal(missing.challenge, 'Bearer realm="tollgate"', 'no token: a bare challenge (RFC 6750 §3.1)')

  // Two Authorization lines: 400, not one of them picked.
  const tok = good(S, HS)
  const raw = await rawRequest(gw.port, `GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\nAuthorization: Bearer ${tok}\r\nConnection: close\r\n\r\n`)
  t.match(raw, /^HTTP\/1\.1 400 /)
  t.match(raw, /AMBIGUOUS_CREDENTIALS/)
})

/* --------------------------- consumers, end to end --------------------------- */

async function consumersGateway (t: Tap & { testdir: (f?: Record<string, string>) => string }, up: Upstream): Promise<RunningGateway> {
  const issuers = [{ issuer: ISS.hs, algorithms: ['HS256'], keys: [{ secret: SECRET }] }]
  const forwardClaims = { email: 'X-User-Email', roles: 'X-User-Roles' }
  return await startGateway(t, {
    config: {
      workers: 2,
      logLevel: 'warn',
      consumers: [
        { id: 'alice', groups: ['admins', 'ops'], credentials: { subjects: [{ issuer: ISS.hs, subject: 'u-1' }] } },
        { id: 'guest', groups: ['public'] }
      ],
      routes: [
        { name: 'open', match: { path: '/open' }, upstream: up.url, anonymous: 'guest', plugins: [{ name: 'jwt-auth', config: { issuers, forwardClaims } }] },
        { name: 'strict', match: { path: '/strict' }, upstream: up.url, plugins: [{ name: 'jwt-auth', config: { issuers, consumer: { required: true } } }] },
        { name: 'two', match: { path: '/two' }, upstream: up.url, plugins: [{ name: 'header-auth', module: FIXTURES + 'plugins/header-auth.mjs' }, { name: 'jwt-auth', config: { issuers, forwardClaims } }] }
      ]
    }
  })
}

t.test('end to end: consumer mapping, identity headers, forwarded claims, anonymous', async (t) => {
  const up = await startUpstream(t)
  const gw = await consumersGateway(t, up)
  const last = (): Record<string, string | string[] | undefined> => up.seen.at(-1)?.headers ?? {}
  const spoof = { 'x-consumer-id': 'root', 'x-consumer-groups': 'admins', 'x-authenticated-scope': 'everything', 'x-user-email': 'ceo@example.com', 'x-anonymous-consumer': 'false' }

  let r = await call(gw, '/open', good(ISS.hs, HS, { scope: 'orders:read orders:write', email: 'alice@example.com', roles: ['a', 'b'] }), spoof)
  t.equal(r.status, 200)
  t.match(last(), { 'x-consumer-id': 'alice', 'x-consumer-groups': 'admins, ops', 'x-authenticated-scope': 'orders:read orders:write', 'x-user-email': 'alice@example.com', 'x-user-roles': 'a, b' })
  t.notOk('x-anonymous-consumer' in last())

  r = await call(gw, '/open', good(ISS.hs, HS, { sub: 'u-77' }), spoof)
  t.equal(r.status, 200)
  t.equal(last()['x-consumer-id'], 'u-77', 'an unmapped subject is the id')
  t.notOk('x-consumer-groups' in last(), 'client-sent identity headers never reach the upstream')
  t.notOk('x-user-email' in last(), 'nor a client-sent forwarded-claim header')

  r = await call(gw, '/open', undefined, spoof)
  t.equal(r.status, 200, 'no token: the anonymous consumer')
  t.match(last(), { 'x-consumer-id': 'guest', 'x-consumer-groups': 'public', 'x-anonymous-consumer': 'true' })
  t.notOk('x-user-email' in last())

  const seen = up.seen.length
  r = await call(gw, '/open', flipBit(good(ISS.hs, HS)), spoof)
  t.equal(r.status, 401, 'a bad token is never downgraded to anonymous')
  t.equal(r.code, 'INVALID_TOKEN')
  r = await call(gw, '/open', good(ISS.hs, HS, { exp: now() - 3600 }))
  t.equal(r.status, 401)
  r = await call(gw, '/open', good(ISS.hs, HS, { email: 'x@example.com\r\nX-Admin: 1' }))
  t.equal(r.status, 401, 'CRLF in a forwarded claim')
  t.equal(r.code, 'INVALID_CLAIM')
  r = await call(gw, '/open', good(ISS.hs, HS, { sub: 'guest' }))
  t.equal(r.status, 401, 'a token cannot take the anonymous consumer\'s id')
  t.equal(up.seen.length, seen, 'none of these reached the upstream')

  r = await call(gw, '/strict', good(ISS.hs, HS))
  t.equal(r.status, 200)
  t.equal(last()['x-consumer-id'], 'alice')
  r = await call(gw, '/strict', good(ISS.hs, HS, { sub: 'u-77' }))
  t.equal(r.status, 401)
  t.equal(r.code, 'UNKNOWN_CONSUMER')

  // An earlier authn plugin authenticated: jwt-auth only strips its headers.
  r = await call(gw, '/two', undefined, { 'x-test-user': Buffer.from('dave').toString('base64'), 'x-user-email': 'ceo@example.com' })
  t.equal(r.status, 200)
  t.equal(last()['x-consumer-id'], 'dave')
  t.notOk('x-user-email' in last(), 'the forwarded-claim header is stripped even when another plugin authenticated')
  r = await call(gw, '/two', good(ISS.hs, HS, { email: 'alice@example.com' }))
  t.equal(r.status, 200, 'the first plugin had no credential: jwt-auth authenticates')
  t.match(last(), { 'x-consumer-id': 'alice', 'x-user-email': 'alice@example.com' })
  r = await call(gw, '/two')
  t.equal(r.status, 401)
  t.same(r.challenge, ['Test realm="t"', 'Bearer realm="tollgate"'], 'both challenges offered')

  // C9: a header block over the default 16 KiB never reaches the plugin.
  const huge = await rawRequest(gw.port, `GET /open HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(17_000)}\r\nConnection: close\r\n\r\n`)
  t.match(huge, /^HTTP\/1\.1 431 /)
})

/* ------------------------------- JWKS: C10-C14 ------------------------------- */

t.test('JWKS rotation: unknown kids, new keys, removed keys (C10-C12)', async (t) => {
  const up = await startUpstream(t)
  const keys = await startKeyServer(t)
  const k1 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const k2 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const k3 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pub = (k: { publicKey: KeyObject }, kid: string): Json => jwkOf(k.publicKey, { kid, alg: 'ES256', use: 'sig' })
  keys.keys.set('/a', [pub(k1, 'k1')])
  keys.keys.set('/b', [pub(k1, 'k1'), pub(k2, 'k2')])
  const WORKERS = 2
  const COOLDOWN_MS = 2000
  const gw = await startGateway(t, {
    config: {
      workers: WORKERS,
      logLevel: 'error',
      routes: [{
        name: 'api',
        match: { path: '/' },
        upstream: up.url,
        plugins: [{
          name: 'jwt-auth',
          config: {
            issuers: [
              { issuer: 'https://a.test', algorithms: ['ES256'], jwks: { url: `${keys.url}/a`, cooldownDuration: COOLDOWN_MS, cacheMaxAge: '10m' } },
              { issuer: 'https://b.test', algorithms: ['ES256'], jwks: { url: `${keys.url}/b`, cooldownDuration: '1s', cacheMaxAge: '1s' } }
            ]
          }
        }]
      }]
    }
  })
  const tokenA = (k: { privateKey: KeyObject }, kid: string, extra: Json = {}): string => good('https://a.test', { alg: 'ES256', key: k.privateKey }, { aud: undefined, jti: randomBytes(6).toString('hex'), ...extra }, { kid })
  const tokenB = (k: { privateKey: KeyObject }, kid: string): string => good('https://b.test', { alg: 'ES256', key: k.privateKey }, { aud: undefined, jti: randomBytes(6).toString('hex') }, { kid })

  t.equal((await call(gw, '/', tokenA(k1, 'k1'))).status, 200)

  // C10: random unknown kids, as fast as 16 connections go, for a bounded count.
  await sleep(COOLDOWN_MS + 100)
  const before = keys.hits('/a')
  const started = performance.now()
  let statuses = 0
  const N = 600
  let next = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < N) {
      next++
      const r = await call(gw, '/', tokenA(k1, randomBytes(8).toString('hex')))
      if (r.status === 401 && r.code === 'UNKNOWN_KEY') statuses++
    }
  }))
  const elapsed = performance.now() - started
  const fetched = keys.hits('/a') - before
  const bound = WORKERS * (Math.floor(elapsed / COOLDOWN_MS) + 1)
  t.equal(statuses, N, 'every unknown kid: 401 UNKNOWN_KEY')
  t.ok(fetched >= 1 && fetched <= bound, `C10: ${fetched} fetch(es) for ${N} unknown kids over ${Math.round(elapsed)} ms; at most ${bound} (one per cooldown per worker)`)

  // C11: a new key is published; tokens signed with it are accepted once a cooldown passed.
  keys.keys.set('/a', [pub(k1, 'k1'), pub(k3, 'k3')])
  let accepted = 0
  for (let i = 0; i < 100 && accepted < 10; i++) {
    const r = await call(gw, '/', tokenA(k3, 'k3'))
    accepted = r.status === 200 ? accepted + 1 : 0
    if (r.status !== 200) await sleep(200)
  }
  t.equal(accepted, 10, 'C11: the new key is accepted by every worker after the cooldown')

  // C12: a key is removed; tokens signed with it fail within cacheMaxAge (1 s here).
  const removedKeyToken = tokenB(k2, 'k2')
  t.equal((await call(gw, '/', removedKeyToken)).status, 200)
  t.equal((await call(gw, '/', tokenB(k2, 'k2'))).status, 200)
  keys.keys.set('/b', [pub(k1, 'k1')])
  await sleep(1000 + 1000)
  for (let i = 0; i < 6; i++) {
    const cached = await call(gw, '/', removedKeyToken)
    t.equal(cached.status, 401, `C12: a token verified before the removal (cached) is refused after cacheMaxAge (${i})`)
    const fresh = await call(gw, '/', tokenB(k2, 'k2'))
    t.equal(fresh.code, 'UNKNOWN_KEY', `C12: a new token signed with the removed key is refused (${i})`)
  }
  t.equal((await call(gw, '/', tokenB(k1, 'k1'))).status, 200, 'the remaining key still works')
})

t.test('JWKS down: cached keys until cacheMaxAge, then 503; back after the cooldown (C13)', async (t) => {
  const up = await startUpstream(t)
  const keys = await startKeyServer(t)
  const k1 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  keys.keys.set('/c', [jwkOf(k1.publicKey, { kid: 'k1' })])
  const MAX_AGE_MS = 6000
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'error',
      routes: [{
        name: 'api',
        match: { path: '/' },
        upstream: up.url,
        plugins: [{ name: 'jwt-auth', config: { issuers: [{ issuer: 'https://c.test', algorithms: ['ES256'], jwks: { url: `${keys.url}/c`, timeoutDuration: '500ms', cooldownDuration: '1s', cacheMaxAge: MAX_AGE_MS } }] } }]
      }]
    }
  })
  // Each token is new, so every request needs the key (no verified-token cache hit).
  const token = (): string => good('https://c.test', { alg: 'ES256', key: k1.privateKey }, { aud: undefined, jti: randomBytes(6).toString('hex') }, { kid: 'k1' })
  t.equal((await call(gw, '/', token())).status, 200)
  // The keys were fetched when the worker started; cacheMaxAge counts from then.
  const fetchedAt = keys.servedAt('/c')
  t.ok(fetchedAt > 0)
  const fetchesBefore = keys.hits('/c')

  keys.mode.set('/c', 'hang')
  let served = 0
  while (performance.now() - fetchedAt < MAX_AGE_MS - 2000) {
    const r = await call(gw, '/', token())
    t.equal(r.status, 200, 'the key source hangs; the cached key still works')
    served++
    await sleep(100)
  }
  t.ok(served > 0, `${served} requests served from cached keys while the source hung`)
  t.equal(keys.hits('/c'), fetchesBefore, 'no fetch while the keys are fresh')

  await sleep(Math.max(0, MAX_AGE_MS + 300 - (performance.now() - fetchedAt)))
  const outageStart = performance.now()
  for (let i = 0; i < 10; i++) {
    const r = await call(gw, '/', token())
    t.equal(r.status, 503, `after cacheMaxAge, fail closed (${i})`)
    t.equal(r.code, 'JWKS_UNAVAILABLE')
    t.equal(r.challenge, undefined, 'a 503 carries no Bearer challenge')
    t.equal(r.retryAfter, '1', 'Retry-After: the cooldown')
  }
  const attempts = keys.hits('/c') - fetchesBefore
  const bound = Math.floor((performance.now() - outageStart) / 1000) + 2
  t.ok(attempts >= 1 && attempts <= bound, `${attempts} fetch attempt(s) during the outage: at most one per cooldown (${bound})`)

  keys.mode.set('/c', 'up')
  let back = false
  for (let i = 0; i < 40 && !back; i++) {
    back = (await call(gw, '/', token())).status === 200
    if (!back) await sleep(200)
  }
  t.ok(back, 'the key source is back: accepted again after the cooldown')
})

t.test('100 policy reloads through the admin API: 0 extra JWKS fetches (C14)', async (t) => {
  const up = await startUpstream(t)
  const keys = await startKeyServer(t)
  keys.keys.set('/keys', [jwkOf(ec.publicKey, { kid: 'ec-1' })])
  const policy = (n: number): Json => ({
    listen: { host: '127.0.0.1', port: 0 },
    workers: 2,
    logLevel: 'warn',
    admin: { port: 0 },
    routes: [{
      name: 'api',
      match: { path: '/' },
      upstream: up.url,
      // Every update changes the policy, never the JWKS settings.
      plugins: [{ name: 'jwt-auth', config: { realm: `r${n}`, issuers: [{ issuer: ISS.jwks, algorithms: ['ES256'], jwks: { url: `${keys.url}/keys` } }] } }]
    }]
  })
  const dir = t.testdir({ 'gateway.json': JSON.stringify(policy(0)) })
  const gw = await startGateway(t, { args: ['--config', `${dir}/gateway.json`] })
  const adminPort = (gw.lines.find((l) => l.msg === 'listening') as { admin?: { port: number } }).admin?.port
  t.ok(adminPort)
  const token = (): string => good(ISS.jwks, ES, { aud: undefined, jti: randomBytes(6).toString('hex') }, { kid: 'ec-1' })
  for (let i = 0; i < 6; i++) t.equal((await call(gw, '/', token())).status, 200)
  await until(() => keys.hits('/keys') >= 2, 5000)
  const fetches = keys.hits('/keys')
  t.ok(fetches >= 1 && fetches <= 2, `one fetch per worker at start (${fetches})`)

  for (let n = 1; n <= 100; n++) {
    const r = await request(`http://127.0.0.1:${adminPort as number}/config`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(policy(n)) })
    const body = await r.body.json() as Json
    if (r.statusCode !== 200) t.fail(`update ${n}: ${r.statusCode} ${JSON.stringify(body)}`)
    if (n % 10 === 0) {
      const a = await call(gw, '/', token())
      t.equal(a.status, 200, `after update ${n}`)
      const bad = await call(gw, '/', flipBit(token()))
      t.match(bad.challenge, new RegExp(`^Bearer realm="r${n}"`), `update ${n} is live`)
    }
  }
  t.equal(keys.hits('/keys'), fetches, 'C14: 100 reloads, no extra JWKS fetch')
})

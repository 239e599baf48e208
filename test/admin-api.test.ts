import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { request } from 'undici'
import { createConfigAjv } from '../src/ajv.js'
import { adminSchema } from '../src/admin/schema.js'
import type { AdminConfig } from '../src/admin/schema.js'
import { createAdminServer, isLoopbackHost } from '../src/admin/server.js'
import type { AdminServerOptions } from '../src/admin/server.js'
import { applyMergePatch } from '../src/admin/merge-patch.js'
import { formatUptime } from '../src/admin/client.js'
import type { Actor, ConfigVersion, GatewayControl, GatewayStatus, UpdateResult } from '../src/control/types.js'
import { GatewayError } from '../src/errors.js'
import { BIN, ROOT, deadPort } from './helpers/gateway.js'

// Answers are read loosely: the assertions check their shape.
type Json = Record<string, any>

const ALICE = 'alice-token-0123456789abcdef'
const BOB = 'bob-token-0123456789abcdefXYZ'
const SECRET = 'hunter2-very-secret'
const emptySummary = { routes: { added: [], removed: [], changed: [] }, plugins: { added: [], removed: [], changed: [] }, settings: [] }

/**
 * A GatewayControl kept in memory: versions newest first, a config is valid when it is an
 * object with a `routes` array whose members have a string `name` (and `fail: true` makes
 * the apply fail as a broken gateway would).
 */
class FakeControl implements GatewayControl {
  list: ConfigVersion[] = []
  calls: Array<{ op: string, actor?: Actor, opts?: unknown }> = []

  constructor (raw: unknown) {
    this.list.unshift({ version: 1, raw, appliedAt: new Date(0).toISOString(), actor: 'startup', reason: 'startup', generation: 1 })
  }

  current (): ConfigVersion { return this.list[0] as ConfigVersion }
  versions (): ConfigVersion[] { return [...this.list] }

  check (raw: unknown): UpdateResult | undefined {
    const r = raw as Json | null
    if (typeof r !== 'object' || r === null || !Array.isArray(r.routes)) {
      return { ok: false, code: 'GW_ERR_CONFIG_INVALID', message: "invalid config 'admin API': 1 problem(s)", problems: ["admin API: /: must have required property 'routes'"], status: 400 }
    }
    const bad = (r.routes as Json[]).flatMap((x, i) => typeof x?.name === 'string' ? [] : [`admin API: /routes/${i}/name: required`])
    if (bad.length > 0) return { ok: false, code: 'GW_ERR_CONFIG_INVALID', message: `invalid config 'admin API': ${bad.length} problem(s)`, problems: bad, status: 400 }
    return undefined
  }

  async validate (raw: unknown): Promise<UpdateResult> {
    this.calls.push({ op: 'validate' })
    return this.check(raw) ?? { ok: true, version: this.current().version, generation: this.current().generation, summary: emptySummary, ms: 0 }
  }

  async apply (raw: unknown, actor: Actor, opts?: { ifMatch?: number, reason?: string, source?: string }): Promise<UpdateResult> {
    this.calls.push({ op: 'apply', actor, opts })
    const cur = this.current()
    if (opts?.ifMatch !== undefined && opts.ifMatch !== cur.version) {
      return { ok: false, code: 'GW_ERR_CONFIG_CONFLICT', message: `the config changed since version ${opts.ifMatch} (now ${cur.version}); fetch it and try again`, problems: [], status: 409 }
    }
    const bad = this.check(raw)
    if (bad !== undefined) return bad
    if ((raw as Json).fail === true) return { ok: false, code: 'GW_ERR_UPDATE_FAILED', message: 'the update was not applied: worker 1 did not acknowledge', problems: [], status: 500 }
    return this.push(raw, actor, opts?.reason ?? 'apply')
  }

  async rollback (version: number, actor: Actor): Promise<UpdateResult> {
    this.calls.push({ op: 'rollback', actor })
    const v = this.list.find((x) => x.version === version)
    if (v === undefined) return { ok: false, code: 'GW_ERR_VERSION_NOT_FOUND', message: `no kept config version ${version}`, problems: [], status: 404 }
    return this.push(v.raw, actor, `rollback to ${version}`)
  }

  push (raw: unknown, actor: Actor, reason: string): UpdateResult {
    const cur = this.current()
    const next: ConfigVersion = { version: cur.version + 1, raw, appliedAt: new Date().toISOString(), actor, reason, generation: cur.generation + 1 }
    this.list.unshift(next)
    return { ok: true, version: next.version, generation: next.generation, summary: { ...emptySummary, settings: ['routes'] }, ms: 3 }
  }

  status (): GatewayStatus {
    return {
      version: '0.1.0',
      uptimeS: 3723,
      configVersion: this.current().version,
      generation: this.current().generation,
      workers: [
        { slot: 0, alive: true, threadId: 1, generation: 1, inFlight: 0 },
        { slot: 1, alive: false, threadId: undefined, generation: undefined, inFlight: undefined }
      ],
      listen: { host: '127.0.0.1', port: 8080 },
      upstreams: [{
        routes: ['orders', 'orders-v2'],
        activeChecks: true,
        inFlight: 0,
        tunnels: 0,
        targets: [
          { url: 'http://127.0.0.1:3001', weight: 1, health: 'healthy', consecutiveFailures: 0, ejections: 0, inFlight: 0 },
          { url: 'http://127.0.0.1:3002', weight: 1, health: 'ejected', ejectedUntil: '2026-01-01T00:00:30.000Z', consecutiveFailures: 0, ejections: 1, inFlight: 0 }
        ]
      }]
    }
  }
}

const baseConfig = (): Json => ({
  listen: { host: '127.0.0.1', port: 8080 },
  plugins: [
    { name: 'request-id', config: { header: 'x-request-id' } },
    { name: 'jwt', config: { secret: SECRET, issuer: 'me', leeway: 5 } }
  ],
  routes: [
    {
      name: 'orders',
      match: { path: '/orders', methods: ['GET', 'POST'] },
      upstream: 'http://127.0.0.1:3000',
      stripPrefix: true,
      plugins: [{ name: 'rate-limit', config: { limits: [{ limit: 10, window: '1s' }], key: 'ip' } }]
    },
    { name: 'users', match: { path: '/users' }, upstream: 'http://127.0.0.1:3001' }
  ]
})

const adminCfg = (over: Partial<AdminConfig> = {}): AdminConfig => ({
  enabled: true, host: '127.0.0.1', port: 0, tokens: [], stateDir: './.tollgate', keepVersions: 50, responseGenerationHeader: false, metricsWithoutToken: false, ...over
})

interface Running { url: string, port: number, control: FakeControl, logs: string[] }

async function start (tap: { teardown: (fn: () => void | Promise<void>) => void }, over: Partial<AdminConfig> = {}, opts: Partial<AdminServerOptions> = {}, raw: unknown = baseConfig()): Promise<Running> {
  const control = new FakeControl(raw)
  const logs: string[] = []
  const log = pino({ level: 'debug' }, { write: (s: string) => { logs.push(s) } })
  const server = createAdminServer(control, adminCfg(over), { log, ...opts })
  const { port } = await server.listen()
  tap.teardown(() => server.close())
  return { url: `http://127.0.0.1:${port}`, port, control, logs }
}

const withTokens = { tokens: [{ name: 'alice', token: ALICE }, { name: 'bob', token: BOB }] }

async function call (r: Running, method: string, path: string, opts: { token?: string, json?: unknown, body?: string | Buffer, type?: string, headers?: Record<string, string> } = {}): Promise<{ status: number, body: Json, text: string, headers: Record<string, string | string[] | undefined> }> {
  const headers: Record<string, string> = { ...opts.headers }
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
  let body = opts.body
  if (opts.json !== undefined) body = JSON.stringify(opts.json)
  if (body !== undefined || opts.type !== undefined) headers['content-type'] = opts.type ?? 'application/json'
  const res = await request(r.url + path, { method: method as 'GET', headers, body })
  const text = await res.body.text()
  let parsed: Json = {}
  try { parsed = JSON.parse(text) as Json } catch {}
  return { status: res.statusCode, body: parsed, text, headers: res.headers }
}

/** Send raw bytes; collect the answer until the server closes or `ms` pass. */
function raw (port: number, chunks: Array<string | Buffer>, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    let out = ''
    const timer = setTimeout(() => { s.destroy(); resolve(out) }, ms)
    s.on('data', (d: Buffer) => { out += d.toString('latin1') })
    s.on('error', () => { clearTimeout(timer); resolve(out) })
    s.on('close', () => { clearTimeout(timer); resolve(out) })
    for (const c of chunks) s.write(c)
  })
}

t.test('schema: defaults, token rules, compiles under the strict config ajv', async (t) => {
  const ajv = createConfigAjv()
  // As the gateway schema holds it: under `admin` (a root `default` is ignored in strict mode).
  const wrapped = ajv.compile({ type: 'object', additionalProperties: false, properties: { admin: adminSchema } })
  const root: Json = {}
  t.ok(wrapped(root))
  const validate = ajv.compile({ ...adminSchema, default: undefined })
  t.same(root.admin, { enabled: true, host: '127.0.0.1', port: 9901, tokens: [], stateDir: './.tollgate', keepVersions: 50, responseGenerationHeader: false, metricsWithoutToken: false })
  t.ok(validate({ tokens: [{ name: 'ci', token: 'x'.repeat(16) }], port: 0 }), 'port 0 and a 16-character token are fine')
  t.notOk(validate({ tokens: [{ name: 'ci', token: 'x'.repeat(15) }] }), 'token under 16 characters')
  t.notOk(validate({ tokens: [{ name: 'ci', token: 'has space in it 12345' }] }), 'token a Bearer header cannot carry')
  t.notOk(validate({ tokens: [{ name: 'local', token: 'x'.repeat(20) }] }), 'reserved actor name')
  t.notOk(validate({ tokens: [{ token: 'x'.repeat(20) }] }), 'name required')
  t.notOk(validate({ port: 70000 }))
  t.notOk(validate({ bogus: 1 }), 'additionalProperties: false')
})

t.test('isLoopbackHost', async (t) => {
  const cases: Array<[string, boolean]> = [
    ['127.0.0.1', true], ['127.1.2.3', true], ['localhost', true], ['LOCALHOST', true], ['::1', true], ['[::1]', true],
    ['0:0:0:0:0:0:0:1', true], ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.1', false], ['128.0.0.1', false], ['127.1', false], ['0127.0.0.1', false],
    ['localhost.evil.example', false], ['::2', false], ['', false], ['::ffff:10.0.0.1', false]
  ]
  for (const [h, want] of cases) t.equal(isLoopbackHost(h), want, h)
})

t.test('refuses to start open on a non-loopback address', async (t) => {
  const log = pino({ level: 'silent' })
  const control = new FakeControl(baseConfig())
  for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
    t.throws(() => createAdminServer(control, adminCfg({ host }), { log }), { code: 'GW_ERR_ADMIN_UNSAFE' }, host)
  }
  t.doesNotThrow(() => createAdminServer(control, adminCfg({ host: '0.0.0.0', ...withTokens }), { log }), 'with tokens it may')
  t.throws(() => createAdminServer(control, adminCfg({ tokens: [{ name: 'a', token: ALICE }, { name: 'a', token: BOB }] }), { log }), { code: 'GW_ERR_CONFIG_INVALID' }, 'duplicate names')
  t.throws(() => createAdminServer(control, adminCfg({ tokens: [{ name: 'a', token: ALICE }, { name: 'b', token: ALICE }] }), { log }), { code: 'GW_ERR_CONFIG_INVALID' }, 'duplicate tokens')
})

t.test('listen error is GW_ERR_LISTEN', async (t) => {
  const a = await start(t)
  const s = createAdminServer(new FakeControl(baseConfig()), adminCfg({ port: a.port }), { log: pino({ level: 'silent' }) })
  await t.rejects(s.listen(), { code: 'GW_ERR_LISTEN' })
})

t.test('auth: bearer tokens', async (t) => {
  const r = await start(t, withTokens)
  const none = await call(r, 'GET', '/config')
  t.equal(none.status, 401)
  t.equal(none.headers['www-authenticate'], 'Bearer realm="tollgate-admin"')
  t.match(none.headers['content-type'], /^application\/problem\+json/)
  t.equal(none.body.code, 'GW_ERR_ADMIN_AUTH')
  t.equal(none.body.status, 401)

  for (const bad of [`Bearer ${ALICE}x`, `Bearer ${ALICE.slice(0, -1)}`, 'Bearer ', `Basic ${ALICE}`, ALICE, `Bearer ${ALICE} ${BOB}`]) {
    const res = await call(r, 'GET', '/config', { headers: { authorization: bad } })
    t.equal(res.status, 401, `refused: ${bad.slice(0, 12)}...`)
    t.equal(res.body.code, 'GW_ERR_ADMIN_AUTH')
  }
  t.equal((await call(r, 'GET', '/config', { headers: { authorization: `bearer  ${BOB}` } })).status, 200, 'scheme is case-insensitive')

  const unauthPut = await call(r, 'PUT', '/config', { json: { routes: [] } })
  t.equal(unauthPut.status, 401, 'a write without a token')
  t.equal(r.control.list.length, 1, 'nothing applied')

  const ok = await call(r, 'GET', '/config', { token: ALICE })
  t.equal(ok.status, 200)

  const put = await call(r, 'PUT', '/config', { token: BOB, json: { routes: [] } })
  t.equal(put.status, 200)
  t.equal(r.control.current().actor, 'bob', "the actor is the token's name")
  const put2 = await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [] } })
  t.equal(put2.status, 200)
  t.equal(r.control.current().actor, 'alice')

  const all = r.logs.join('')
  t.notMatch(all, ALICE, 'no token in the log')
  t.notMatch(all, BOB, 'no token in the log')
  t.match(all, /request without a valid token/)
  t.match(all, /"actor":"bob"/)
})

t.test('no tokens on loopback: actor local; browser-borne requests refused', async (t) => {
  const r = await start(t)
  const put = await call(r, 'PUT', '/config', { json: { routes: [] } })
  t.equal(put.status, 200)
  t.equal(r.control.current().actor, 'local')
  t.equal((await call(r, 'GET', '/status', { headers: { authorization: 'Bearer whatever-it-is-1234' } })).status, 200, 'a token is not needed')

  const cross = await call(r, 'PUT', '/config', { json: { routes: [] }, headers: { origin: 'https://evil.example' } })
  t.equal(cross.status, 403, 'a cross-site page')
  t.equal(cross.body.code, 'GW_ERR_ADMIN_AUTH')
  const rebound = await call(r, 'GET', '/config', { headers: { host: 'evil.example:9901' } })
  t.equal(rebound.status, 403, 'DNS rebinding: a foreign Host')
  t.equal((await call(r, 'GET', '/status', { headers: { host: `localhost:${r.port}` } })).status, 200)
  t.equal((await call(r, 'GET', '/status', { headers: { host: `[::1]:${r.port}` } })).status, 200)
  t.equal(r.control.list.length, 2, 'nothing applied by the refused requests')
})

t.test('GET /config: masked, ETag, no way to unmask', async (t) => {
  const r = await start(t, withTokens)
  for (const path of ['/config', '/config?unmasked=1', '/config?unmasked=true']) {
    const res = await call(r, 'GET', path, { token: ALICE })
    t.equal(res.status, 200)
    t.equal(res.headers.etag, '"1"')
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(res.headers['cache-control'], 'no-store')
    t.notMatch(res.text, SECRET, `${path}: the secret is not in the answer`)
    t.equal(res.body.config.plugins[1].config.secret, '[redacted]')
    t.equal(res.body.config.plugins[1].config.leeway, 5, 'non-secret values stay')
    t.equal(res.body.config.routes[0].plugins[0].config.key, 'ip', '`key` in rate-limit is not a secret')
    t.match(res.body, { version: 1, generation: 1, actor: 'startup', appliedAt: new Date(0).toISOString() })
  }
  const own = await start(t, withTokens, {}, { ...baseConfig(), admin: { port: 9901, ...withTokens } })
  const ownRes = await call(own, 'GET', '/config', { token: ALICE })
  t.notMatch(ownRes.text, ALICE, "the admin block's own tokens are masked")
  t.notMatch(ownRes.text, BOB)
  t.equal(ownRes.body.config.admin.port, 9901)
  const head = await request(`${r.url}/config`, { method: 'HEAD', headers: { authorization: `Bearer ${ALICE}` } })
  t.equal(head.statusCode, 200)
  t.equal(await head.body.text(), '')
})

t.test('GET /config/versions: newest first, no configs in it', async (t) => {
  const r = await start(t, withTokens)
  await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [], x: SECRET } })
  await call(r, 'PUT', '/config', { token: BOB, json: { routes: [] } })
  const res = await call(r, 'GET', '/config/versions', { token: ALICE })
  t.equal(res.status, 200)
  t.same(res.body.versions.map((v: Json) => [v.version, v.actor, v.generation]), [[3, 'bob', 3], [2, 'alice', 2], [1, 'startup', 1]])
  t.same(Object.keys(res.body.versions[0]).sort(), ['actor', 'appliedAt', 'generation', 'reason', 'version'])
  t.notMatch(res.text, SECRET)
})

t.test('PUT /config', async (t) => {
  const r = await start(t, withTokens)
  const ok = await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [{ name: 'a' }] } })
  t.equal(ok.status, 200)
  t.match(ok.body, { ok: true, version: 2, generation: 2 })
  t.equal(ok.headers.etag, '"2"')
  t.match(r.control.calls.at(-1), { op: 'apply', actor: 'alice', opts: { reason: 'apply', source: 'admin API' } })
  t.equal((r.control.calls.at(-1)?.opts as Json).ifMatch, undefined, 'no If-Match: no precondition')

  const quoted = await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [] }, headers: { 'if-match': '"2"' } })
  t.equal(quoted.status, 200, 'If-Match "2"')
  const bare = await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [] }, headers: { 'if-match': '3' } })
  t.equal(bare.status, 200, 'If-Match 3')

  const stale = await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [] }, headers: { 'if-match': '"2"' } })
  t.equal(stale.status, 409)
  t.equal(stale.body.code, 'GW_ERR_CONFIG_CONFLICT')
  t.match(stale.headers['content-type'], /^application\/problem\+json/)

  for (const h of ['W/"4"', '"abc"', '"4", "5"', '0', '-1']) {
    const res = await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [] }, headers: { 'if-match': h } })
    t.equal(res.status, 400, `If-Match ${h}`)
  }

  const invalid = await call(r, 'PUT', '/config', { token: ALICE, json: { listen: {} } })
  t.equal(invalid.status, 400)
  t.equal(invalid.body.code, 'GW_ERR_CONFIG_INVALID')
  t.same(invalid.body.problems, ["admin API: /: must have required property 'routes'"])

  const failed = await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [], fail: true } })
  t.equal(failed.status, 500)
  t.equal(failed.body.code, 'GW_ERR_UPDATE_FAILED')
  t.equal(r.control.current().version, 4, 'refused updates left the version alone')
})

t.test('request bodies: JSON, YAML, limits, types', async (t) => {
  const r = await start(t, withTokens)
  const yaml = await call(r, 'PUT', '/config', { token: ALICE, type: 'application/yaml', body: 'routes:\n  - name: from-yaml\n    upstream: http://127.0.0.1:1\n' })
  t.equal(yaml.status, 200, 'application/yaml')
  t.same(r.control.current().raw, { routes: [{ name: 'from-yaml', upstream: 'http://127.0.0.1:1' }] })
  t.equal((await call(r, 'PUT', '/config', { token: ALICE, type: 'text/yaml; charset=utf-8', body: 'routes: []' })).status, 200, 'text/yaml')
  t.equal((await call(r, 'PUT', '/config', { token: ALICE, type: 'application/json; charset=UTF-8', body: '{"routes":[]}' })).status, 200, 'charset=UTF-8')

  const version = r.control.current().version
  const plain = await call(r, 'PUT', '/config', { token: ALICE, type: 'text/plain', body: '{"routes":[]}' })
  t.equal(plain.status, 415)
  t.match(plain.body, { status: 415, code: 'GW_BAD_REQUEST' })
  t.equal((await call(r, 'PUT', '/config', { token: ALICE, type: 'application/x-www-form-urlencoded', body: 'routes=1' })).status, 415)
  t.equal((await call(r, 'PUT', '/config', { token: ALICE, type: 'application/json; charset=latin1', body: '{"routes":[]}' })).status, 415)
  const untyped = await request(`${r.url}/config`, { method: 'PUT', headers: { authorization: `Bearer ${ALICE}` }, body: '{"routes":[]}' })
  t.equal(untyped.statusCode, 415, 'no Content-Type')
  await untyped.body.dump()

  const badJson = await call(r, 'PUT', '/config', { token: ALICE, body: '{"routes": [' })
  t.equal(badJson.status, 400)
  t.match(badJson.body, { code: 'GW_BAD_REQUEST', detail: /not valid JSON/ })
  const badYaml = await call(r, 'PUT', '/config', { token: ALICE, type: 'application/yaml', body: 'routes: [\n  a: : b' })
  t.equal(badYaml.status, 400)
  t.match(badYaml.body.detail, /not valid YAML/)
  t.equal((await call(r, 'PUT', '/config', { token: ALICE, type: 'application/yaml', body: 'a: 1\na: 2\nroutes: []' })).status, 400, 'duplicate YAML keys')
  t.equal((await call(r, 'PUT', '/config', { token: ALICE, body: '' })).status, 400, 'empty body')
  t.equal((await call(r, 'PUT', '/config', { token: ALICE, body: Buffer.from([0x7b, 0xff, 0x7d]) })).status, 400, 'not UTF-8')
  const deep = await call(r, 'PUT', '/config', { token: ALICE, body: '{"routes":[],"x":' + '['.repeat(5000) + ']'.repeat(5000) + '}' })
  t.equal(deep.status, 400, 'deep nesting')
  t.match(deep.body.detail, /deeper/)
  t.equal(r.control.current().version, version, 'nothing applied')

  // Declared too large: refused before the body is sent, and the connection closed.
  const declared = await raw(r.port, [`PUT /config HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ALICE}\r\nContent-Type: application/json\r\nContent-Length: ${10 * 1024 * 1024 + 1}\r\n\r\n`])
  t.match(declared, /^HTTP\/1\.1 413 /)
  t.match(declared, /connection: close/i)
  t.match(declared, /GW_BAD_REQUEST/)

  // Chunked, overflowing as it streams.
  const chunk = Buffer.alloc(1024 * 1024, 0x20)
  const parts: Array<string | Buffer> = [`PUT /config HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ALICE}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`]
  for (let i = 0; i < 11; i++) parts.push(`${chunk.length.toString(16)}\r\n`, chunk, '\r\n')
  const streamed = await raw(r.port, parts)
  t.match(streamed, /^HTTP\/1\.1 413 /)

  // 10 MiB exactly is fine (whitespace around a small config).
  const big = Buffer.concat([Buffer.from('{"routes":[]}'), Buffer.alloc(10 * 1024 * 1024 - 13, 0x20)])
  t.equal((await call(r, 'PUT', '/config', { token: ALICE, body: big })).status, 200, 'exactly 10 MiB')
})

t.test('POST /config/validate: a dry run', async (t) => {
  const r = await start(t, withTokens)
  const ok = await call(r, 'POST', '/config/validate', { token: ALICE, json: { routes: [] } })
  t.equal(ok.status, 200)
  t.equal(ok.body.ok, true)
  const bad = await call(r, 'POST', '/config/validate', { token: ALICE, json: { routes: [{}] } })
  t.equal(bad.status, 400)
  t.same(bad.body.problems, ['admin API: /routes/0/name: required'])
  t.equal(r.control.list.length, 1, 'nothing applied')
  t.equal((await call(r, 'POST', '/config/validate', { token: ALICE, type: 'text/plain', body: 'x' })).status, 415)
})

t.test('PATCH /config/routes/:name: merge patch, If-Match required', async (t) => {
  const r = await start(t, withTokens)
  const patch = { stripPrefix: null, match: { methods: ['GET'], exact: true }, preserveHost: true }
  const noIf = await call(r, 'PATCH', '/config/routes/orders', { token: ALICE, json: patch })
  t.equal(noIf.status, 428)
  t.match(noIf.body.detail, /If-Match/)
  t.equal(r.control.list.length, 1)

  const res = await call(r, 'PATCH', '/config/routes/orders', { token: ALICE, json: patch, headers: { 'if-match': '"1"' } })
  t.equal(res.status, 200)
  t.equal(res.headers.etag, '"2"')
  const route = (r.control.current().raw as Json).routes[0]
  t.same(route, {
    name: 'orders',
    match: { path: '/orders', methods: ['GET'], exact: true },
    upstream: 'http://127.0.0.1:3000',
    plugins: [{ name: 'rate-limit', config: { limits: [{ limit: 10, window: '1s' }], key: 'ip' } }],
    preserveHost: true
  }, 'null removed stripPrefix, objects merged, arrays replaced')
  t.same((r.control.current().raw as Json).routes[1], baseConfig().routes[1], 'other routes untouched')
  t.same(r.control.versions()[1]?.raw, baseConfig(), 'the previous version was not modified')
  t.match(r.control.calls.at(-1), { op: 'apply', actor: 'alice', opts: { ifMatch: 1, reason: 'patch routes/orders' } })
  t.equal(r.control.current().reason, 'patch routes/orders')

  const stale = await call(r, 'PATCH', '/config/routes/orders', { token: ALICE, json: { preserveHost: false }, headers: { 'if-match': '"1"' } })
  t.equal(stale.status, 409)
  t.equal(stale.body.code, 'GW_ERR_CONFIG_CONFLICT')

  const star = await call(r, 'PATCH', '/config/routes/users', { token: ALICE, json: { stripPrefix: true }, headers: { 'if-match': '*' } })
  t.equal(star.status, 200, 'If-Match: * patches the running version')
  t.equal((r.control.calls.at(-1)?.opts as Json).ifMatch, 2, '...and still guards against a concurrent change')

  const missing = await call(r, 'PATCH', '/config/routes/nope', { token: ALICE, json: { stripPrefix: true }, headers: { 'if-match': '3' } })
  t.equal(missing.status, 404)
  t.match(missing.body.detail, /routes\/nope/)
  t.equal((await call(r, 'PATCH', '/config/routes/orders', { token: ALICE, json: [1], headers: { 'if-match': '3' } })).status, 400, 'a patch must be an object')
  t.equal((await call(r, 'PATCH', '/config/routes/orders', { token: ALICE, type: 'application/merge-patch+json', body: '{"exact":true}', headers: { 'if-match': '3' } })).status, 200, 'application/merge-patch+json')

  const invalid = await call(r, 'PATCH', '/config/routes/orders', { token: ALICE, json: { name: null }, headers: { 'if-match': '4' } })
  t.equal(invalid.status, 400, 'a patch that makes the config invalid')
  t.equal(invalid.body.code, 'GW_ERR_CONFIG_INVALID')

  // A __proto__ member stays data: it does not reach Object.prototype or the route's prototype.
  const proto = await call(r, 'PATCH', '/config/routes/orders', { token: ALICE, body: '{"__proto__":{"polluted":true},"match":{"__proto__":{"x":1}}}', headers: { 'if-match': '4' } })
  t.equal(proto.status, 200)
  const patched = (r.control.current().raw as Json).routes[0]
  t.equal(({} as Json).polluted, undefined)
  t.equal(Object.getPrototypeOf(patched), Object.prototype)
  t.ok(Object.hasOwn(patched, '__proto__'))
  t.equal(Object.getPrototypeOf(patched.match), Object.prototype)
})

t.test('PATCH plugin entries, global and per route', async (t) => {
  const r = await start(t, withTokens)
  const g = await call(r, 'PATCH', '/config/plugins/1', { token: ALICE, json: { config: { leeway: 10, issuer: null } }, headers: { 'if-match': '1' } })
  t.equal(g.status, 200)
  t.same((r.control.current().raw as Json).plugins[1], { name: 'jwt', config: { secret: SECRET, leeway: 10 } })
  t.equal(r.control.current().reason, 'patch plugins/1')
  t.equal((await call(r, 'PATCH', '/config/plugins/2', { token: ALICE, json: {}, headers: { 'if-match': '2' } })).status, 404, 'past the end')
  t.equal((await call(r, 'PATCH', '/config/plugins/01', { token: ALICE, json: {}, headers: { 'if-match': '2' } })).status, 400, 'not an index')
  t.equal((await call(r, 'PATCH', '/config/plugins/x', { token: ALICE, json: {}, headers: { 'if-match': '2' } })).status, 400, 'not an index')

  const rp = await call(r, 'PATCH', '/config/routes/orders/plugins/0', { token: ALICE, json: { config: { limits: [{ limit: 5, window: '1s' }] } }, headers: { 'if-match': '2' } })
  t.equal(rp.status, 200)
  t.same((r.control.current().raw as Json).routes[0].plugins[0].config, { limits: [{ limit: 5, window: '1s' }], key: 'ip' })
  t.equal(r.control.current().reason, 'patch routes/orders/plugins/0')
  t.equal((await call(r, 'PATCH', '/config/routes/users/plugins/0', { token: ALICE, json: {}, headers: { 'if-match': '3' } })).status, 404, 'a route without plugins')
  t.equal((await call(r, 'PATCH', '/config/routes/nope/plugins/0', { token: ALICE, json: {}, headers: { 'if-match': '3' } })).status, 404)
  t.equal((await call(r, 'PATCH', '/config/routes/orders/plugins/0', { token: ALICE, json: {} })).status, 428)
})

t.test('PUT and DELETE /config/routes/:name', async (t) => {
  const r = await start(t, withTokens)
  const route = { match: { path: '/items' }, upstream: 'http://127.0.0.1:3002' }
  t.equal((await call(r, 'PUT', '/config/routes/items', { token: ALICE, json: route })).status, 428)
  const created = await call(r, 'PUT', '/config/routes/items', { token: ALICE, json: route, headers: { 'if-match': '1' } })
  t.equal(created.status, 201, 'created')
  t.same((r.control.current().raw as Json).routes.map((x: Json) => x.name), ['orders', 'users', 'items'])
  t.same((r.control.current().raw as Json).routes[2], { ...route, name: 'items' })

  const replaced = await call(r, 'PUT', '/config/routes/orders', { token: ALICE, json: { name: 'orders', match: { path: '/o' }, upstream: 'http://127.0.0.1:1' }, headers: { 'if-match': '2' } })
  t.equal(replaced.status, 200, 'replaced')
  t.same((r.control.current().raw as Json).routes[0], { name: 'orders', match: { path: '/o' }, upstream: 'http://127.0.0.1:1' }, 'whole route replaced, in place')
  t.equal(r.control.current().reason, 'put routes/orders')

  t.equal((await call(r, 'PUT', '/config/routes/orders', { token: ALICE, json: { name: 'other' }, headers: { 'if-match': '3' } })).status, 400, 'name differs from the path')

  t.equal((await call(r, 'DELETE', '/config/routes/users', { token: ALICE })).status, 428)
  const del = await call(r, 'DELETE', '/config/routes/users', { token: ALICE, headers: { 'if-match': '"3"' } })
  t.equal(del.status, 200)
  t.same((r.control.current().raw as Json).routes.map((x: Json) => x.name), ['orders', 'items'])
  t.equal(r.control.current().reason, 'delete routes/users')
  t.equal((await call(r, 'DELETE', '/config/routes/users', { token: ALICE, headers: { 'if-match': '"4"' } })).status, 404)
  t.equal((await call(r, 'DELETE', '/config/routes/orders', { token: ALICE, headers: { 'if-match': '"3"' } })).status, 409)
})

t.test('consumers, when the config has them', async (t) => {
  const r = await start(t, withTokens)
  t.equal((await call(r, 'PATCH', '/config/consumers/acme', { token: ALICE, json: { plan: 'gold' }, headers: { 'if-match': '1' } })).status, 404, 'no consumers list')

  const r2 = await start(t, withTokens, {}, { ...baseConfig(), consumers: [{ id: 'acme', apiKey: SECRET, plan: 'free' }, { id: 'a b', plan: 'free' }] })
  const got = await call(r2, 'GET', '/config', { token: ALICE })
  t.equal(got.body.config.consumers[0].apiKey, '[redacted]')
  const p = await call(r2, 'PATCH', '/config/consumers/acme', { token: ALICE, json: { plan: 'gold' }, headers: { 'if-match': '1' } })
  t.equal(p.status, 200)
  t.same((r2.control.current().raw as Json).consumers[0], { id: 'acme', apiKey: SECRET, plan: 'gold' })
  t.equal(r2.control.current().reason, 'patch consumers/acme')
  t.equal((await call(r2, 'PATCH', '/config/consumers/a%20b', { token: ALICE, json: { plan: 'gold' }, headers: { 'if-match': '2' } })).status, 200, 'ids are %-decoded')
  t.equal((await call(r2, 'PATCH', '/config/consumers/%zz', { token: ALICE, json: {}, headers: { 'if-match': '3' } })).status, 400, 'malformed escape')
  t.equal((await call(r2, 'PUT', '/config/consumers/new', { token: ALICE, json: { plan: 'free' }, headers: { 'if-match': '3' } })).status, 201)
  t.equal((await call(r2, 'DELETE', '/config/consumers/new', { token: ALICE, headers: { 'if-match': '4' } })).status, 200)
})

t.test('POST /config/rollback', async (t) => {
  const r = await start(t, withTokens)
  await call(r, 'PUT', '/config', { token: ALICE, json: { routes: [] } })
  const res = await call(r, 'POST', '/config/rollback', { token: BOB, json: { version: 1 } })
  t.equal(res.status, 200)
  t.match(res.body, { ok: true, version: 3 })
  t.same(r.control.current().raw, baseConfig())
  t.equal(r.control.current().actor, 'bob')
  const gone = await call(r, 'POST', '/config/rollback', { token: BOB, json: { version: 99 } })
  t.equal(gone.status, 404)
  t.equal(gone.body.code, 'GW_ERR_VERSION_NOT_FOUND')
  for (const body of [{}, { version: '1' }, { version: 0 }, { version: 1.5 }, [1]]) {
    t.equal((await call(r, 'POST', '/config/rollback', { token: BOB, json: body })).status, 400, JSON.stringify(body))
  }
  const huge = await call(r, 'POST', '/config/rollback', { token: BOB, json: { version: 1, pad: 'x'.repeat(70_000) } })
  t.equal(huge.status, 413, 'a small body limit here')
})

t.test('POST /config/reload', async (t) => {
  const absent = await start(t, withTokens)
  t.equal((await call(absent, 'POST', '/config/reload', { token: ALICE })).status, 404)

  const actors: string[] = []
  const r = await start(t, withTokens, {
    reloadFromFile: async (actor) => { actors.push(actor); return { ok: true, version: 2, generation: 2, summary: emptySummary, ms: 1 } }
  })
  const res = await call(r, 'POST', '/config/reload', { token: BOB })
  t.equal(res.status, 200)
  t.match(res.body, { ok: true, version: 2 })
  t.same(actors, ['bob'])
  t.equal((await call(r, 'GET', '/config/reload', { token: BOB })).status, 405)

  const failing = await start(t, withTokens, {
    reloadFromFile: async () => { throw new GatewayError('GW_ERR_CONFIG_PARSE', "cannot parse config file 'g.yaml': bad", 500, { details: ['g.yaml: bad'] }) }
  })
  const f = await call(failing, 'POST', '/config/reload', { token: BOB })
  t.equal(f.status, 500)
  t.match(f.body, { code: 'GW_ERR_CONFIG_PARSE', problems: ['g.yaml: bad'] })
})

t.test('GET /status and GET /audit', async (t) => {
  const limits: number[] = []
  const r = await start(t, withTokens, { audit: { entries: async (limit) => { limits.push(limit); return [{ actor: 'bob', action: 'apply' }, { actor: 'alice', action: 'startup' }] } } })
  const s = await call(r, 'GET', '/status', { token: ALICE })
  t.equal(s.status, 200)
  t.match(s.body, { version: '0.1.0', configVersion: 1, generation: 1, uptimeS: 3723 })
  const a = await call(r, 'GET', '/audit', { token: ALICE })
  t.equal(a.status, 200)
  t.same(a.body.entries, [{ actor: 'bob', action: 'apply' }, { actor: 'alice', action: 'startup' }])
  t.equal((await call(r, 'GET', '/audit?limit=5', { token: ALICE })).status, 200)
  t.same(limits, [100, 5])
  for (const l of ['0', '1001', 'x', '-1', '1e3']) t.equal((await call(r, 'GET', `/audit?limit=${l}`, { token: ALICE })).status, 400, `limit=${l}`)

  const none = await start(t, withTokens)
  t.equal((await call(none, 'GET', '/audit', { token: ALICE })).status, 404, 'no audit source')
})

t.test('GET / is the dashboard page, with or without a token; without tokens only for loopback and no Origin', async (t) => {
  const r = await start(t, withTokens)
  for (const token of [undefined, ALICE]) {
    const res = await call(r, 'GET', '/', { token })
    t.equal(res.status, 200)
    t.match(res.headers['content-type'], /^text\/html/)
    t.match(res.headers['content-security-policy'], /^default-src 'none'; script-src 'sha256-/)
    t.match(res.text, /<title>tollgate<\/title>/)
  }
  t.equal((await call(r, 'POST', '/', {})).status, 401, 'only GET and HEAD go without a token')
  t.equal((await call(r, 'GET', '/blocks', {})).status, 401, 'the block list needs the token')
  t.equal((await call(r, 'GET', '/blocks', { token: ALICE })).status, 404, 'and is 404 where the gateway keeps none')
  const open = await start(t)
  t.equal((await call(open, 'GET', '/')).status, 200)
  t.equal((await call(open, 'GET', '/', { headers: { origin: 'http://evil.example' } })).status, 403, 'no tokens: a cross-site request is refused')
})

t.test('unknown paths 404, wrong methods 405 with Allow', async (t) => {
  const r = await start(t, withTokens)
  for (const p of ['/nope', '/config/', '/config/routes', '/config/routes/a/b', '/status/x']) {
    const res = await call(r, 'GET', p, { token: ALICE })
    t.equal(res.status, 404, p)
    t.equal(res.body.code, 'GW_NO_ROUTE')
  }
  const cases: Array<[string, string, string]> = [
    ['DELETE', '/config', 'GET, HEAD, PUT'],
    ['POST', '/config', 'GET, HEAD, PUT'],
    ['PUT', '/status', 'GET, HEAD'],
    ['GET', '/config/validate', 'POST'],
    ['GET', '/config/routes/orders', 'PATCH, PUT, DELETE'],
    ['PUT', '/config/plugins/0', 'PATCH']
  ]
  for (const [m, p, allow] of cases) {
    const res = await call(r, m, p, { token: ALICE })
    t.equal(res.status, 405, `${m} ${p}`)
    t.equal(res.headers.allow, allow)
    t.equal(res.body.code, 'GW_METHOD_NOT_ALLOWED')
  }
  const unauth = await call(r, 'GET', '/nope')
  t.equal(unauth.status, 401, 'auth before routing: paths are not revealed')
})

t.test('close: stops listening; a close without listen resolves', async (t) => {
  const control = new FakeControl(baseConfig())
  const s = createAdminServer(control, adminCfg(), { log: pino({ level: 'silent' }) })
  const { port } = await s.listen()
  await s.close()
  await t.rejects(request(`http://127.0.0.1:${port}/status`))
  await createAdminServer(control, adminCfg(), { log: pino({ level: 'silent' }) }).close()
})

t.test('applyMergePatch (RFC 7396 appendix A)', async (t) => {
  const cases: Array<[unknown, unknown, unknown]> = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }]
  ]
  for (const [target, patch, want] of cases) t.same(applyMergePatch(target, patch), want, `${JSON.stringify(target)} + ${JSON.stringify(patch)}`)
  const target = { a: { b: 1 } }
  applyMergePatch(target, { a: { b: 2 } })
  t.same(target, { a: { b: 1 } }, 'the target is not modified')
})

t.test('formatUptime', async (t) => {
  t.equal(formatUptime(0), '0s')
  t.equal(formatUptime(59.9), '59s')
  t.equal(formatUptime(3723), '1h 2m 3s')
  t.equal(formatUptime(86400 + 5), '1d 0h 0m 5s')
})

/** Run the built CLI (the suite runs `npm run build` first). */
function cli (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const clean = { ...process.env }
    delete clean.TOLLGATE_ADMIN_TOKEN
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`tollgate ${args.join(' ')} did not exit; stderr: ${stderr}`)) }, 20_000)
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

t.test('CLI: tollgate status', async (t) => {
  const r = await start(t, withTokens)
  const ok = await cli(['status', '--admin', r.url, '--token', ALICE])
  t.equal(ok.code, 0, ok.stderr)
  t.equal(ok.stdout, 'tollgate 0.1.0 on 127.0.0.1:8080\nconfig version 1, generation 1\nworkers 1/2 alive\nuptime 1h 2m 3s\nupstream orders,orders-v2: 1/2 targets healthy\n  http://127.0.0.1:3002 ejected until 2026-01-01T00:00:30.000Z\n')
  const env = await cli(['status', '--admin', r.url], { TOLLGATE_ADMIN_TOKEN: BOB })
  t.equal(env.code, 0, 'token from TOLLGATE_ADMIN_TOKEN')

  const noToken = await cli(['status', '--admin', r.url])
  t.equal(noToken.code, 2)
  t.match(noToken.stderr, /^tollgate: the admin API at .* refused the request: it needs a token/)
  t.equal(noToken.stderr.trim().split('\n').length, 1, 'one line')
  const wrong = await cli(['status', '--admin', r.url, '--token', 'wrong-token-0123456789'])
  t.equal(wrong.code, 2)
  t.match(wrong.stderr, /the token is not valid \[GW_ERR_ADMIN_AUTH\]/)
  t.equal(wrong.stderr.trim().split('\n').length, 1, 'one line')
  t.notMatch(wrong.stderr + wrong.stdout, 'wrong-token-0123456789', 'the token is not echoed')

  const port = await deadPort()
  const down = await cli(['status', '--admin', `http://127.0.0.1:${port}`, '--token', ALICE])
  t.equal(down.code, 2)
  t.match(down.stderr, new RegExp(`^tollgate: cannot reach the admin API at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`))
  t.equal(down.stderr.trim().split('\n').length, 1, 'one line')

  const usage = await cli(['status', '--admin', 'ftp://x'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /--admin must be an http/)
  t.equal((await cli(['status', '--upstream', 'http://127.0.0.1:1'])).code, 2, 'serve flags do not go with status')
})

t.test('CLI: tollgate reload', async (t) => {
  const actors: string[] = []
  const r = await start(t, withTokens, {
    reloadFromFile: async (actor) => { actors.push(actor); return { ok: true, version: 7, generation: 9, summary: { ...emptySummary, routes: { added: ['a'], removed: [], changed: ['b'] } }, ms: 12 } }
  })
  const own = await cli(['reload', '--admin', r.url, '--token', ALICE])
  t.equal(own.code, 0, own.stderr)
  t.equal(own.stdout, 'applied: config version 7, generation 9 (12 ms); routes +a ~b\n')
  t.same(actors, ['alice'])

  const dir = t.testdir({
    'new.yaml': 'routes:\n  - name: fresh\n    upstream: http://127.0.0.1:3000\n',
    'bad.yaml': 'listen: {}\n',
    'broken.yaml': 'routes: [\n'
  })
  const file = await cli(['reload', '--admin', r.url, '--token', BOB, '--config', join(dir, 'new.yaml')])
  t.equal(file.code, 0, file.stderr)
  t.match(file.stdout, /^applied: config version 2, generation 2/)
  t.same(r.control.current().raw, { routes: [{ name: 'fresh', upstream: 'http://127.0.0.1:3000' }] })
  t.equal(r.control.current().actor, 'bob')
  t.match(r.control.calls.at(-1), { op: 'apply', opts: { ifMatch: 1 } }, 'If-Match from the ETag')

  const bad = await cli(['reload', '--admin', r.url, '--token', BOB, '--config', join(dir, 'bad.yaml')])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /^tollgate: the admin API refused PUT \/config \(400\): .* \[GW_ERR_CONFIG_INVALID\]\nadmin API: \/: must have required property 'routes'\n$/)
  const broken = await cli(['reload', '--admin', r.url, '--token', BOB, '--config', join(dir, 'broken.yaml')])
  t.equal(broken.code, 2)
  t.match(broken.stderr, /GW_ERR_CONFIG_PARSE/)
  t.equal(r.control.current().version, 2, 'nothing applied')

  const port = await deadPort()
  const down = await cli(['reload', '--admin', `http://127.0.0.1:${port}`])
  t.equal(down.code, 2)
  t.match(down.stderr, /^tollgate: cannot reach the admin API at /)
})

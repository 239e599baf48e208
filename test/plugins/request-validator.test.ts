import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { request } from 'undici'
import requestValidator from '../../plugins/request-validator/index.js'
import { cachedValidators } from '../../plugins/request-validator/compile.js'
import { scanJson } from '../../plugins/request-validator/json.js'
import { rng } from '../../bench/lib/rng.js'
import { compileLinear } from '../../plugins/request-validator/linear-regexp.js'
import { parseQuery } from '../../plugins/request-validator/query.js'
import { mediaRangeMatcher, parseMediaType } from '../../plugins/request-validator/request-validator.js'
import { createPluginHarness } from '../../src/testing.js'
import type { Harness, HarnessResult } from '../../src/testing.js'
import { rawRequest, runCli, startGateway, startUpstream } from '../helpers/gateway.js'

type Json = Record<string, unknown>
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

const ORDER = {
  type: 'object',
  additionalProperties: false,
  required: ['sku', 'quantity'],
  properties: {
    sku: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{4}$' },
    quantity: { type: 'integer', minimum: 1, maximum: 100 },
    note: { type: 'string', maxLength: 200 },
    tags: { type: 'array', maxItems: 5, items: { type: 'string' } }
  }
}

/** A request with a body, its Content-Length set as a client would. */
function post (h: Harness, body: string | Buffer, headers: Record<string, string> = {}, method = 'POST'): Promise<HarnessResult> {
  return h.request({ method, path: '/orders', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers }, body })
}

function problem (r: HarnessResult): Json {
  return (typeof r.body === 'string' ? JSON.parse(r.body) : r.body) as Json
}

/* ------------------------------ config ------------------------------ */

t.test('config: bad options are refused with the path and reason', async (t) => {
  await t.resolves(createPluginHarness(requestValidator, {}))
  const bad: Array<[Json, string]> = [
    [{ maxDepth: 0 }, '/maxDepth: must be >= 1'],
    [{ maxBodySize: 1.5 }, '/maxBodySize: must be an integer'],
    [{ contentTypes: ['json'] }, '/contentTypes/0: must match'],
    [{ contentTypes: [] }, '/contentTypes: must NOT have fewer than 1 items'],
    [{ bodyRequired: ['post'] }, '/bodyRequired/0: must match'],
    [{ body: 'string' }, '/body: must be an object'],
    [{ regExpEngine: 're2' }, '/regExpEngine: must be one of: "linear", "native"'],
    [{ bodySchema: {} }, "/: unknown property 'bodySchema'"]
  ]
  for (const [config, line] of bad) {
    await t.rejects(createPluginHarness(requestValidator, config), { code: 'GW_ERR_CONFIG_INVALID', details: [new RegExp('^' + line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))] }, JSON.stringify(config))
  }
})

t.test('config: a schema that does not compile is refused with its JSON pointer', async (t) => {
  const cases: Array<[Json, RegExp]> = [
    [{ body: { type: 'strin' } }, /^\/body\/type: must be equal to one of the allowed values/],
    [{ body: { type: 'object', properties: { name: { type: 'string', maxLenght: 3 } } } }, /^\/body\/properties\/name\/maxLenght: strict mode: unknown keyword: "maxLenght"/],
    [{ query: { type: 'object', properties: { a: { $ref: '#/$defs/missing' } } } }, /^\/query\/properties\/a\/\$ref: can't resolve reference #\/\$defs\/missing/],
    [{ headers: { type: 'object', properties: { 'x-a': { type: 'string', pattern: '(' } } } }, /^\/headers\/properties\/x-a\/pattern: pattern "\(": not a valid regular expression/],
    [{ body: { type: 'object', patternProperties: { '^(?=x)': {} } } }, /^\/body\/patternProperties\/\^\(\?=x\): pattern "\^\(\?=x\)": a lookahead .* only regExpEngine: native allows it/],
    [{ params: { type: 'object', properties: { id: { type: 'string', pattern: '^(a)\\1$' } } } }, /^\/params\/properties\/id\/pattern: .*a backreference/],
    [{ body: { type: 'object', properties: { d: { type: 'string', format: 'no-such-format' } } } }, /unknown format "no-such-format"/]
  ]
  for (const [config, detail] of cases) {
    await t.rejects(createPluginHarness(requestValidator, config), { code: 'GW_ERR_CONFIG_INVALID', details: [detail] }, JSON.stringify(config))
  }
  // Every problem of the config is reported, not just the first.
  await t.rejects(createPluginHarness(requestValidator, { body: { type: 1 }, query: { type: 'object', properties: { q: { pattern: '(?<=a)' } } } }), { code: 'GW_ERR_CONFIG_INVALID', details: [/^\/query\/properties\/q\/pattern/, /^\/body\/type/] })
  // The native engine takes what V8 takes.
  await t.resolves(createPluginHarness(requestValidator, { regExpEngine: 'native', params: { type: 'object', properties: { id: { type: 'string', pattern: '^(a)\\1$' } } } }))
})

t.test('tollgate validate reports a bad schema with its entry path', async (t) => {
  const dir = t.testdir({ 'g.json': JSON.stringify({ routes: [{ name: 'a', match: { path: '/' }, upstream: 'http://127.0.0.1:1', plugins: [{ name: 'request-validator', config: { body: { type: 'object', properties: { n: { type: 'numbr' } } } } }] }] }) })
  const r = await runCli(['validate', join(dir, 'g.json')])
  t.equal(r.code, 2)
  t.match(r.stderr, "/routes/0/plugins/0: plugin 'request-validator' failed in create()")
  t.match(r.stderr, '/body/properties/n/type: must be equal to one of the allowed values')
})

/* ------------------------------ the body ------------------------------ */

t.test('a valid body passes and is left for later plugins; an invalid one gets a bounded 400 (J1)', async (t) => {
  const h = await createPluginHarness(requestValidator, { body: ORDER })
  const ok = await post(h, JSON.stringify({ sku: 'ABC-1234', quantity: 2, tags: ['a'] }))
  t.equal(ok.replied, false)
  t.same((ok.ctx.state['request-validator'] as Json).body, { sku: 'ABC-1234', quantity: 2, tags: ['a'] })

  const bad = await post(h, JSON.stringify({ sku: 'abc', quantity: 0 }))
  t.equal(bad.status, 400)
  const p = problem(bad)
  t.match(p, { status: 400, code: 'BODY_INVALID', title: 'Bad Request', type: 'about:blank' })
  t.equal((p.errors as unknown[]).length, 1, 'allErrors is off: the first violation only')
  t.match(p.errors, [{ in: 'body', pointer: '/sku', message: 'must match pattern "^[A-Z]{3}-[0-9]{4}$"' }])
  t.match(p.detail, 'the request body does not match the schema: /sku must match pattern')
  t.equal(bad.reply?.contentType, 'application/problem+json')

  // Extra properties (additionalProperties: false), missing ones, wrong types: each at its pointer.
  t.match(problem(await post(h, JSON.stringify({ sku: 'ABC-1234', quantity: 1, admin: true }))).errors, [{ pointer: '/admin', message: 'is not allowed' }])
  t.match(problem(await post(h, JSON.stringify({ sku: 'ABC-1234' }))).errors, [{ pointer: '/quantity', message: 'is required' }])
  t.match(problem(await post(h, JSON.stringify({ sku: 'ABC-1234', quantity: '2' }))).errors, [{ pointer: '/quantity', message: 'must be integer' }], 'the body is never coerced')
  t.match(problem(await post(h, '[1,2]')).errors, [{ pointer: '', message: 'must be object' }])

  // allErrors: every violation, capped at maxErrors; names from the request are cut short.
  const all = await createPluginHarness(requestValidator, { allErrors: true, maxErrors: 3, body: { type: 'object', additionalProperties: false, properties: { a: { type: 'string' } } } })
  const many = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}${'x'.repeat(i === 0 ? 1000 : 0)}`, i]))
  const r = problem(await post(all, JSON.stringify({ a: 1, ...many })))
  t.equal((r.errors as unknown[]).length, 3)
  t.ok(JSON.stringify(r).length < 1000, 'the answer stays small whatever the request')
  t.notMatch(JSON.stringify(r), 'x'.repeat(100), 'a long key is not echoed whole')

  // exposeErrors: false names the part only.
  const quiet = await createPluginHarness(requestValidator, { body: ORDER, exposeErrors: false })
  const q = await post(quiet, JSON.stringify({ sku: 'abc', quantity: 1 }))
  t.same(problem(q), { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'the request body does not match the schema', code: 'BODY_INVALID' })
})

t.test('a catastrophic-backtracking pattern stays bounded (J2)', async (t) => {
  // ^(a+)+$ against "aaaa...a!" takes V8's backtracking engine 2^n steps; the linear engine
  // reads the input once. Were it backtracking, this test would not finish.
  const schema = { type: 'object', properties: { name: { type: 'string', pattern: '^(a+)+$' }, alt: { type: 'string', pattern: '^(a|aa)+$' } } }
  const h = await createPluginHarness(requestValidator, { body: schema })
  for (const field of ['name', 'alt']) {
    const evil = await post(h, JSON.stringify({ [field]: 'a'.repeat(50_000) + '!' }))
    t.equal(evil.status, 400, field)
    t.match(problem(evil).errors, [{ pointer: '/' + field, message: /^must match pattern/ }])
    t.equal((await post(h, JSON.stringify({ [field]: 'a'.repeat(50_000) }))).replied, false)
  }
  // With V8's engine, a maxLength beside the pattern is what keeps it bounded: ajv checks
  // the length first and, with allErrors off, stops there.
  const native = await createPluginHarness(requestValidator, { regExpEngine: 'native', body: { type: 'object', properties: { name: { type: 'string', maxLength: 16, pattern: '^(a+)+$' } } } })
  const r = await post(native, JSON.stringify({ name: 'a'.repeat(40) + '!' }))
  t.equal(r.status, 400)
  t.match(problem(r).errors, [{ pointer: '/name', message: 'must NOT have more than 16 characters' }])
  // $data is off: a pattern cannot come from the request.
  await t.rejects(createPluginHarness(requestValidator, { body: { type: 'object', properties: { p: { type: 'string' }, s: { type: 'string', pattern: { $data: '1/p' } } } } }))
})

t.test('deep nesting and huge arrays are refused before parsing (J3)', async (t) => {
  const h = await createPluginHarness(requestValidator, { body: { type: 'array' } })
  const deep = await post(h, '['.repeat(10_000) + ']'.repeat(10_000))
  t.equal(deep.status, 400)
  t.match(problem(deep), { code: 'BODY_TOO_DEEP', detail: 'the body nests arrays and objects more than 32 deep' })
  const deepObj = await post(h, '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000))
  t.match(problem(deepObj), { code: 'BODY_TOO_DEEP' })
  t.equal((await post(h, '['.repeat(32) + ']'.repeat(32))).replied, false, 'exactly maxDepth is fine')

  // 1 MB of array, under maxBodySize (1 MiB): refused by member count.
  const huge = '[' + Array(500_000).fill('0').join(',') + ']'
  t.ok(huge.length < 1_048_576)
  const big = await post(h, huge)
  t.match(problem(big), { code: 'BODY_TOO_MANY_ELEMENTS', detail: 'an array in the body has more than 10000 members' })
  t.equal((await post(h, '[' + Array(10_000).fill('0').join(',') + ']')).replied, false, 'exactly maxElements is fine')
  t.match(problem(await post(h, '[{' + Array.from({ length: 10_001 }, (_, i) => `"k${i}":1`).join(',') + '}]')), { code: 'BODY_TOO_MANY_ELEMENTS', detail: /an object/ })

  // Past maxBodySize: 413 from readBody, before anything is parsed.
  const small = await createPluginHarness(requestValidator, { body: { type: 'array' }, maxBodySize: 1000 })
  const over = await post(small, '[' + '1,'.repeat(600) + '1]')
  t.equal(over.status, 413)
  t.equal(over.ctx.outcome.code, 'GW_BODY_TOO_LARGE')

  const loose = await createPluginHarness(requestValidator, { body: {}, maxDepth: 1000, maxElements: 1_000_000 })
  t.equal((await post(loose, '['.repeat(1000) + ']'.repeat(1000))).replied, false, 'limits are configurable')
})

t.test('prototype pollution: __proto__ and constructor.prototype keys are refused; Object.prototype is untouched (J4)', async (t) => {
  const h = await createPluginHarness(requestValidator, { body: { type: 'object' } })
  const attacks = [
    '{"__proto__":{"admin":true}}',
    '{"a":[{"b":{"__proto__":{"admin":true}}}]}',
    '{"\\u005f_proto__":{"admin":true}}',
    '{"constructor":{"prototype":{"admin":true}}}',
    '{"x":{"constructor":{"\\u0070rototype":{"admin":true}}}}'
  ]
  for (const body of attacks) {
    const r = await post(h, body)
    t.equal(r.status, 400, body)
    t.match(problem(r), { code: 'BODY_FORBIDDEN_KEY' }, body)
  }
  // Innocent uses of the words are fine.
  for (const body of ['{"constructor":"Alice"}', '{"prototype":{"a":1}}', '{"constructor":[{"prototype":1}]}', '{"text":"__proto__"}']) {
    t.equal((await post(h, body)).replied, false, body)
  }
  t.equal(({} as Json).admin, undefined)
  t.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'admin'), false)

  // rejectProtoKeys: false keeps them as data: own properties of the parsed body, no pollution.
  const keep = await createPluginHarness(requestValidator, { rejectProtoKeys: false, body: { type: 'object', required: ['__proto__'] } })
  const r = await post(keep, '{"__proto__":{"admin":true}}')
  t.equal(r.replied, false)
  const parsed = (r.ctx.state['request-validator'] as { body: Json }).body
  t.ok(Object.prototype.hasOwnProperty.call(parsed, '__proto__'))
  t.equal(Object.getPrototypeOf(parsed), Object.prototype)
  t.equal(({} as Json).admin, undefined)
})

t.test('duplicate keys are refused (parsers disagree on which wins), unless allowed', async (t) => {
  const h = await createPluginHarness(requestValidator, { body: { type: 'object' } })
  for (const body of ['{"role":"user","role":"admin"}', '{"a":{"role":1,"r\\u006fle":2}}']) {
    t.match(problem(await post(h, body)), { code: 'BODY_DUPLICATE_KEY', detail: 'an object in the body names the key "role" twice' }, body)
  }
  t.equal((await post(h, '{"a":{"k":1},"b":{"k":1},"c":[{"k":1},{"k":2}]}')).replied, false, 'the same key in different objects')
  const allow = await createPluginHarness(requestValidator, { body: { type: 'object' }, rejectDuplicateKeys: false })
  t.equal((await post(allow, '{"role":"user","role":"admin"}')).replied, false)
})

t.test('a body must be JSON, sent as JSON (J5)', async (t) => {
  const h = await createPluginHarness(requestValidator, { body: ORDER })
  const json = JSON.stringify({ sku: 'ABC-1234', quantity: 1 })
  const unsupported: Array<Record<string, string>> = [
    { 'content-type': 'text/plain' },
    { 'content-type': 'application/x-www-form-urlencoded' },
    { 'content-type': 'application/json; charset=utf-16' },
    { 'content-type': 'application/jsonp' },
    { 'content-type': 'json' },
    { 'content-type': 'application/json', 'content-encoding': 'gzip' }
  ]
  for (const headers of unsupported) {
    const r = await post(h, json, headers)
    t.equal(r.status, 415, JSON.stringify(headers))
    t.match(problem(r), { code: 'UNSUPPORTED_MEDIA_TYPE' })
  }
  const none = await h.request({ method: 'POST', headers: { 'content-length': String(json.length) }, body: json })
  t.equal(none.status, 415)
  t.match(problem(none).detail, 'no Content-Type')
  t.equal(none.responseHeaders['accept-post'], 'application/json, application/*+json')
  t.equal((await post(h, json, { 'content-type': 'text/plain' }, 'PATCH')).responseHeaders['accept-patch'], 'application/json, application/*+json')
  t.equal((await h.request({ method: 'POST', headers: { 'content-type': ['application/json', 'text/plain'], 'content-length': String(json.length) }, body: json })).status, 415, 'two Content-Types')

  for (const ct of ['application/json', 'Application/JSON; charset=UTF-8', 'application/merge-patch+json', 'application/vnd.api+json;charset="utf-8"']) {
    t.equal((await post(h, json, { 'content-type': ct })).replied, false, ct)
  }
  const custom = await createPluginHarness(requestValidator, { body: ORDER, contentTypes: ['application/x-order'] })
  t.equal((await post(custom, json, { 'content-type': 'application/x-order' })).replied, false)
  t.equal((await post(custom, json)).status, 415)

  // Not JSON at all, or not UTF-8: 400, without quoting the input back.
  const notJson = await post(h, '{"sku": SECRET-INPUT}')
  t.match(problem(notJson), { code: 'BODY_NOT_JSON', detail: /^the body is not valid JSON/ })
  t.notMatch(JSON.stringify(problem(notJson)), 'SECRET')
  t.match(problem(await post(h, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))), { code: 'BODY_NOT_JSON', detail: 'the body is not UTF-8 text' })
  t.match(problem(await post(h, '\ufeff' + json)), { code: 'BODY_NOT_JSON' }, 'a byte order mark is not JSON')
})

t.test('a missing body: required for POST, PUT and PATCH; other methods may send one', async (t) => {
  const h = await createPluginHarness(requestValidator, { body: ORDER })
  const missing = await h.request({ method: 'POST', headers: { 'content-type': 'application/json' } })
  t.match(problem(missing), { status: 400, code: 'BODY_MISSING' })
  t.match(problem(await post(h, '')), { code: 'BODY_MISSING' })
  t.match(problem(await h.request({ method: 'PUT', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } })), { code: 'BODY_MISSING' }, 'chunked with no data')
  t.equal((await h.request({ method: 'GET' })).replied, false)
  t.equal((await h.request({ method: 'DELETE', headers: { 'content-length': '0' } })).replied, false)
  // A body on a GET is still checked: the upstream may read it.
  t.equal((await post(h, '{"x":1}', {}, 'GET')).status, 400)
  const optional = await createPluginHarness(requestValidator, { body: ORDER, bodyRequired: [] })
  t.equal((await optional.request({ method: 'POST' })).replied, false)
  // No body schema: the body is not looked at (and not read: it streams to the upstream).
  const noBody = await createPluginHarness(requestValidator, { query: { type: 'object' } })
  const r = await post(noBody, 'not json at all', { 'content-type': 'text/plain' })
  t.equal(r.replied, false)
})

/* ------------------------------ query, params, headers ------------------------------ */

t.test('query: parsed into an object, repeated names as arrays, types coerced', async (t) => {
  const h = await createPluginHarness(requestValidator, {
    query: {
      type: 'object',
      additionalProperties: false,
      required: ['limit'],
      properties: {
        limit: { type: 'integer', minimum: 1, maximum: 100 },
        tag: { type: 'array', items: { type: 'string', enum: ['a', 'b', 'c d'] }, maxItems: 3 },
        sort: { type: 'string', enum: ['asc', 'desc'] },
        active: { type: 'boolean' }
      }
    }
  })
  for (const query of ['limit=10', 'limit=10&tag=a', 'limit=10&tag=a&tag=b', 'limit=1&tag=c+d&tag=c%20d&sort=asc&active=true']) {
    const r = await h.request({ query })
    t.equal(r.replied, false, query)
    t.equal(r.upstreamQuery, query, 'the query goes upstream as sent')
  }
  const cases: Array<[string, Json]> = [
    ['', { pointer: '/limit', message: 'is required' }],
    ['limit=abc', { pointer: '/limit', message: 'must be integer' }],
    ['limit=1.5', { pointer: '/limit', message: 'must be integer' }],
    ['limit=0', { pointer: '/limit', message: 'must be >= 1' }],
    ['limit=1&limit=2', { pointer: '/limit', message: 'must be integer' }],
    ['limit=1&sort=up', { pointer: '/sort' }],
    ['limit=1&tag=x', { pointer: '/tag/0' }],
    ['limit=1&tag=a&tag=a&tag=a&tag=a', { pointer: '/tag' }],
    ['limit=1&other=1', { pointer: '/other', message: 'is not allowed' }],
    ['limit=1&__proto__=1', { pointer: '/__proto__', message: 'is not allowed' }]
  ]
  for (const [query, err] of cases) {
    const r = await h.request({ query })
    t.equal(r.status, 400, query)
    t.match(problem(r), { code: 'QUERY_INVALID', errors: [{ in: 'query', ...err }] }, query)
  }
  t.match(problem(await h.request({ query: 'limit=%E0%A4%A' })), { code: 'QUERY_INVALID', detail: 'the query string has a malformed percent-escape' })
  t.equal(({} as Json)['1'], undefined)
})

t.test('params and headers: coerced, header names case-insensitive', async (t) => {
  const h = await createPluginHarness(requestValidator, {
    params: { type: 'object', required: ['id'], properties: { id: { type: 'integer', minimum: 1 }, slug: { type: 'string', pattern: '^[a-z-]+$' } } },
    headers: { type: 'object', required: ['X-Tenant'], properties: { 'X-Tenant': { type: 'string', pattern: '^[a-z]{2,8}$' }, 'x-retries': { type: 'integer', maximum: 3 } } }
  })
  const ok = await h.request({ params: { id: '42', slug: 'a-b' }, headers: { 'X-Tenant': 'acme', 'x-retries': '2' } })
  t.equal(ok.replied, false)
  t.equal(ok.upstreamHeaders['x-retries'], '2', 'headers go upstream as sent (coercion works on a copy)')
  t.equal(ok.ctx.headers['x-retries'], '2')

  t.match(problem(await h.request({ params: { id: 'x' }, headers: { 'x-tenant': 'acme' } })), { code: 'PARAMS_INVALID', errors: [{ in: 'params', pointer: '/id', message: 'must be integer' }] })
  t.match(problem(await h.request({ params: { id: '1', slug: 'A' }, headers: { 'x-tenant': 'acme' } })), { code: 'PARAMS_INVALID', errors: [{ pointer: '/slug' }] })
  t.match(problem(await h.request({ params: { id: '1' } })), { code: 'HEADERS_INVALID', errors: [{ in: 'headers', pointer: '/x-tenant', message: 'is required' }] })
  t.match(problem(await h.request({ params: { id: '1' }, headers: { 'x-tenant': 'acme', 'x-retries': '9' } })), { code: 'HEADERS_INVALID', errors: [{ pointer: '/x-retries', message: 'must be <= 3' }] })
})

/* ------------------------------ modes and dialects ------------------------------ */

t.test('enforce: false logs what would be refused and lets the request through', async (t) => {
  const lines: Json[] = []
  const log = pino({ level: 'warn' }, { write: (s: string) => { lines.push(JSON.parse(s) as Json) } })
  const h = await createPluginHarness(requestValidator, { enforce: false, body: ORDER, query: { type: 'object', properties: { n: { type: 'integer' } } } }, { log })
  const r = await post(h, JSON.stringify({ sku: 'nope', quantity: 1 }))
  t.equal(r.replied, false)
  t.equal(r.ctx.state['request-validator'], undefined, 'an invalid body is not offered to later plugins')
  t.equal((await h.request({ query: 'n=x' })).replied, false)
  t.equal((await post(h, '{}', { 'content-type': 'text/plain' })).replied, false)
  t.match(lines, [{ code: 'BODY_INVALID', errors: [{ pointer: '/sku' }] }, { code: 'QUERY_INVALID' }, { code: 'UNSUPPORTED_MEDIA_TYPE' }])
})

t.test('draft 2020-12 schemas', async (t) => {
  const h = await createPluginHarness(requestValidator, { draft: '2020-12', body: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }], items: false } })
  t.equal((await post(h, '["a",1]')).replied, false)
  t.equal((await post(h, '["a",1,2]')).status, 400)
  await t.rejects(createPluginHarness(requestValidator, { body: { type: 'array', prefixItems: [{}] } }), { code: 'GW_ERR_CONFIG_INVALID', details: [/prefixItems/] }, 'not a draft-07 keyword')
})

t.test('validators are compiled once per schema and reused across generations', async (t) => {
  const schema = { type: 'object', properties: { unique: { const: 'cache-test' } } }
  await createPluginHarness(requestValidator, { body: schema })
  const n = cachedValidators()
  await createPluginHarness(requestValidator, { body: structuredClone(schema) })
  t.equal(cachedValidators(), n, 'the same schema text hits the cache')
  // Schemas with the same $id in two generations do not clash.
  await createPluginHarness(requestValidator, { body: { $id: 'https://example.test/order', type: 'object' } })
  await t.resolves(createPluginHarness(requestValidator, { body: { $id: 'https://example.test/order', type: 'array' } }))
  // Bounded: hundreds of distinct schemas do not grow it past its cap.
  for (let i = 0; i < 300; i++) await createPluginHarness(requestValidator, { body: { type: 'object', properties: { [`p${i}`]: { type: 'string' } } } })
  t.ok(cachedValidators() <= 256)
})

/* ------------------------------ building blocks ------------------------------ */

t.test('the linear engine agrees with V8 on a table of patterns and inputs', async (t) => {
  const patterns = ['^a+$', 'a(b|c)*d', '^(a+)+$', '^[A-Z]{3}-\\d{4}$', '\\bfoo\\b', '^$', '', 'x*', '^\\p{L}+$', '[^]', '[]', '^.{2,4}$',
    '(?:ab|a)(?:bc|c)', '^\\u{1F600}$', '^\\uD83D\\uDE00$', '(?<n>ab)+c', '^(a|aa)+$', 'colou?r', '^[\\w.+-]+@[\\w-]+\\.[\\w.-]+$', '\\Bb',
    '^\\d{0,3}$', 'a{2}', 'a{2,}', '$', '^\\/api\\/v[12]$', '^(?:x|y|)*$', '.', '^[\\s\\S]*$', '\\cJ', '\\x41', '^[^a-c]+$', 'a$|^b',
    '(^|x)y($|z)', '^(?:$|a)', 'é+$', '[😀-😂]{2}', '^(?:a|$)(?:$|b)$', '^(a|ab)*c$', '^(?:a*b*)*$', '(x|)+$', '^\\S+\\s\\S+$']
  const inputs = ['', 'a', 'aa', 'aaa!', 'abcd', 'abd', 'ad', 'ABC-1234', 'ABC-123', 'a foo b', 'foob', 'héllo', '😀', 'x😀', 'abab c',
    'ababc', 'color', 'colour', 'john.doe+x@ex-ample.com', 'bb', '12', '1234', 'xyxy', '/api/v1', '\n', 'A', 'ddd', 'abc', 'abbc', 'aaaa',
    'ba', 'b', 'y', 'xyz', 'xy', 'éé', 'x😁😂', 'ab', '\ud83d', 'aabc', 'a b', 'a\nb']
  let mismatches = 0
  for (const p of patterns) {
    const native = new RegExp(p, 'u')
    const linear = compileLinear(p)
    for (const s of inputs) {
      if (native.test(s) !== linear.test(s)) {
        mismatches++
        t.fail(`${p} on ${JSON.stringify(s)}: V8 ${native.test(s)}, linear ${linear.test(s)}`)
      }
    }
  }
  t.equal(mismatches, 0)
  t.throws(() => compileLinear('a{1000}'.repeat(30)), /instructions/)
})

t.test('scanJson and parseQuery', async (t) => {
  const limits = { maxDepth: 3, maxElements: 3, rejectDuplicateKeys: true, rejectProtoKeys: true }
  t.equal(scanJson('{"a":[1,2,3],"b":{"c":"[[[[{{{{"}}', limits), undefined, 'brackets inside strings do not count')
  t.equal(scanJson('{"a":"\\"[[[[\\\\"}', limits), undefined, 'nor after escaped quotes')
  t.match(scanJson('[[[[1]]]]', limits), { code: 'BODY_TOO_DEEP' })
  t.match(scanJson('[1,2,3,4]', limits), { code: 'BODY_TOO_MANY_ELEMENTS' })
  t.equal(scanJson('[[1,2,3],[1,2,3],[1,2,3]]', limits), undefined, 'counted per container')
  t.match(scanJson('{"a":1,"b":2,"a":3}', limits), { code: 'BODY_DUPLICATE_KEY' })
  t.equal(scanJson('{"a":"a","b":"a"}', limits), undefined, 'values are not keys')
  const deep = { maxDepth: 64, maxElements: 1000, rejectDuplicateKeys: true, rejectProtoKeys: true }
  t.match(scanJson('{"a":1,"\\u0061":2}', deep), { code: 'BODY_DUPLICATE_KEY', detail: /"a"/ }, 'a key written with escapes is the same key')
  t.equal(scanJson('{"x":{"a":1},"a":2}', deep), undefined, 'a nested object\'s keys are its own')
  t.match(scanJson('{"a":{"b":1,"c":[{"b":2}]},"d":1,"a":3}', deep), { code: 'BODY_DUPLICATE_KEY' }, 'found again after nested containers close')
  const many = Array.from({ length: 40 }, (_, i) => `"k${i}":${i}`)
  t.equal(scanJson(`{${many.join(',')}}`, deep), undefined, '40 different keys')
  t.match(scanJson(`{${many.join(',')},"k3":0}`, deep), { code: 'BODY_DUPLICATE_KEY', detail: /"k3"/ }, 'a duplicate among more than 16 keys')
  t.match(scanJson(`{${many.join(',')},"k\\u0033":0}`, deep), { code: 'BODY_DUPLICATE_KEY' }, 'and written with escapes')
  t.match(scanJson('{"\\u005f_proto__":1}', deep), { code: 'BODY_FORBIDDEN_KEY' }, '__proto__ written with escapes')
  t.match(scanJson('{"a":1,"constructor":{"x":1,"prototype":{}}}', deep), { code: 'BODY_FORBIDDEN_KEY' })
  t.equal(scanJson('{"constructor":1,"b":{"prototype":1}}', deep), undefined, 'prototype under another key')

  // Differential: random bodies, with one duplicate put in (or not) at a random object, keys
  // randomly written with escapes; the scan must find exactly the planted duplicates.
  const rand = rng(7)
  const spell = (k: string): string => [...k].map((ch) => rand() < 0.2 ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : ch).join('')
  const objects: string[][] = []
  const gen = (d: number): string => {
    if (d > 4 || rand() < 0.3) return rand() < 0.5 ? String(Math.floor(rand() * 100)) : '"v{,}[]"'
    if (rand() < 0.3) return `[${Array.from({ length: Math.floor(rand() * 4) }, () => gen(d + 1)).join(',')}]`
    const n = Math.floor(rand() * (rand() < 0.2 ? 30 : 6))
    const keys = Array.from({ length: n }, (_, i) => `k${i}${rand() < 0.5 ? 'x' : ''}`)
    const members = keys.map((k) => `"${spell(k)}":${gen(d + 1)}`)
    objects.push(members)
    return `{${members.join(',')}}`
  }
  let planted = 0
  let found = 0
  for (let i = 0; i < 400; i++) {
    objects.length = 0
    let body = gen(0)
    const plant = rand() < 0.5 && objects.some((m) => m.length > 0)
    if (plant) {
      // Re-generate with a duplicate: append a copy of an existing member's key to one object.
      const withKeys = objects.filter((m) => m.length > 0)
      const target = withKeys[Math.floor(rand() * withKeys.length)] as string[]
      const victim = target[Math.floor(rand() * target.length)] as string
      const key = victim.slice(0, victim.indexOf('":') + 1)
      const text = `{${target.join(',')}}`
      body = body.replace(text, `{${target.join(',')},${key}:0}`)
      planted++
    }
    const r = scanJson(body, deep)
    if (r?.code === 'BODY_DUPLICATE_KEY') found++
    if ((r?.code === 'BODY_DUPLICATE_KEY') !== plant) t.fail(`body ${i}: planted ${String(plant)}, scan said ${r?.code ?? 'ok'}: ${body.slice(0, 200)}`)
  }
  t.ok(planted > 100, `${planted} duplicates planted`)
  t.equal(found, planted, 'every planted duplicate found, and nothing else')
  // Garbage never throws or loops; JSON.parse has the last word on it.
  for (const junk of ['', '"', '"\\', '}}}', ']', ',,,', '{"a', '{"\\u12"', '[' + '"'.repeat(1001)]) t.doesNotThrow(() => scanJson(junk, limits), JSON.stringify(junk))

  t.same(parseQuery(''), {})
  t.same({ ...parseQuery('a=1&b=x&b=y&c&&d=&e=%2F+%20') }, { a: '1', b: ['x', 'y'], c: '', d: '', e: '/  ' })
  t.equal(Object.getPrototypeOf(parseQuery('__proto__=1')), null)
  t.equal(parseQuery('a=%zz'), undefined)

  t.same(parseMediaType('Application/JSON ; Charset="UTF-8"'), { type: 'application/json', charset: 'utf-8' })
  t.equal(parseMediaType('nonsense'), undefined)
  const m = mediaRangeMatcher(['application/*+json', 'text/*'])
  t.ok(m('application/problem+json'))
  t.ok(m('text/csv'))
  t.notOk(m('application/+json'))
  t.notOk(m('application/json'))
})

/* ------------------------------ OpenAPI ------------------------------ */

const OPENAPI_30 = `
openapi: 3.0.3
info: { title: shop, version: '1' }
paths:
  /orders/{orderId}/lines:
    parameters:
      - $ref: '#/components/parameters/OrderId'
    post:
      operationId: addLine
      parameters:
        - { name: dryRun, in: query, schema: { type: boolean } }
        - { name: X-Tenant, in: header, required: true, schema: { type: string, pattern: '^[a-z]+$' } }
        - { name: Content-Type, in: header, required: true, schema: { type: string, enum: [never] } }
        - { name: session, in: cookie, schema: { type: string } }
      requestBody:
        $ref: '#/components/requestBodies/Line'
      responses: { '201': { description: created } }
  /ping:
    get:
      responses: { '200': { description: ok } }
components:
  parameters:
    OrderId: { name: orderId, in: path, required: true, schema: { type: integer, format: int32, minimum: 1 } }
  requestBodies:
    Line:
      required: true
      content:
        application/json:
          schema: { $ref: '#/components/schemas/Line' }
  schemas:
    Line:
      type: object
      additionalProperties: false
      required: [sku, price]
      x-internal: true
      properties:
        sku: { type: string, example: ABC-1234 }
        price: { type: number, minimum: 0, exclusiveMinimum: true }
        note: { $ref: '#/components/schemas/Note', maxLength: 1 }
        comment: { type: string, nullable: true }
        parts: { type: array, items: { $ref: '#/components/schemas/Line' } }
        code: { type: string, format: sku-code }
    Note: { type: string, nullable: true }
`

const OPENAPI_31 = {
  openapi: '3.1.0',
  info: { title: 'shop', version: '1' },
  paths: {
    '/items': {
      put: {
        parameters: [{ name: 'ids', in: 'query', schema: { type: 'array', items: { type: 'integer' } } }],
        requestBody: { content: { 'application/merge-patch+json': { schema: { $ref: '#/components/schemas/Patch' } }, 'text/plain': { schema: { type: 'string' } } } }
      }
    }
  },
  components: { schemas: { Patch: { type: 'object', properties: { name: { type: ['string', 'null'] }, tags: { type: 'array', prefixItems: [{ const: 'first' }] } } } } }
}

t.test('openapi: one operation\'s body and parameters, with local $refs resolved', async (t) => {
  const dir = t.testdir({ 'api.yaml': OPENAPI_30, 'api31.json': JSON.stringify(OPENAPI_31), 'bad-ref.yaml': OPENAPI_30.replace("'#/components/schemas/Line' }\n  schemas", "'other.yaml#/Line' }\n  schemas"), 'swagger.yaml': 'swagger: "2.0"\n' })
  const h = await createPluginHarness(requestValidator, { openapi: { file: join(dir, 'api.yaml'), operationId: 'addLine' } })
  const line = { sku: 'ABC-1234', price: 1.5, note: 'a long note', comment: null, parts: [{ sku: 'X', price: 2, note: null }] }
  const go = (body: unknown, params: Record<string, string> = { orderId: '7' }, headers: Record<string, string> = { 'x-tenant': 'acme' }, query = ''): Promise<HarnessResult> =>
    h.request({ method: 'POST', query, params, headers: { 'content-type': 'application/json', 'content-length': String(JSON.stringify(body).length), ...headers }, body: JSON.stringify(body) })
  t.equal((await go(line)).replied, false, 'recursive schema, nullable, 3.0 $ref siblings ignored, Content-Type parameter ignored, cookie not checked')
  t.match(problem(await go({ ...line, price: 0 })), { code: 'BODY_INVALID', errors: [{ pointer: '/price', message: 'must be > 0' }] }, 'exclusiveMinimum: true')
  t.match(problem(await go({ ...line, parts: [{ sku: 'X' }] })), { errors: [{ pointer: '/parts/0/price', message: 'is required' }] })
  t.match(problem(await go({ ...line, extra: 1 })), { errors: [{ pointer: '/extra' }] })
  t.match(problem(await go(line, { orderId: '0' })), { code: 'PARAMS_INVALID' })
  t.match(problem(await go(line, { orderId: '7' }, {})), { code: 'HEADERS_INVALID', errors: [{ pointer: '/x-tenant' }] })
  t.match(problem(await go(line, { orderId: '7' }, { 'x-tenant': 'acme' }, 'dryRun=maybe')), { code: 'QUERY_INVALID' })
  t.match(problem(await h.request({ method: 'POST', params: { orderId: '7' }, headers: { 'x-tenant': 'acme' } })), { code: 'BODY_MISSING' }, 'requestBody.required')
  t.equal((await go(line, { orderId: '7' }, { 'x-tenant': 'acme', 'content-type': 'text/plain' })).status, 415)

  const byPath = await createPluginHarness(requestValidator, { openapi: { file: join(dir, 'api31.json'), path: '/items', method: 'put' } })
  const put = (body: string, ct = 'application/merge-patch+json', query = ''): Promise<HarnessResult> => byPath.request({ method: 'PUT', query, headers: { 'content-type': ct, 'content-length': String(body.length) }, body })
  t.equal((await put('{"name":null,"tags":["first","x"]}')).replied, false, '3.1: type arrays, prefixItems (2020-12)')
  t.equal((await put('{"tags":["second"]}')).status, 400)
  t.equal((await put('{}', 'application/json')).status, 415, 'only the media types the operation lists')
  t.equal((await byPath.request({ method: 'PUT' })).replied, false, 'requestBody not required')
  t.equal((await put('{}', undefined, 'ids=1&ids=x')).status, 400)

  const errors: Array<[Json, RegExp]> = [
    [{ file: join(dir, 'api.yaml'), operationId: 'nope' }, /\/openapi\/operationId: no operation 'nope'/],
    [{ file: join(dir, 'api.yaml'), path: '/nope', method: 'get' }, /no operation GET \/nope/],
    [{ file: join(dir, 'api.yaml') }, /give operationId, or path and method/],
    [{ file: join(dir, 'missing.yaml'), operationId: 'x' }, /\/openapi\/file: cannot read .*ENOENT/],
    [{ file: join(dir, 'swagger.yaml'), operationId: 'x' }, /not an OpenAPI 3.0 or 3.1 document/],
    [{ file: join(dir, 'bad-ref.yaml'), operationId: 'addLine' }, /only local references/]
  ]
  for (const [openapi, message] of errors) {
    await t.rejects(createPluginHarness(requestValidator, { openapi }), { message }, JSON.stringify(openapi))
  }
  await t.rejects(createPluginHarness(requestValidator, { openapi: { file: join(dir, 'api.yaml'), operationId: 'addLine' }, body: {} }), { message: /either openapi or inline schemas/ })
})

/* ------------------------------ through the gateway ------------------------------ */

t.test('through the gateway: valid bodies forwarded byte for byte, invalid ones never reach the upstream', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    files: { 'api.yaml': OPENAPI_30 },
    config: {
      workers: 1,
      routes: [
        { name: 'orders', match: { path: '/orders', methods: ['POST', 'GET'] }, upstream: up.url, plugins: [{ name: 'request-validator', config: { body: ORDER, query: { type: 'object', properties: { dry: { type: 'boolean' } } }, maxBodySize: 65536 } }] },
        { name: 'lines', match: { path: '/orders/:orderId/lines', exact: true }, upstream: up.url, plugins: [{ name: 'request-validator', config: { openapi: { file: 'api.yaml', operationId: 'addLine' } } }] },
        { name: 'files', match: { path: '/files' }, upstream: up.url, plugins: [{ name: 'request-validator', config: { headers: { type: 'object', required: ['x-file-name'] } } }] }
      ]
    }
  })
  const send = async (path: string, body: string | undefined, headers: Record<string, string> = { 'content-type': 'application/json' }, method = 'POST'): Promise<{ status: number, body: string, headers: Record<string, unknown> }> => {
    const r = await request(gw.url + path, { method: method as 'POST', body, headers })
    return { status: r.statusCode, body: await r.body.text(), headers: r.headers }
  }

  // Valid: the upstream gets the exact bytes (spacing, key order, escapes, non-ASCII kept).
  const body = '{ "quantity":2,\n "sku":"ABC-1234", "note":"caf\\u00e9 – é" }'
  const ok = await send('/orders?dry=true', body)
  t.equal(ok.status, 200)
  const echoed = JSON.parse(ok.body) as { sha256: string, length: number, headers: Json, url: string }
  t.equal(echoed.sha256, sha(body))
  t.equal(echoed.length, Buffer.byteLength(body))
  t.equal(echoed.headers['content-length'], String(Buffer.byteLength(body)))
  t.equal(echoed.url, '/orders?dry=true')

  // Chunked in: validated whole, sent on with a Content-Length.
  const chunked = await rawRequest(gw.port, 'POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
    '10\r\n{"sku":"ABC-1234\r\n' + 'f\r\n","quantity":3}\r\n0\r\n\r\n')
  t.match(chunked, /^HTTP\/1\.1 200 /)
  t.equal(up.seen[up.seen.length - 1]?.body.toString(), '{"sku":"ABC-1234","quantity":3}')

  const before = up.seen.length
  const refused: Array<[string, string | undefined, Record<string, string> | undefined, number, string]> = [
    ['/orders', '{"sku":"ABC-1234","quantity":2,"admin":true}', undefined, 400, 'BODY_INVALID'],
    ['/orders', '{"__proto__":{"admin":true},"sku":"ABC-1234","quantity":2}', undefined, 400, 'BODY_FORBIDDEN_KEY'],
    ['/orders', '['.repeat(10_000) + ']'.repeat(10_000), undefined, 400, 'BODY_TOO_DEEP'],
    ['/orders', '{"sku":"' + 'A'.repeat(30_000) + '!","quantity":1}', undefined, 400, 'BODY_INVALID'],
    ['/orders', '{"sku":"ABC-1234","quantity":2}', { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['/orders', 'sku=ABC-1234', { 'content-type': 'application/json' }, 400, 'BODY_NOT_JSON'],
    ['/orders', undefined, { 'content-type': 'application/json' }, 400, 'BODY_MISSING'],
    ['/orders?dry=perhaps', '{"sku":"ABC-1234","quantity":2}', undefined, 400, 'QUERY_INVALID'],
    ['/orders/0/lines', '{"sku":"a","price":1}', { 'content-type': 'application/json', 'x-tenant': 'acme' }, 400, 'PARAMS_INVALID'],
    ['/orders/5/lines', '{"sku":"a","price":-1}', { 'content-type': 'application/json', 'x-tenant': 'acme' }, 400, 'BODY_INVALID'],
    ['/files', 'anything', { 'content-type': 'text/plain' }, 400, 'HEADERS_INVALID']
  ]
  for (const [path, b, headers, status, code] of refused) {
    const r = await send(path, b, headers)
    t.equal(r.status, status, `${path} ${code}`)
    t.match(r.headers['content-type'], /^application\/problem\+json/)
    t.match(JSON.parse(r.body), { status, code }, `${path} ${code}`)
  }
  t.equal(up.seen.length, before, 'the upstream saw none of the refused requests')

  // Routes that only check headers or the query do not read the body: it streams through.
  const stream = await send('/files', 'raw bytes, not JSON', { 'content-type': 'application/octet-stream', 'x-file-name': 'a.bin' })
  t.equal(stream.status, 200)
  t.equal((JSON.parse(stream.body) as { sha256: string }).sha256, sha('raw bytes, not JSON'))
  t.equal((await send('/orders/5/lines', '{"sku":"a","price":1}', { 'content-type': 'application/json', 'x-tenant': 'acme' })).status, 200)
  t.equal((await send('/orders', undefined, {}, 'GET')).status, 200, 'a GET without a body passes')
})

t.test('through the gateway: 413 on Content-Length before the body is sent; a 1 MB array is refused', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: { workers: 1, routes: [{ name: 'r', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'request-validator', config: { body: { type: 'array', items: { type: 'integer' } } } }] }] }
  })
  // Only the headers: the answer comes without a byte of the body sent.
  const early = await rawRequest(gw.port, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n')
  t.match(early, /^HTTP\/1\.1 413 /)
  t.match(early, /"code":"GW_BODY_TOO_LARGE"/)
  t.match(early, /\r\nconnection: close\r\n/i)

  const huge = '[' + Array(500_000).fill('1').join(',') + ']'
  const r = await request(gw.url + '/x', { method: 'POST', body: huge, headers: { 'content-type': 'application/json' } })
  t.equal(r.statusCode, 400)
  t.match(await r.body.json(), { code: 'BODY_TOO_MANY_ELEMENTS' })
  const fine = await request(gw.url + '/x', { method: 'POST', body: '[1,2,3]', headers: { 'content-type': 'application/json' } })
  t.equal(fine.statusCode, 200, 'the worker is fine afterwards')
  await fine.body.text()
  t.equal(up.seen.length, 1)
})

t.test('through the gateway: a changed schema applies after a reload', async (t) => {
  const up = await startUpstream(t)
  const dir = t.testdir({})
  const file = join(dir, 'gateway.json')
  const config = (max: number): string => JSON.stringify({
    listen: { host: '127.0.0.1', port: 0 },
    workers: 1,
    logLevel: 'info',
    routes: [{ name: 'r', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'request-validator', config: { body: { type: 'object', properties: { n: { type: 'integer', maximum: max } } } } }] }]
  })
  writeFileSync(file, config(5))
  const gw = await startGateway(t, { args: ['--config', file] })
  const n7 = async (): Promise<number> => {
    const r = await request(gw.url + '/', { method: 'POST', body: '{"n":7}', headers: { 'content-type': 'application/json' } })
    await r.body.text()
    return r.statusCode
  }
  t.equal(await n7(), 400)
  // The watched file is read again when saved.
  writeFileSync(file, config(10))
  await gw.waitFor((l) => l.msg === 'policy update applied')
  t.equal(await n7(), 200)
})

import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import t from 'tap'
import { request } from 'undici'
// An external author imports these from 'tollgate' and 'tollgate/testing'.
import { definePlugin } from '../../src/index.js'
import type { PluginDefinition } from '../../src/index.js'
import { createPluginHarness } from '../../src/testing.js'
import { rawRequest, runCli, startGateway, startUpstream } from '../../test/helpers/gateway.js'
import plugin from './index.js'
import { REASONS } from './require-header.js'

/** The built module the gateway loads by path (`npm run build` puts it there). */
const BUILT = fileURLToPath(new URL('../../dist/examples/require-header/index.js', import.meta.url))

/** The same plugin, but remembering the config create() got (defaults filled in). */
function spy (): { plugin: typeof plugin, seen: unknown[] } {
  const seen: unknown[] = []
  const def = plugin as unknown as PluginDefinition<Record<string, unknown>>
  const wrapped = definePlugin({ ...def, create: (config, api) => { seen.push(structuredClone(config)); return def.create(config, api) } })
  return { plugin: wrapped as unknown as typeof plugin, seen }
}

/** A logger whose lines land in an array. */
function memoryLog (): { log: pino.Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, { write (s: string) { lines.push(JSON.parse(s) as Record<string, unknown>) } })
  return { log, lines }
}

t.test('definition', async (t) => {
  t.equal(plugin.name, 'require-header')
  t.equal(plugin.phase, 'authz')
  t.equal(plugin.schema.additionalProperties, false, 'unknown config properties are errors')
})

t.test('config: defaults are filled in', async (t) => {
  const s = spy()
  await createPluginHarness(s.plugin, {})
  t.same(s.seen, [{ header: 'x-tenant', maxLength: 256, forward: true, enforce: true }])
  await createPluginHarness(s.plugin, { header: 'X-Org', allow: ['a'] })
  t.same(s.seen[1], { header: 'X-Org', allow: ['a'], maxLength: 256, forward: true, enforce: true })
})

t.test('config: every schema problem is reported, with its path', async (t) => {
  const cases: Array<{ config: Record<string, unknown>, details: RegExp[] }> = [
    { config: { header: 'x tenant' }, details: [/^\/header: must match \^\[A-Za-z0-9-\]\+\$$/] },
    { config: { pattern: '([a-z' }, details: [/^\/pattern: must be a valid regex$/] },
    { config: { pattern: '' }, details: [/^\/pattern: must NOT have fewer than 1 characters$/] },
    { config: { allow: [] }, details: [/^\/allow: must NOT have fewer than 1 items$/] },
    { config: { allow: ['a', 'a'] }, details: [/^\/allow: must NOT have duplicate items/] },
    { config: { allow: 'acme' }, details: [/^\/allow: must be an array$/] },
    { config: { maxLength: 0 }, details: [/^\/maxLength: must be >= 1$/] },
    { config: { maxLength: 1.5 }, details: [/^\/maxLength: must be an integer$/] },
    { config: { forward: 'no' }, details: [/^\/forward: must be a boolean$/] },
    { config: { enforce: 0 }, details: [/^\/enforce: must be a boolean$/] },
    { config: { alow: ['a'] }, details: [/^\/: unknown property 'alow'$/] },
    { config: { header: 5, forward: 'no', extra: 1 }, details: [/^\/header: must be a string$/, /^\/forward: must be a boolean$/, /^\/: unknown property 'extra'$/] }
  ]
  for (const c of cases) {
    const s = spy()
    await t.rejects(createPluginHarness(s.plugin, c.config), { code: 'GW_ERR_CONFIG_INVALID', message: `invalid config 'require-header config': ${c.details.length} problem(s)` }, JSON.stringify(c.config))
    const err = await createPluginHarness(s.plugin, c.config).catch((e: unknown) => e) as { details: string[] }
    t.equal(err.details.length, c.details.length, `${JSON.stringify(c.config)}: one line per problem`)
    for (const re of c.details) t.ok(err.details.some((d) => re.test(d)), `${JSON.stringify(c.config)}: ${String(re)} in ${JSON.stringify(err.details)}`)
    t.same(s.seen, [], 'create() never runs on a bad config')
  }
})

t.test('config: the example in examples/README.md holds', async (t) => {
  await t.rejects(createPluginHarness(plugin, { pattern: '([a-z' }), {
    code: 'GW_ERR_CONFIG_INVALID', details: ['/pattern: must be a valid regex']
  })
  // And it would fail on a different detail line: the pattern is not vacuous.
  const err = await createPluginHarness(plugin, { pattern: '([a-z' }).catch((e: unknown) => e)
  t.notMatch(err, { details: ['/header: must be a string'] })
})

t.test('config: cross-field problems are thrown by create()', async (t) => {
  await t.rejects(createPluginHarness(plugin, { pattern: '[a-z]+', allow: ['acme', 'Globex'] }), {
    name: 'RequireHeaderConfigError', code: 'ERR_REQUIRE_HEADER_CONFIG', message: 'allow/1 does not match pattern, so it could never be let through'
  })
  await t.rejects(createPluginHarness(plugin, { maxLength: 4, allow: ['acme', 'globex'] }), {
    code: 'ERR_REQUIRE_HEADER_CONFIG', message: /^allow\/1 is longer than maxLength \(4\)/
  })
  const h = await createPluginHarness(plugin, { pattern: '[a-z]+', allow: ['acme', 'globex'], maxLength: 6 })
  t.notOk((await h.request({ headers: { 'x-tenant': 'globex' } })).replied, 'a consistent config is fine')
})

t.test('a missing header is a 400 with reason HEADER_MISSING', async (t) => {
  const h = await createPluginHarness(plugin, { allow: ['acme'] })
  for (const headers of [{}, { 'x-tenant': '' }, { 'x-tenants': 'acme' }] as Array<Record<string, string>>) {
    const r = await h.request({ headers })
    t.equal(r.replied, true, JSON.stringify(headers))
    t.equal(r.status, 400)
    t.same(r.body, { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'the x-tenant header is required', code: REASONS.missing })
    t.equal(r.ctx.outcome.code, 'HEADER_MISSING')
    t.same(r.ctx.state, {}, 'nothing in ctx.state for a denied request')
  }
})

t.test('a value that fails the pattern or maxLength is a 400 HEADER_MALFORMED, never echoed', async (t) => {
  const h = await createPluginHarness(plugin, { pattern: '[a-z][a-z0-9-]{1,15}', maxLength: 16 })
  const bad = ['Bearer eyJhbGciOiJIUzI1NiJ9.secret', 'acme!', 'z', 'acme corp', 'ACME', 'acme\u00e9', 'x'.repeat(17)]
  for (const value of bad) {
    const r = await h.request({ headers: { 'X-Tenant': value } })
    t.equal(r.status, 400, `${JSON.stringify(value)} -> 400`)
    t.equal((r.body as Record<string, unknown>).code, 'HEADER_MALFORMED')
    t.notOk(JSON.stringify(r.body).includes(value), 'the value is not in the reply body')
    t.notOk(JSON.stringify(r.reply).includes(value), 'nor anywhere in the reply options')
    t.same(r.responseHeaders, {}, 'nor in a response header')
  }
  // The pattern is anchored: a value that merely contains a match is not enough.
  const partial = await createPluginHarness(plugin, { pattern: '[a-z]+' })
  t.equal((await partial.request({ headers: { 'x-tenant': 'abc; drop table' } })).status, 400, 'anchored at both ends')
  t.equal((await partial.request({ headers: { 'x-tenant': 'abc' } })).replied, false)
  // A pattern with an alternation is anchored as a whole, not just its first branch.
  const alt = await createPluginHarness(plugin, { pattern: 'eu|us' })
  t.equal((await alt.request({ headers: { 'x-tenant': 'eu-evil' } })).status, 400)
  t.equal((await alt.request({ headers: { 'x-tenant': 'evil-us' } })).status, 400)
  t.equal((await alt.request({ headers: { 'x-tenant': 'us' } })).replied, false)
})

t.test('a value outside the allow-list is a 403 HEADER_NOT_ALLOWED, never echoed', async (t) => {
  const h = await createPluginHarness(plugin, { allow: ['acme', 'globex'] })
  for (const value of ['initech', 'Acme', 'acme ', 'acme, globex', 'sk_live_51Habc']) {
    const r = await h.request({ headers: { 'x-tenant': value } })
    t.equal(r.status, 403, `${JSON.stringify(value)} -> 403`)
    t.same(r.body, { type: 'about:blank', title: 'Forbidden', status: 403, detail: 'the x-tenant header has a value that is not allowed here', code: 'HEADER_NOT_ALLOWED' })
  }
  const twice = await h.request({ headers: { 'x-tenant': ['acme', 'initech'] } })
  t.equal(twice.status, 403, 'a repeated header is checked as a whole, not by its first line')
})

t.test('a good value passes and goes upstream exactly as checked', async (t) => {
  const h = await createPluginHarness(plugin, { header: 'X-Tenant', pattern: '[a-z]+', allow: ['acme', 'globex'] })
  const r = await h.request({ headers: { 'x-tenant': 'acme', accept: 'application/json' } })
  t.equal(r.replied, false)
  t.equal(r.status, undefined)
  t.equal(r.body, undefined)
  t.same(r.upstreamHeaders, { host: 'gateway.test', 'x-tenant': 'acme', accept: 'application/json' })
  t.same(r.responseHeaders, {}, 'nothing added to the response')
  t.same(r.ctx.state['require-header'], { value: 'acme' }, 'later plugins find the value in ctx.state')

  const noRules = await createPluginHarness(plugin, {})
  const any = await noRules.request({ headers: { 'x-tenant': 'anything at all' } })
  t.equal(any.replied, false, 'with no pattern and no allow-list, presence is enough')
})

t.test('forward: false strips the header before it goes upstream', async (t) => {
  const h = await createPluginHarness(plugin, { allow: ['acme'], forward: false })
  const r = await h.request({ headers: { 'x-tenant': 'acme', 'x-other': '1' } })
  t.equal(r.replied, false)
  t.notOk('x-tenant' in r.upstreamHeaders, 'x-tenant is not sent upstream')
  t.equal(r.upstreamHeaders['x-other'], '1', 'other headers are')
  t.equal(r.ctx.headers['x-tenant'], 'acme', 'the request as the plugins see it is unchanged')
})

t.test('enforce: false logs what would be denied, without the value, and lets it through', async (t) => {
  const { log, lines } = memoryLog()
  const h = await createPluginHarness(plugin, { allow: ['acme'], enforce: false, forward: false }, { log })
  const r = await h.request({ headers: { 'x-tenant': 'SECRET-VALUE' } })
  t.equal(r.replied, false, 'not denied')
  t.notOk('x-tenant' in r.upstreamHeaders, 'still stripped')
  t.same(r.ctx.state, {}, 'but not recorded as passed')
  t.equal(lines.length, 1)
  t.match(lines[0], { level: 40, msg: 'require-header would deny (enforce: false)', code: 'HEADER_NOT_ALLOWED', status: 403, header: 'x-tenant' })
  t.notMatch(JSON.stringify(lines), /SECRET-VALUE/, 'the value is never logged')

  const missing = await h.request({})
  t.equal(missing.replied, false)
  t.match(lines[1], { code: 'HEADER_MISSING', status: 400 })

  const quiet = memoryLog()
  const enforcing = await createPluginHarness(plugin, { allow: ['acme'] }, { log: quiet.log })
  await enforcing.request({ headers: { 'x-tenant': 'SECRET-VALUE' } })
  t.same(quiet.lines, [], 'an enforced denial logs nothing itself (the access log records the reply)')
})

t.test('the hook is synchronous', async (t) => {
  const h = await createPluginHarness(plugin, {})
  const ctx = (await h.request({ headers: { 'x-tenant': 'a' } })).ctx
  t.equal(h.hooks.onRequest?.(ctx), undefined, 'returns nothing, so the pipeline never awaits it')
  t.same(Object.keys(h.hooks), ['onRequest'], 'no other hooks: nothing to respond to, log or close')
})

t.test('end to end: the built plugin, loaded by path from a config file, in front of a real upstream', async (t) => {
  t.ok(existsSync(BUILT), `${BUILT} exists (run npm run build first)`)
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      routes: [
        { name: 'strip', match: { path: '/strip' }, upstream: up.url, plugins: [{ name: 'require-header', module: BUILT, config: { allow: ['acme', 'globex'], forward: false } }] },
        { name: 'keep', match: { path: '/keep' }, upstream: up.url, plugins: [{ name: 'require-header', module: BUILT, config: { header: 'X-Org', pattern: '[a-z][a-z0-9-]{1,31}' } }] }
      ]
    }
  })

  const missing = await request(`${gw.url}/strip/orders`)
  t.equal(missing.statusCode, 400)
  t.equal(missing.headers['content-type'], 'application/problem+json')
  t.same(await missing.body.json(), { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'the x-tenant header is required', code: 'HEADER_MISSING' })

  const denied = await request(`${gw.url}/strip/orders`, { headers: { 'x-tenant': 'initech-SECRET' } })
  t.equal(denied.statusCode, 403)
  const deniedText = await denied.body.text()
  t.match(JSON.parse(deniedText), { status: 403, code: 'HEADER_NOT_ALLOWED' })
  t.notMatch(deniedText, /initech-SECRET/, 'the value is not echoed')
  t.notMatch(JSON.stringify(denied.headers), /initech-SECRET/)

  const malformed = await request(`${gw.url}/keep/x`, { headers: { 'x-org': 'Not Valid!' } })
  t.equal(malformed.statusCode, 400)
  t.match(await malformed.body.json(), { code: 'HEADER_MALFORMED' })

  // The same header twice: Node joins the lines into 'acme, initech', which is not allowed.
  const twice = await rawRequest(gw.port, 'GET /strip/orders HTTP/1.1\r\nHost: a\r\nx-tenant: acme\r\nx-tenant: initech\r\nConnection: close\r\n\r\n')
  t.match(twice, /^HTTP\/1\.1 403 /, 'a repeated header does not pass on its first line')
  t.equal(up.seen.length, 0, 'no denied request reached the upstream')

  const allowed = await request(`${gw.url}/strip/orders`, { headers: { 'x-tenant': 'acme' } })
  await allowed.body.text()
  t.equal(allowed.statusCode, 200)
  t.equal(up.seen.length, 1)
  t.equal(up.seen[0]?.url, '/strip/orders')
  t.equal(up.seen[0]?.headers['x-tenant'], undefined, 'forward: false: the upstream does not see it')

  const kept = await request(`${gw.url}/keep/x`, { headers: { 'X-Org': 'acme-eu' } })
  await kept.body.text()
  t.equal(kept.statusCode, 200)
  t.equal(up.seen.length, 2)
  t.equal(up.seen[1]?.headers['x-org'], 'acme-eu', 'forward: true (default): the upstream sees the checked value')
  t.equal(up.seen[1]?.rawHeaders.filter((h) => h.toLowerCase() === 'x-org').length, 1, 'once')
})

t.test('end to end: loaded with --plugin on the command line, defaults apply', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { args: ['--upstream', up.url, '--plugin', BUILT, '--host', '127.0.0.1', '--port', '0', '--workers', '1', '--log-level', 'warn'] })
  const denied = await request(`${gw.url}/`)
  t.equal(denied.statusCode, 400)
  t.match(await denied.body.json(), { code: 'HEADER_MISSING', detail: 'the x-tenant header is required' })
  t.equal(up.seen.length, 0)
  const ok = await request(`${gw.url}/`, { headers: { 'x-tenant': 'anyone' } })
  await ok.body.text()
  t.equal(ok.statusCode, 200)
  t.equal(up.seen[0]?.headers['x-tenant'], 'anyone')
})

t.test('tollgate validate reports config problems against the plugin entry', async (t) => {
  const dir = t.testdir()
  const write = (name: string, config: Record<string, unknown>): string => {
    const file = join(dir, name)
    writeFileSync(file, JSON.stringify({ routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1', plugins: [{ name: 'require-header', module: BUILT, config }] }] }))
    return file
  }
  const schemaBad = await runCli(['validate', write('schema-bad.json', { pattern: '([a-z', alow: [] })])
  t.equal(schemaBad.code, 2)
  t.match(schemaBad.stderr, /schema-bad\.json: \/routes\/0\/plugins\/0\/config\/pattern: must be a valid regex/)
  t.match(schemaBad.stderr, /schema-bad\.json: \/routes\/0\/plugins\/0\/config: unknown property 'alow'/)

  const crossBad = await runCli(['validate', write('cross-bad.json', { pattern: '[a-z]+', allow: ['acme', 'ACME'] })])
  t.equal(crossBad.code, 2)
  t.match(crossBad.stderr, /cross-bad\.json: \/routes\/0\/plugins\/0: plugin 'require-header' failed in create\(\): allow\/1 does not match pattern/)

  const good = await runCli(['validate', write('good.json', { pattern: '[a-z]+', allow: ['acme'] })])
  t.equal(good.code, 0, good.stderr)
  t.match(good.stdout, /good\.json: ok \(1 route\(s\), plugins: require-header\)/)
})

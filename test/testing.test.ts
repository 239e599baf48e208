import { pino } from 'pino'
import t from 'tap'
import { definePlugin } from '../src/plugin.js'
import type { Plugin } from '../src/plugin.js'
import { createPluginHarness } from '../src/testing.js'
import type { PluginApi, PluginHooks, RequestContext } from '../src/types.js'

/** A plugin whose hooks the test supplies; `seen` records every create() call. */
function makePlugin (hooks: PluginHooks | ((config: Record<string, unknown>) => unknown), schema: Record<string, unknown> = { type: 'object', additionalProperties: false, properties: {} }): { plugin: Plugin, seen: Array<{ config: Record<string, unknown>, api: PluginApi }> } {
  const seen: Array<{ config: Record<string, unknown>, api: PluginApi }> = []
  const plugin = definePlugin<Record<string, unknown>>({
    name: 'probe',
    phase: 'access',
    schema,
    create (config, api) {
      seen.push({ config: structuredClone(config), api })
      return (typeof hooks === 'function' ? hooks(config) : hooks) as PluginHooks
    }
  })
  return { plugin, seen }
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['limit'],
  properties: {
    limit: { type: 'integer', minimum: 1 },
    mode: { type: 'string', enum: ['count', 'block'], default: 'block' },
    window: { type: 'object', additionalProperties: false, properties: { seconds: { type: 'integer', default: 60 } }, default: {} },
    tags: { type: 'array', items: { type: 'string' }, default: [] }
  }
}

t.test('the config is checked against the schema and defaults are filled in before create()', async (t) => {
  const { plugin, seen } = makePlugin({}, schema)
  const given = { limit: 5 }
  await createPluginHarness(plugin, given)
  t.same(seen[0]?.config, { limit: 5, mode: 'block', window: { seconds: 60 }, tags: [] }, 'defaults, nested ones too')
  t.same(given, { limit: 5 }, "the caller's object is not changed")
  await createPluginHarness(plugin, { limit: 1, mode: 'count', window: { seconds: 1 } })
  t.same(seen[1]?.config, { limit: 1, mode: 'count', window: { seconds: 1 }, tags: [] }, 'given values win')
})

t.test('create() gets a plugin api', async (t) => {
  const { plugin, seen } = makePlugin({})
  await createPluginHarness(plugin)
  const api = seen[0]?.api as PluginApi
  t.equal(api.mode, 'worker')
  t.equal(api.generation, 1)
  t.equal(typeof api.log.info, 'function')
  t.equal(typeof api.configDir, 'string')
  t.ok(Array.isArray(api.gateway.plugins))
})

t.test('an invalid config is rejected with GW_ERR_CONFIG_INVALID, one detail line per problem', async (t) => {
  const { plugin, seen } = makePlugin({}, schema)
  const err = await createPluginHarness(plugin, { limit: 0, mode: 'drop', window: { seconds: 'x' }, tags: [1] }).catch((e: unknown) => e) as { code: string, message: string, details: string[] }
  t.equal(err.code, 'GW_ERR_CONFIG_INVALID')
  t.equal(err.message, "invalid config 'probe config': 4 problem(s)")
  t.same([...err.details].sort(), [
    '/limit: must be >= 1',
    '/mode: must be one of: "count", "block"',
    '/tags/0: must be a string',
    '/window/seconds: must be an integer'
  ])
  t.same(seen, [], 'create() does not run')
})

t.test('a problem at the top of the config is reported, with its reason', async (t) => {
  const { plugin } = makePlugin({}, schema)
  const err = await createPluginHarness(plugin, { extra: true }).catch((e: unknown) => e) as { code: string, details: string[] }
  t.equal(err.code, 'GW_ERR_CONFIG_INVALID')
  t.same([...err.details].sort(), ["/: must have property 'limit'", "/: unknown property 'extra'"])
})

t.test('a top-level problem is named "/"', async (t) => {
  const { plugin } = makePlugin({}, schema)
  const err = await createPluginHarness(plugin, { limit: 1, extra: true }).catch((e: unknown) => e) as { details: string[] }
  t.same(err.details, ["/: unknown property 'extra'"], 'like every other line')
})

t.test('request() reports a reply: replied, status, problem+json body, reply options, headers', async (t) => {
  const { plugin } = makePlugin({
    onRequest (ctx) {
      ctx.setResponseHeader('X-Trace', 'abc')
      ctx.reply(429, { code: 'RATE_LIMITED', detail: 'slow down', headers: { 'Retry-After': 7 } })
    }
  })
  const h = await createPluginHarness(plugin)
  const r = await h.request()
  t.equal(r.replied, true)
  t.equal(r.status, 429)
  t.same(r.body, { type: 'about:blank', title: 'Too Many Requests', status: 429, detail: 'slow down', code: 'RATE_LIMITED' })
  t.same(r.reply, { code: 'RATE_LIMITED', detail: 'slow down', headers: { 'Retry-After': 7 } })
  t.same(r.responseHeaders, { 'x-trace': 'abc', 'retry-after': 7 }, 'names lower-cased, reply headers included')
  t.equal(r.ctx.replied, true)
  t.equal(r.ctx.outcome.status, 429)
  t.equal(r.ctx.outcome.code, 'RATE_LIMITED')
})

t.test('request() reports a reply: custom title and type, no detail or code when not given', async (t) => {
  const { plugin } = makePlugin({ onRequest (ctx) { ctx.reply(402, { title: 'Pay up', type: 'https://example.test/probs/pay' }) } })
  const r = await (await createPluginHarness(plugin)).request()
  t.same(r.body, { type: 'https://example.test/probs/pay', title: 'Pay up', status: 402 })
})

t.test('request() reports a raw body as a string', async (t) => {
  const { plugin } = makePlugin({
    onRequest (ctx) {
      if (ctx.path === '/text') ctx.reply(200, { body: 'pong', contentType: 'text/plain' })
      else ctx.reply(200, { body: new TextEncoder().encode('{"ok":true}'), contentType: 'application/json' })
    }
  })
  const h = await createPluginHarness(plugin)
  t.equal((await h.request({ path: '/text' })).body, 'pong')
  t.equal((await h.request({ path: '/bytes' })).body, '{"ok":true}')
})

t.test('the first reply wins; a bad status throws', async (t) => {
  const first = makePlugin({ onRequest (ctx) { ctx.reply(401, { code: 'A' }); ctx.reply(403, { code: 'B' }) } })
  const r = await (await createPluginHarness(first.plugin)).request()
  t.equal(r.status, 401)
  t.equal((r.body as Record<string, unknown>).code, 'A')
  for (const status of [99, 600, 302.5]) {
    const bad = makePlugin({ onRequest (ctx) { ctx.reply(status) } })
    await t.rejects((await createPluginHarness(bad.plugin)).request(), RangeError, `reply(${status}) throws`)
  }
})

t.test('request() reports a request let through: upstream headers as edited, response headers', async (t) => {
  const { plugin } = makePlugin({
    onRequest (ctx) {
      ctx.setUpstreamHeader('X-User', 'u1')
      ctx.setUpstreamHeader('x-version', '1')
      ctx.setUpstreamHeader('X-Version', '2')
      ctx.removeUpstreamHeader('Authorization')
      ctx.setResponseHeader('X-Served-By', 'probe')
    }
  })
  const h = await createPluginHarness(plugin)
  const r = await h.request({ headers: { Authorization: 'Bearer t', Accept: 'text/html', 'x-multi': ['a', 'b'] } })
  t.equal(r.replied, false)
  t.equal(r.status, undefined)
  t.equal(r.body, undefined)
  t.equal(r.reply, undefined)
  t.same(r.upstreamHeaders, { host: 'gateway.test', accept: 'text/html', 'x-multi': 'a, b', 'x-user': 'u1', 'x-version': '2' })
  t.same(r.responseHeaders, { 'x-served-by': 'probe' })
  t.equal(r.ctx.headers.authorization, 'Bearer t', 'the request the plugins see keeps the header')
})

t.test('request() builds the context from the made-up request', async (t) => {
  let seen: RequestContext | undefined
  const { plugin } = makePlugin({ onRequest (ctx) { seen = ctx } })
  const h = await createPluginHarness(plugin)
  await h.request({ method: 'post', path: '/orders/7', query: 'a=1', headers: { 'X-Tenant': 'acme' }, client: '10.0.0.9', route: 'orders', params: { id: '7' } })
  const ctx = seen as RequestContext
  t.equal(ctx.method, 'POST', 'method upper-cased')
  t.equal(ctx.path, '/orders/7')
  t.equal(ctx.query, 'a=1')
  t.equal(ctx.headers['x-tenant'], 'acme', 'header names lower-cased')
  t.equal(ctx.client.ip, '10.0.0.9')
  t.equal(ctx.route.name, 'orders')
  t.same(ctx.params, { id: '7' })
  t.equal(ctx.id, '')
  t.same(ctx.state, {})
  t.equal(typeof ctx.elapsed(), 'number')

  await h.request()
  const d = seen as RequestContext
  t.equal(d.method, 'GET', 'defaults: GET / from 127.0.0.1')
  t.equal(d.path, '/')
  t.equal(d.client.ip, '127.0.0.1')
  t.not(d, ctx, 'a new context per request')
})

t.test('respond() runs onResponse with the upstream status and headers', async (t) => {
  const calls: Array<{ status: number, headers: Record<string, unknown> }> = []
  const { plugin } = makePlugin({
    onRequest (ctx) { ctx.setResponseHeader('x-request-id', 'r1') },
    onResponse (_ctx, res) {
      calls.push({ status: res.status, headers: { ...res.headers } })
      res.headers['x-frame-options'] = 'DENY'
      delete res.headers.server
      if (res.status === 500) res.status = 502
    }
  })
  const h = await createPluginHarness(plugin)
  const r = await h.request()
  const out = h.respond(r, 200, { server: 'upstream/1.0', 'content-type': 'text/plain' })
  t.same(calls[0], { status: 200, headers: { server: 'upstream/1.0', 'content-type': 'text/plain', 'x-request-id': 'r1' } }, 'the hook sees upstream headers plus ones the plugin set')
  t.same(out, { status: 200, headers: { 'content-type': 'text/plain', 'x-request-id': 'r1', 'x-frame-options': 'DENY' } }, 'and can change them')
  t.equal(r.ctx.outcome.status, 200)

  const r2 = await h.request()
  const out2 = h.respond(r2, 500)
  t.equal(out2.status, 502, 'the hook may change the status')
  t.equal(r2.ctx.outcome.status, 502, 'outcome follows')

  const r3 = await h.request()
  t.equal(h.respond(r3).status, 200, 'status defaults to 200')
})

t.test('log() runs onLog with the outcome so far', async (t) => {
  const logged: Array<{ status: number, code: string | undefined, id: string }> = []
  const { plugin } = makePlugin({
    onRequest (ctx) {
      ctx.id = 'req-1'
      if (ctx.path === '/deny') ctx.reply(403, { code: 'NOPE' })
    },
    onLog (ctx) { logged.push({ status: ctx.outcome.status, code: ctx.outcome.code, id: ctx.id }) }
  })
  const h = await createPluginHarness(plugin)
  h.log(await h.request({ path: '/deny' }))
  const passed = await h.request()
  h.log(passed)
  const proxied = await h.request()
  h.respond(proxied, 404)
  h.log(proxied)
  t.same(logged, [
    { status: 403, code: 'NOPE', id: 'req-1' },
    { status: 200, code: undefined, id: 'req-1' },
    { status: 404, code: undefined, id: 'req-1' }
  ])
})

t.test('a reply is attributed to the plugin in outcome.repliedBy, as in the gateway', async (t) => {
  const { plugin } = makePlugin({ onRequest (ctx) { ctx.reply(403) } })
  const r = await (await createPluginHarness(plugin)).request()
  t.equal(r.ctx.outcome.repliedBy, 'probe', 'the plugin that replied')
  const passed = await (await createPluginHarness(makePlugin({}).plugin)).request()
  t.equal(passed.ctx.outcome.repliedBy, undefined, 'nothing when no plugin replied')
})

t.test('async hooks and an async create() are awaited', async (t) => {
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
  const plugin = definePlugin({
    name: 'slow',
    phase: 'authn',
    schema: { type: 'object' },
    async create () {
      await tick()
      return {
        async onRequest (ctx: RequestContext) {
          await tick()
          await tick()
          if (ctx.headers.authorization === undefined) ctx.reply(401, { code: 'NO_TOKEN' })
          else ctx.setUpstreamHeader('x-user', 'u1')
        }
      }
    }
  })
  const h = await createPluginHarness(plugin)
  const denied = await h.request()
  t.equal(denied.replied, true, 'the reply made after awaiting is reported')
  t.equal(denied.status, 401)
  const ok = await h.request({ headers: { authorization: 'x' } })
  t.equal(ok.upstreamHeaders['x-user'], 'u1', 'and the header set after awaiting')
})

t.test('a hook that throws or rejects makes request() reject', async (t) => {
  const { plugin } = makePlugin({
    onRequest (ctx) {
      if (ctx.path === '/sync') throw new Error('sync boom')
      if (ctx.path === '/async') return Promise.reject(new Error('async boom'))
      return undefined
    }
  })
  const h = await createPluginHarness(plugin)
  await t.rejects(h.request({ path: '/sync' }), { message: 'sync boom' })
  await t.rejects(h.request({ path: '/async' }), { message: 'async boom' })
  t.equal((await h.request({ path: '/fine' })).replied, false)
})

t.test('create() must return hooks: a non-function member or a non-object is GW_ERR_PLUGIN_HOOK', async (t) => {
  const cases: Array<{ made: unknown, what: string }> = [
    { made: { onRequest: 'nope' }, what: 'onRequest' },
    { made: { onRequest () {}, onResponse: 42 }, what: 'onResponse' },
    { made: { onLog: {} }, what: 'onLog' },
    { made: { close: true }, what: 'close' },
    { made: 'hooks', what: 'string' },
    { made: 7, what: 'number' },
    { made: () => {}, what: 'function' }
  ]
  for (const c of cases) {
    const { plugin } = makePlugin(() => c.made)
    await t.rejects(createPluginHarness(plugin), { code: 'GW_ERR_PLUGIN_HOOK', message: `plugin 'probe' returned an invalid hook '${c.what}'` }, c.what)
  }
  for (const made of [undefined, null, {}, { extra: 'ignored' }]) {
    const { plugin } = makePlugin(() => made)
    const h = await createPluginHarness(plugin)
    t.equal((await h.request()).replied, false, `${JSON.stringify(made)}: no hooks is fine`)
    h.log(await h.request())
    await h.close()
  }
})

t.test('close() calls the instance close() and awaits it', async (t) => {
  let closed = 0
  const { plugin } = makePlugin({ async close () { await new Promise((resolve) => setImmediate(resolve)); closed++ } })
  const h = await createPluginHarness(plugin)
  await h.close()
  t.equal(closed, 1)
})

t.test('ctx.log and api.log go to the logger given in opts, bound to the plugin name', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, { write (s: string) { lines.push(JSON.parse(s) as Record<string, unknown>) } })
  const plugin = definePlugin({
    name: 'talker',
    phase: 'access',
    schema: { type: 'object' },
    create (_config, api) {
      api.log.info('created')
      return { onRequest (ctx: RequestContext) { ctx.log.warn({ path: ctx.path }, 'seen') } }
    }
  })
  const h = await createPluginHarness(plugin, {}, { log })
  await h.request({ path: '/x' })
  t.match(lines[0], { msg: 'created' })
  t.match(lines[1], { level: 40, msg: 'seen', path: '/x', plugin: 'talker' })
})

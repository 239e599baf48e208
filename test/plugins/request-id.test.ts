import t from 'tap'
import { request } from 'undici'
import requestId from '../../plugins/request-id/index.js'
import { definePlugin } from '../../src/plugin.js'
import { createPluginHarness } from '../../src/testing.js'
import type { PluginDefinition } from '../../src/types.js'
import { rawRequest, startGateway, startUpstream } from '../helpers/gateway.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('definition', async (t) => {
  t.equal(requestId.name, 'request-id')
  t.equal(requestId.phase, 'connect', 'first, so every later plugin and log line has the id')
  t.equal(requestId.schema.additionalProperties, false)
})

t.test('config: inline config in, success or a specific code out', async (t) => {
  const seen: unknown[] = []
  const def = requestId as unknown as PluginDefinition<Record<string, unknown>>
  const spy = definePlugin({ ...def, create: (c, api) => { seen.push(structuredClone(c)); return def.create(c, api) } })

  const ok: Array<{ config: Record<string, unknown>, resolved: Record<string, unknown> }> = [
    { config: {}, resolved: { header: 'x-request-id', trustIncoming: true, echo: true } },
    { config: { header: 'X-Correlation-Id' }, resolved: { header: 'X-Correlation-Id', trustIncoming: true, echo: true } },
    { config: { trustIncoming: false, echo: false }, resolved: { header: 'x-request-id', trustIncoming: false, echo: false } }
  ]
  for (const c of ok) {
    seen.length = 0
    await createPluginHarness(spy, c.config)
    t.same(seen, [c.resolved], `${JSON.stringify(c.config)} -> ok, defaults filled in`)
  }

  const bad: Array<{ config: Record<string, unknown>, details: RegExp[] }> = [
    { config: { header: 'x request id' }, details: [/^\/header: must match \^\[A-Za-z0-9-\]\+\$$/] },
    { config: { header: 'x-id\r\nx-evil' }, details: [/^\/header: must match/] },
    { config: { header: '' }, details: [/^\/header: must match/] },
    { config: { header: 5 }, details: [/^\/header: must be a string$/] },
    { config: { trustIncoming: 'yes' }, details: [/^\/trustIncoming: must be a boolean$/] },
    { config: { echo: 1 }, details: [/^\/echo: must be a boolean$/] },
    { config: { headers: 'x-id' }, details: [/^\/: unknown property 'headers'$/] },
    { config: { header: 'a b', echo: 'no', bogus: true }, details: [/^\/header: must match/, /^\/echo: must be a boolean$/, /^\/: unknown property 'bogus'$/] }
  ]
  for (const c of bad) {
    const err = await createPluginHarness(requestId, c.config).catch((e: unknown) => e) as { code?: string, details?: string[] }
    t.equal(err.code, 'GW_ERR_CONFIG_INVALID', `${JSON.stringify(c.config)} -> GW_ERR_CONFIG_INVALID`)
    t.equal(err.details?.length, c.details.length, 'one line per problem')
    for (const re of c.details) t.ok(err.details?.some((d) => re.test(d)), `${String(re)} in ${JSON.stringify(err.details)}`)
  }
})

t.test('no incoming id: a new UUID, on ctx.id, upstream and in the response', async (t) => {
  const h = await createPluginHarness(requestId, {})
  const a = await h.request()
  const id = a.ctx.id
  t.match(id, UUID)
  t.equal(a.replied, false)
  t.equal(a.upstreamHeaders['x-request-id'], id)
  t.equal(a.responseHeaders['x-request-id'], id)
  const b = await h.request()
  t.not(b.ctx.id, id, 'each request gets its own')
})

t.test('a safe incoming id is kept', async (t) => {
  const h = await createPluginHarness(requestId, {})
  for (const id of ['abc', 'req-123', 'A.b_c:d-e', '0', 'x'.repeat(128), '6f1c0e7a-8a43-4b1f-9a8e-0d7c2f5b9e11']) {
    const r = await h.request({ headers: { 'X-Request-Id': id } })
    t.equal(r.ctx.id, id, `${id.length > 20 ? `${id.length} chars` : id} kept`)
    t.equal(r.upstreamHeaders['x-request-id'], id)
    t.equal(r.responseHeaders['x-request-id'], id)
  }
})

t.test('an unsafe incoming id is replaced, never passed on', async (t) => {
  const h = await createPluginHarness(requestId, {})
  const unsafe = [
    'has space', 'a\r\nx-admin: 1', 'a\nb', 'tab\there', '', 'x'.repeat(129), 'ünïcode', 'a;b', 'a,b', '"quoted"', '<script>', 'a/b', '../../etc/passwd', '${jndi:ldap://x}'
  ]
  for (const bad of unsafe) {
    const r = await h.request({ headers: { 'x-request-id': bad } })
    t.match(r.ctx.id, UUID, `${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 10)}... (${bad.length})` : bad)} -> a new UUID`)
    t.equal(r.upstreamHeaders['x-request-id'], r.ctx.id, 'upstream gets the new id')
    t.equal(r.responseHeaders['x-request-id'], r.ctx.id)
  }
  const twice = await h.request({ headers: { 'x-request-id': ['a', 'b'] } })
  t.match(twice.ctx.id, UUID, 'a repeated header is not trusted')
})

t.test('trustIncoming: false always makes a new id', async (t) => {
  const h = await createPluginHarness(requestId, { trustIncoming: false })
  const r = await h.request({ headers: { 'x-request-id': 'perfectly-safe' } })
  t.match(r.ctx.id, UUID)
  t.equal(r.upstreamHeaders['x-request-id'], r.ctx.id, "the client's id does not go upstream")
})

t.test('a custom header name, in any case', async (t) => {
  const h = await createPluginHarness(requestId, { header: 'X-Correlation-Id' })
  const kept = await h.request({ headers: { 'x-correlation-id': 'corr-1', 'x-request-id': 'other' } })
  t.equal(kept.ctx.id, 'corr-1', 'read from the configured header')
  t.equal(kept.upstreamHeaders['x-correlation-id'], 'corr-1')
  t.equal(kept.responseHeaders['x-correlation-id'], 'corr-1')
  t.equal(kept.upstreamHeaders['x-request-id'], 'other', 'the default header is left alone')
  t.notOk('x-request-id' in kept.responseHeaders)
  const fresh = await h.request({ headers: { 'x-request-id': 'ignored' } })
  t.match(fresh.ctx.id, UUID, 'x-request-id is not read when another header is configured')
  t.equal(fresh.upstreamHeaders['x-correlation-id'], fresh.ctx.id)
})

t.test('echo: false sends the id upstream but not back', async (t) => {
  const h = await createPluginHarness(requestId, { echo: false })
  const r = await h.request({ headers: { 'x-request-id': 'abc' } })
  t.equal(r.ctx.id, 'abc')
  t.equal(r.upstreamHeaders['x-request-id'], 'abc')
  t.same(r.responseHeaders, {})
})

t.test('the hook is synchronous and never replies', async (t) => {
  const h = await createPluginHarness(requestId, {})
  const r = await h.request({ headers: { 'x-request-id': 'bad id' } })
  t.equal(h.hooks.onRequest?.(r.ctx), undefined)
  t.equal(r.replied, false)
})

t.test('end to end: the upstream receives the id the client gets back', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      plugins: [{ name: 'request-id' }],
      routes: [
        { name: 'api', match: { path: '/api' }, upstream: up.url },
        { name: 'corr', match: { path: '/corr' }, upstream: up.url, plugins: [{ name: 'request-id', config: { header: 'X-Correlation-Id', echo: false } }] }
      ]
    }
  })
  const idsUpstream = (i: number, name = 'x-request-id'): string[] => {
    const raw = up.seen[i]?.rawHeaders ?? []
    const out: string[] = []
    for (let k = 0; k < raw.length; k += 2) if (raw[k]?.toLowerCase() === name) out.push(raw[k + 1] as string)
    return out
  }

  const fresh = await request(`${gw.url}/api/a`)
  await fresh.body.text()
  const id = fresh.headers['x-request-id'] as string
  t.match(id, UUID, 'the client gets a new id')
  t.same(idsUpstream(0), [id], 'the upstream got the same one, once')

  const kept = await request(`${gw.url}/api/b`, { headers: { 'x-request-id': 'client-chosen.1' } })
  await kept.body.text()
  t.equal(kept.headers['x-request-id'], 'client-chosen.1')
  t.same(idsUpstream(1), ['client-chosen.1'])

  const unsafe = await request(`${gw.url}/api/c`, { headers: { 'x-request-id': 'not safe; at all' } })
  await unsafe.body.text()
  const replaced = unsafe.headers['x-request-id'] as string
  t.match(replaced, UUID, 'an unsafe id is replaced')
  t.same(idsUpstream(2), [replaced], 'and the unsafe one never reaches the upstream')

  // Two id lines: Node joins them into 'a, b', which is not a safe id; the upstream must get
  // the new id only, not the client's two lines as well.
  const twice = await rawRequest(gw.port, 'GET /api/d HTTP/1.1\r\nHost: a\r\nx-request-id: one\r\nx-request-id: two\r\nConnection: close\r\n\r\n')
  t.match(twice, /^HTTP\/1\.1 200 /)
  const echoed = /\r\nx-request-id: ([^\r]*)\r\n/i.exec(twice)?.[1]
  t.match(echoed, UUID)
  t.same(idsUpstream(3), [echoed])

  const corr = await request(`${gw.url}/corr/x`, { headers: { 'x-correlation-id': 'corr-7' } })
  await corr.body.text()
  t.equal(corr.headers['x-correlation-id'], undefined, 'echo: false on this route')
  t.equal(corr.headers['x-request-id'], undefined, 'the route entry replaced the global one')
  t.same(idsUpstream(4, 'x-correlation-id'), ['corr-7'])
  t.equal(up.seen.length, 5)
})

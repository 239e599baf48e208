import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import accessLog from '../../plugins/access-log/index.js'
import { definePlugin } from '../../src/plugin.js'
import { createPluginHarness } from '../../src/testing.js'
import type { Harness } from '../../src/testing.js'
import type { PluginDefinition } from '../../src/types.js'
import { startGateway, startUpstream } from '../helpers/gateway.js'

type Line = Record<string, unknown>

/** Every line of a log file, parsed; fails the test on a line that is not JSON. */
function readLines (file: string): Line[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line)
}

/**
 * Wait until a log file holds `n` lines and return them parsed: lines are written
 * asynchronously while the gateway runs. The deadline only turns a missing line into a
 * failure instead of a hang.
 */
async function waitForLines (file: string, n: number, ms = 5000): Promise<Line[]> {
  const until = Date.now() + ms
  for (;;) {
    const lines = existsSync(file) ? readLines(file) : []
    if (lines.length >= n || Date.now() > until) return lines
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Run one request through the harness and log it, as the gateway does after the response. */
async function logOne (h: Harness, req: Parameters<Harness['request']>[0], status = 200, upstream?: string): Promise<void> {
  const r = await h.request(req)
  if (upstream !== undefined) r.ctx.outcome.upstream = upstream
  h.respond(r, status)
  h.log(r)
}

const SECRETS = {
  authorization: 'Bearer SECRET-token-aaa',
  'proxy-authorization': 'Basic SECRET-proxy-bbb',
  cookie: 'session=SECRET-cookie-ccc',
  'x-api-key': 'SECRET-apikey-ddd',
  apikey: 'SECRET-apikey2-eee',
  'x-session': 'SECRET-session-fff'
}

t.test('definition', async (t) => {
  t.equal(accessLog.name, 'access-log')
  t.equal(accessLog.phase, 'log')
  t.equal(accessLog.schema.additionalProperties, false)
})

t.test('config: inline config in, success or a specific code out', async (t) => {
  const dir = t.testdir()
  const seen: unknown[] = []
  const def = accessLog as unknown as PluginDefinition<Record<string, unknown>>
  const spy = definePlugin({ ...def, create: (c, api) => { seen.push(structuredClone(c)); return def.create(c, api) } })

  const ok: Array<{ config: Record<string, unknown>, resolved: Record<string, unknown> }> = [
    { config: {}, resolved: { destination: 'stdout', headers: [], redact: [], query: false, redactQuery: [], redactFields: [], sampleRate: 1 } },
    { config: { destination: 'stderr' }, resolved: { destination: 'stderr', headers: [], redact: [], query: false, redactQuery: [], redactFields: [], sampleRate: 1 } },
    { config: { destination: join(dir, 'a.log'), headers: ['User-Agent'], redact: ['X-Session'] }, resolved: { destination: join(dir, 'a.log'), headers: ['User-Agent'], redact: ['X-Session'], query: false, redactQuery: [], redactFields: [], sampleRate: 1 } }
  ]
  for (const c of ok) {
    seen.length = 0
    const h = await createPluginHarness(spy, c.config)
    t.same(seen, [c.resolved], `${JSON.stringify(c.config)} -> ok, defaults filled in`)
    await h.close()
  }

  const bad: Array<{ config: Record<string, unknown>, details: RegExp[] }> = [
    { config: { destination: '' }, details: [/^\/destination: must NOT have fewer than 1 characters$/] },
    { config: { destination: 1 }, details: [/^\/destination: must be a string$/] },
    { config: { headers: 'user-agent' }, details: [/^\/headers: must be an array$/] },
    { config: { headers: ['user agent'] }, details: [/^\/headers\/0: must match \^\[A-Za-z0-9-\]\+\$$/] },
    { config: { redact: ['ok', 'not ok'] }, details: [/^\/redact\/1: must match/] },
    { config: { redact: [7] }, details: [/^\/redact\/0: must be a string$/] },
    { config: { file: 'x.log' }, details: [/^\/: unknown property 'file'$/] },
    { config: { destination: '', headers: [1], level: 'info' }, details: [/^\/destination: /, /^\/headers\/0: must be a string$/, /^\/: unknown property 'level'$/] }
  ]
  for (const c of bad) {
    seen.length = 0
    const err = await createPluginHarness(spy, c.config).catch((e: unknown) => e) as { code?: string, details?: string[] }
    t.equal(err.code, 'GW_ERR_CONFIG_INVALID', `${JSON.stringify(c.config)} -> GW_ERR_CONFIG_INVALID`)
    t.equal(err.details?.length, c.details.length, 'one line per problem')
    for (const re of c.details) t.ok(err.details?.some((d) => re.test(d)), `${String(re)} in ${JSON.stringify(err.details)}`)
    t.same(seen, [], 'create() does not run, so no file is opened')
  }
})

t.test('one JSON line per request with the documented fields, to a file', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'logs', 'access.log')
  const h = await createPluginHarness(accessLog, { destination: file })
  t.same(Object.keys(h.hooks).sort(), ['close', 'onLog'], 'logs after the response; nothing on the request path')

  const r1 = await h.request({ method: 'get', path: '/orders/7', query: 'page=2', client: '10.1.2.3', route: 'orders' })
  r1.ctx.id = 'req-1'
  r1.ctx.outcome.upstream = 'http://127.0.0.1:3000'
  r1.ctx.outcome.upstreamMs = 12.34567
  r1.ctx.outcome.bytesOut = 321
  h.respond(r1, 201)
  h.log(r1)
  await logOne(h, { method: 'POST', path: '/x', route: 'other' }, 404)
  await logOne(h, { path: '/y' })
  await h.close()

  const lines = await waitForLines(file, 3)
  t.ok(existsSync(file), 'the file, and its directory, are created')
  t.equal(lines.length, 3, 'one line per request')
  const [a, b, c] = lines as [Line, Line, Line]
  t.match(a, {
    level: 30,
    msg: 'access',
    time: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    id: 'req-1',
    method: 'GET',
    path: '/orders/7',
    status: 201,
    durationMs: Number,
    client: '10.1.2.3',
    route: 'orders',
    upstream: 'http://127.0.0.1:3000',
    upstreamMs: 12.346,
    bytesIn: 0,
    bytesOut: 321,
    generation: 1
  })
  t.notOk('headers' in a, 'no headers object unless headers are configured')
  t.notOk('aborted' in a, 'aborted only when true')
  t.notOk(JSON.stringify(a).includes('page=2'), 'the query string (which may hold keys) is not logged')
  t.match(b, { method: 'POST', path: '/x', status: 404, route: 'other' })
  t.notOk('upstream' in b, 'no upstream when none was used')
  t.match(c, { method: 'GET', path: '/y', status: 200, client: '127.0.0.1' })
})

t.test('a denial and an aborted request are logged with their outcome', async (t) => {
  const file = join(t.testdir(), 'access.log')
  const h = await createPluginHarness(accessLog, { destination: file })
  const denied = await h.request({ path: '/deny' })
  Object.assign(denied.ctx.outcome, { status: 403, code: 'HEADER_NOT_ALLOWED', repliedBy: 'require-header' })
  h.log(denied)
  const aborted = await h.request({ path: '/gone' })
  aborted.ctx.outcome.aborted = true
  h.log(aborted)
  await h.close()
  const [d, a] = await waitForLines(file, 2) as [Line, Line]
  t.match(d, { status: 403, code: 'HEADER_NOT_ALLOWED', repliedBy: 'require-header' })
  t.match(a, { path: '/gone', aborted: true })
})

t.test('configured headers are logged; secret ones are always redacted, even when listed', async (t) => {
  const file = join(t.testdir(), 'access.log')
  const h = await createPluginHarness(accessLog, {
    destination: file,
    headers: ['User-Agent', 'x-tenant', 'Authorization', 'proxy-authorization', 'cookie', 'X-API-Key', 'apikey', 'x-session', 'x-absent'],
    redact: ['X-Session']
  })
  await logOne(h, { headers: { 'user-agent': 'curl/8', 'x-tenant': 'acme', ...SECRETS } })
  await logOne(h, { headers: { Authorization: SECRETS.authorization, COOKIE: SECRETS.cookie } })
  await h.close()

  t.equal((await waitForLines(file, 2)).length, 2)
  const text = readFileSync(file, 'utf8')
  for (const [name, value] of Object.entries(SECRETS)) t.notOk(text.includes(value), `the ${name} value is nowhere in the file`)
  t.notMatch(text, /SECRET/, 'no secret at all')
  const [a, b] = readLines(file) as [Line, Line]
  t.same(a.headers, {
    'user-agent': 'curl/8',
    'x-tenant': 'acme',
    authorization: '[redacted]',
    'proxy-authorization': '[redacted]',
    cookie: '[redacted]',
    'x-api-key': '[redacted]',
    apikey: '[redacted]',
    'x-session': '[redacted]'
  }, 'listed headers, secrets redacted; absent ones left out')
  t.same(b.headers, { authorization: '[redacted]', cookie: '[redacted]' })
})

t.test('secrets are not logged when no headers are configured either', async (t) => {
  const file = join(t.testdir(), 'access.log')
  const h = await createPluginHarness(accessLog, { destination: file })
  await logOne(h, { headers: SECRETS })
  await h.close()
  t.equal((await waitForLines(file, 1)).length, 1)
  const text = readFileSync(file, 'utf8')
  t.notMatch(text, /SECRET/)
})

// BUG (plugins/access-log/access-log.ts, close()): the destination is a SonicBoom with
// minLength: 0, and SonicBoom's flush(cb) calls cb at once when minLength <= 0, so close()
// resolves before buffered lines are written (or before the file is even open). A worker
// that is stopped right after close() loses them; see the burst test below.
t.test('close() resolves once every logged line is in the file', async (t) => {
  const file = join(t.testdir(), 'access.log')
  const h = await createPluginHarness(accessLog, { destination: file })
  for (let i = 0; i < 50; i++) await logOne(h, { path: `/n${i}` })
  await h.close()
  const now = existsSync(file) ? readLines(file).length : 0
  t.equal(now, 50, 'all 50 lines on disk when close() resolves')
  t.equal((await waitForLines(file, 50)).length, 50, 'they do all arrive, later')
})

t.test('end to end: a file log through the real gateway, flushed on SIGTERM, with no secret in it', async (t) => {
  const up = await startUpstream(t)
  // Relative to the config file, which startGateway writes into this test's testdir.
  const file = join(t.testdirName, 'logs', 'access.log')
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      plugins: [
        { name: 'request-id' },
        { name: 'access-log', config: { destination: 'logs/access.log', headers: ['user-agent', 'authorization', 'cookie', 'x-api-key'] } }
      ],
      routes: [{ name: 'api', match: { path: '/api' }, upstream: up.url }]
    }
  })

  const sent: Array<{ method: string, path: string, id: string, status: number }> = []
  const send = async (method: 'GET' | 'POST', url: string, headers: Record<string, string>, body?: string): Promise<void> => {
    const res = await request(`${gw.url}${url}`, { method, headers, body })
    await res.body.text()
    sent.push({ method, path: url.split('?')[0] as string, id: res.headers['x-request-id'] as string, status: res.statusCode })
  }
  await send('GET', '/api/orders', { authorization: SECRETS.authorization, cookie: SECRETS.cookie, 'user-agent': 'e2e/1' })
  await send('POST', '/api/orders', { 'x-api-key': SECRETS['x-api-key'], 'content-type': 'application/json' }, '{"n":1}')
  await send('GET', '/api/search?apikey=SECRET-query-ggg&q=1', { cookie: 'a=SECRET-cookie2-hhh; b=2' })
  await send('GET', '/nowhere', { authorization: 'Bearer SECRET-token-iii' })
  t.same(sent.map((s) => s.status), [200, 200, 200, 404])

  const stopped = await gw.stop()
  t.same(stopped, { code: 0, signal: null }, 'a clean exit on SIGTERM')

  t.ok(existsSync(file), 'the log file exists, relative to the config file')
  const text = readFileSync(file, 'utf8')
  t.notMatch(text, /SECRET/, 'no secret anywhere in the file: headers, cookies, keys, query strings')
  const lines = readLines(file)
  t.equal(lines.length, sent.length, 'one line per request, nothing lost at shutdown')

  const upstreamOrigin = up.url
  for (const s of sent) {
    const line = lines.find((l) => l.id === s.id)
    t.ok(line, `a line with the id the client got (${s.method} ${s.path})`)
    const routed = s.path.startsWith('/api')
    t.match(line, {
      msg: 'access',
      method: s.method,
      path: s.path,
      status: s.status,
      client: '127.0.0.1',
      route: routed ? 'api' : '',
      durationMs: Number,
      generation: Number
    }, `${s.method} ${s.path}`)
    if (routed) t.equal(line?.upstream, upstreamOrigin, 'the upstream it went to')
    else t.match(line, { upstream: undefined, repliedBy: 'gateway', code: 'GW_NO_ROUTE' }, 'a 404 from the gateway itself')
  }
  const get = lines.find((l) => l.id === sent[0]?.id)
  t.same(get?.headers, { 'user-agent': 'e2e/1', authorization: '[redacted]', cookie: '[redacted]' })
  const post = lines.find((l) => l.id === sent[1]?.id)
  t.equal(post?.bytesIn, 7, 'request body bytes')
  t.same(post?.headers, { 'x-api-key': '[redacted]' })
  t.ok((post?.bytesOut as number) > 0, 'response body bytes')
  t.notMatch(JSON.stringify(gw.lines) + gw.stderr(), /SECRET/, "nor in the gateway's own output")
})

t.test('end to end: requests in flight at SIGTERM are all logged', async (t) => {
  // The upstream holds every answer a little, so all requests are in flight when the gateway
  // is told to stop; the drain lets them finish, and each must still get its log line.
  const held: Array<() => void> = []
  const up = await startUpstream(t, (_req, res) => { held.push(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('ok') }) })
  const file = join(t.testdirName, 'access.log')
  const gw = await startGateway(t, {
    config: {
      logLevel: 'info',
      // One worker, and fewer requests than its upstream pool's 128 connections, so every
      // request is at the upstream when the stop begins.
      workers: 1,
      plugins: [{ name: 'access-log', config: { destination: 'access.log', headers: ['user-agent'] } }],
      routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }]
    }
  })
  const N = 120
  const pending = Array.from({ length: N }, async (_, i) => {
    const res = await request(`${gw.url}/r${i}`, { headers: { 'user-agent': 'burst/'.padEnd(400, 'u') } })
    await res.body.text()
    return res.statusCode
  })
  for (const until = Date.now() + 15_000; up.seen.length < N && Date.now() < until;) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(up.seen.length, N, 'all requests reached the upstream before the stop')
  const stopping = gw.stop()
  // Answer only once the drain has begun.
  await gw.waitFor((l) => l.msg === 'draining')
  for (const answer of held) answer()
  const statuses = await Promise.all(pending)
  t.same(await stopping, { code: 0, signal: null })
  t.equal(statuses.filter((s) => s === 200).length, N, 'every in-flight request was answered')

  const lines = existsSync(file) ? readLines(file) : []
  t.ok(lines.length <= N, 'never more lines than requests')
  t.ok(lines.every((l) => l.msg === 'access' && l.status === 200), 'every line is whole')
  t.equal(lines.length, N, `one line per answered request (${lines.length} of ${N} in the file)`)
})

t.test('end to end: a two-worker gateway logging to one file tears and loses no line', async (t) => {
  // Each worker batches its lines into writes of up to 32 KiB on the same O_APPEND file
  // (src/log-destination.ts): every line must come out whole, once.
  const up = await startUpstream(t)
  const file = join(t.testdirName, 'access.log')
  const gw = await startGateway(t, {
    config: {
      workers: 2,
      plugins: [{ name: 'access-log', config: { destination: 'access.log', headers: ['user-agent'] } }],
      routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }]
    }
  })
  const N = 3000
  const CONCURRENCY = 32
  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < N) {
      const i = next++
      const res = await request(`${gw.url}/r${i}`, { headers: { 'user-agent': `load/${i}/`.padEnd(300, 'x') } })
      await res.body.text()
    }
  }))
  t.same(await gw.stop(), { code: 0, signal: null })
  const text = readFileSync(file, 'utf8')
  t.ok(text.endsWith('\n'), 'the file ends with a whole line')
  const lines = readLines(file) // throws on a torn line
  t.equal(lines.length, N, 'one line per request')
  const paths = new Set(lines.map((l) => l.path))
  t.equal(paths.size, N, 'every request logged exactly once')
  t.ok(lines.every((l) => typeof l.headers === 'object' && String((l.headers as Record<string, string>)['user-agent']).length === 300), 'every line carries its whole header')
})

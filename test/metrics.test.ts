import t from 'tap'
import { request } from 'undici'
import { deadPort, rawRequest, startGateway, startUpstream } from './helpers/gateway.js'
import type { RunningGateway } from './helpers/gateway.js'

const TOKEN = 'metrics-test-token-0123456789'

function adminPort (gw: RunningGateway): number {
  const line = gw.lines.find((l) => l.msg === 'listening') as { admin?: { port: number } }
  if (line.admin === undefined) throw new Error('no admin listener')
  return line.admin.port
}

async function adminGet (gw: RunningGateway, path: string, token: string | null = TOKEN): Promise<{ status: number, text: string, type: string }> {
  const res = await request(`http://127.0.0.1:${adminPort(gw)}${path}`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } })
  return { status: res.statusCode, text: await res.body.text(), type: String(res.headers['content-type']) }
}

/** Prometheus text -> `name{a="b",c="d"}` (labels sorted) -> value. */
function parse (text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels = m[2] === undefined ? [] : [...(m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))].map((x) => `${x[1] as string}="${x[2] as string}"`).sort()
    out.set(labels.length === 0 ? m[1] as string : `${m[1] as string}{${labels.join(',')}}`, Number(m[3]))
  }
  return out
}

const key = (name: string, labels: Record<string, string> = {}): string => {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort()
  return l.length === 0 ? name : `${name}{${l.join(',')}}`
}

t.test('exact counts across 2 workers after a known sequence of requests', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const dead = await deadPort()
  const gw = await startGateway(t, {
    config: {
      workers: 2,
      logLevel: 'warn',
      admin: { port: 0, tokens: [{ name: 'ops', token: TOKEN }] },
      consumers: [{ id: 'c1', credentials: { keys: [{ digest: 'sha256:ca3092ec73fcdfaf75cafbf4ea8c7499600f0296793354ccf4e3c332fc18def3' }] } }],
      routes: [
        { name: 'api', match: { path: '/api' }, upstream: up.url },
        { name: 'blocked', match: { path: '/blocked' }, upstream: up.url, plugins: [{ name: 'ip-filter', config: { deny: ['127.0.0.0/8'] } }] },
        { name: 'keyed', match: { path: '/keyed' }, upstream: up.url, plugins: [{ name: 'key-auth' }] },
        // Passive checks off: every request must meet the refused connection (502), not an
        // ejected target (503), for the upstream-error counts below.
        { name: 'down', match: { path: '/down' }, upstream: { targets: [`http://127.0.0.1:${dead}`], passive: { consecutiveFailures: 0 } } }
      ]
    }
  })

  // Fresh connections, so the kernel spreads them over both workers' sockets.
  const send = async (method: 'GET' | 'POST', path: string, headers: Record<string, string> = {}): Promise<number> => {
    const res = await request(`${gw.url}${path}`, { method, headers: { connection: 'close', ...headers }, body: method === 'POST' ? 'x' : undefined, reset: true })
    await res.body.text()
    return res.statusCode
  }
  const plan: Array<[number, 'GET' | 'POST', string, Record<string, string>, number]> = [
    [40, 'GET', '/api/a', {}, 200],
    [9, 'POST', '/api/b', {}, 200],
    [6, 'GET', '/blocked', {}, 403],
    [5, 'GET', '/nowhere', {}, 404],
    [4, 'GET', '/keyed', {}, 401],
    [3, 'GET', '/keyed', { 'x-api-key': 'a-key-of-sixteen-chars-or-more' }, 200],
    [2, 'GET', '/keyed', { 'x-api-key': 'wrong-key-wrong-key-wrong' }, 401],
    [2, 'GET', '/down', {}, 502]
  ]
  for (const [n, method, path, headers, want] of plan) {
    const got: number[] = []
    for (let i = 0; i < n; i++) got.push(await send(method, path, headers))
    t.same(got, Array(n).fill(want), `${n} x ${method} ${path} -> ${want}`)
  }
  // A request the HTTP parser refuses never reaches a route: a gateway denial all the same.
  const raw = await rawRequest(gw.port, 'GET /api HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 400/)

  const status = JSON.parse((await adminGet(gw, '/status')).text) as { workers: Array<{ slot: number }> }
  t.equal(status.workers.length, 2)

  const scrape = await adminGet(gw, '/metrics')
  t.equal(scrape.status, 200)
  t.match(scrape.type, /^text\/plain; version=0\.0\.4/)
  const m = parse(scrape.text)
  const v = (name: string, labels?: Record<string, string>): number | undefined => m.get(key(name, labels))
  const req = (route: string, method: string, cls: string): number | undefined => v('tollgate_requests_total', { route, method, status_class: cls })

  t.equal(req('api', 'GET', '2xx'), 40)
  t.equal(req('api', 'POST', '2xx'), 9)
  t.equal(req('blocked', 'GET', '4xx'), 6)
  t.equal(req('', 'GET', '4xx'), 5, 'no route: the empty route label')
  t.equal(req('keyed', 'GET', '4xx'), 6)
  t.equal(req('keyed', 'GET', '2xx'), 3)
  t.equal(req('down', 'GET', '5xx'), 2)
  t.equal(v('tollgate_request_duration_seconds_count', { route: 'api' }), 49)
  t.equal(v('tollgate_request_duration_seconds_bucket', { route: 'api', le: '+Inf' }), 49)
  t.ok((v('tollgate_request_duration_seconds_sum', { route: 'api' }) ?? 0) > 0)
  t.equal(v('tollgate_upstream_duration_seconds_count', { route: 'api' }), 49, 'every proxied request has an upstream time')
  t.equal(v('tollgate_upstream_duration_seconds_count', { route: 'blocked' }), undefined, 'a denied request never went upstream')
  t.equal(v('tollgate_upstream_duration_seconds_count', { route: 'keyed' }), 3)
  // Buckets are cumulative and end at the count.
  const buckets = [...m].filter(([k]) => k.startsWith('tollgate_request_duration_seconds_bucket{') && k.includes('route="api"')).map(([, n]) => n)
  t.same(buckets, [...buckets].sort((a, b) => a - b), 'cumulative buckets')

  t.equal(v('tollgate_denials_total', { plugin: 'ip-filter', code: 'IP_DENIED' }), 6)
  t.equal(v('tollgate_denials_total', { plugin: 'gateway', code: 'GW_NO_ROUTE' }), 5)
  t.equal(v('tollgate_denials_total', { plugin: 'key-auth', code: 'MISSING_API_KEY' }), 4)
  t.equal(v('tollgate_denials_total', { plugin: 'key-auth', code: 'INVALID_API_KEY' }), 2)
  t.equal(v('tollgate_denials_total', { plugin: 'gateway', code: 'GW_BAD_REQUEST' }), 1, 'the parser refusal')
  t.equal([...m.keys()].filter((k) => k.startsWith('tollgate_denials_total')).length, 5, 'no other denial (502 is an error, not a denial)')
  t.equal(v('tollgate_upstream_errors_total', { kind: 'refused' }), 2)
  t.equal(v('tollgate_upstream_errors_total', { kind: 'timeout' }), 0)
  t.equal(v('tollgate_config_generation'), 1)
  t.equal(v('tollgate_worker_restarts_total'), 0)
  t.equal(v('tollgate_active_connections'), 0, 'every client connection was closed')
  t.ok(m.has('process_cpu_user_seconds_total'), "prom-client's process metrics of the acceptor")

  // Counts are per worker in shared memory and summed: both workers took a share here.
  const total = [...m].filter(([k]) => k.startsWith('tollgate_requests_total{')).reduce((a, [, n]) => a + n, 0)
  t.equal(total, 71, 'every request counted once')
})

t.test('/metrics needs the admin token unless admin.metricsWithoutToken; config updates are counted', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const routes = [{ name: 'api', match: { path: '/' }, upstream: up.url }]
  const gw = await startGateway(t, { config: { workers: 2, logLevel: 'warn', admin: { port: 0, tokens: [{ name: 'ops', token: TOKEN }] }, routes } })
  t.equal((await adminGet(gw, '/metrics', null)).status, 401, 'no token, no metrics')
  t.equal((await adminGet(gw, '/metrics', 'wrong-token-wrong-token')).status, 401)

  const put = async (body: unknown): Promise<number> => {
    const res = await request(`http://127.0.0.1:${adminPort(gw)}/config`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    await res.body.text()
    return res.statusCode
  }
  const base = { listen: { host: '127.0.0.1', port: 0 }, workers: 2, logLevel: 'warn', routes }
  t.equal(await put({ ...base, admin: { port: 0, tokens: [{ name: 'ops', token: TOKEN }], metricsWithoutToken: true } }), 200)
  t.equal(await put({ ...base, routes: [{ name: 'x', match: { path: 'nope' }, upstream: up.url }] }), 400)
  const m = parse((await adminGet(gw, '/metrics')).text)
  t.equal(m.get('tollgate_config_updates_total{result="applied"}'), 1)
  t.equal(m.get('tollgate_config_updates_total{result="refused"}'), 1)
  t.equal(m.get('tollgate_config_updates_total{result="rolled_back"}'), 0)
  t.equal(m.get('tollgate_config_generation'), 2)
})

t.test('admin.metricsWithoutToken opens /metrics only', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await startGateway(t, {
    config: { workers: 1, logLevel: 'warn', admin: { port: 0, tokens: [{ name: 'ops', token: TOKEN }], metricsWithoutToken: true }, routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }] }
  })
  const res = await request(`${gw.url}/x`)
  await res.body.text()
  const open = await adminGet(gw, '/metrics', null)
  t.equal(open.status, 200)
  t.equal(parse(open.text).get('tollgate_requests_total{method="GET",route="api",status_class="2xx"}'), 1)
  t.equal((await adminGet(gw, '/status', null)).status, 401, 'the rest of the API still needs the token')
  t.equal((await adminGet(gw, '/config', null)).status, 401)
  t.equal((await adminGet(gw, '/metrics?x=1', null)).status, 200)
})

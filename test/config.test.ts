import t from 'tap'
import { validateGatewayConfig } from '../src/config.js'

// One table of config inputs and the exact lines they produce (piscina option-validation
// style). Valid configs come back with defaults filled in.
const base = { routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:3000' }] }

function problems (value: unknown): string[] {
  try {
    validateGatewayConfig({ source: 'f.yaml', dir: '/', value })
    return []
  } catch (err) {
    t.equal((err as { code: string }).code, 'GW_ERR_CONFIG_INVALID')
    return [...(err as { details: string[] }).details]
  }
}

const cases: Array<[string, unknown, string[]]> = [
  ['no routes', {}, ["f.yaml: /: must have property 'routes'"]],
  ['not an object', [], ['f.yaml: /: must be an object']],
  ['unknown top-level key', { ...base, lisen: {} }, ["f.yaml: /: unknown property 'lisen'"]],
  ['port out of range', { ...base, listen: { port: 70000 } }, ['f.yaml: /listen/port: must be <= 65535']],
  ['port as string', { ...base, listen: { port: '80' } }, ['f.yaml: /listen/port: must be an integer']],
  ['workers 0', { ...base, workers: 0 }, ['f.yaml: /workers: must be >= 1']],
  ['bad log level', { ...base, logLevel: 'loud' }, ['f.yaml: /logLevel: must be one of: "fatal", "error", "warn", "info", "debug", "trace", "silent"']],
  ['upstream not a URL', { routes: [{ name: 'r', match: { path: '/' }, upstream: 'localhost:3000' }] }, ['f.yaml: /routes/0/upstream: must be a URL (http:// or https://)']],
  ['upstream with credentials', { routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://u:p@127.0.0.1' }] }, ['f.yaml: /routes/0/upstream: must be a URL (http:// or https://)']],
  ['upstream a number', { routes: [{ name: 'r', match: { path: '/' }, upstream: 5 }] }, ['f.yaml: /routes/0/upstream: must be a URL (http:// or https://) or an object']],
  ['target weight 0', { routes: [{ name: 'r', match: { path: '/' }, upstream: { targets: [{ url: 'http://a', weight: 0 }] } }] }, ['f.yaml: /routes/0/upstream/targets/0/weight: must be >= 1']],
  ['path without slash', { routes: [{ name: 'r', match: { path: 'x' }, upstream: 'http://a' }] }, ['f.yaml: /routes/0/match/path: must match ^/']],
  ['unknown method', { routes: [{ name: 'r', match: { path: '/', methods: ['GOT'] }, upstream: 'http://a' }] }, ['f.yaml: /routes/0/match/methods/0: must be one of: "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"']],
  ['duplicate route names', { routes: [base.routes[0], base.routes[0]] }, ["f.yaml: /routes/1/name: route name 'r' is used twice"]],
  ['bad duration', { ...base, limits: { headersTimeout: 'soon' } }, ['f.yaml: /limits/headersTimeout: must be a duration such as 500ms, 10s or 2m']],
  ['headers timeout over request timeout', { ...base, limits: { headersTimeout: '40s', requestTimeout: '30s' } }, ['f.yaml: /limits/headersTimeout: must not be greater than requestTimeout (30000 ms)']],
  ['counter entries not a power of two', { ...base, counters: { entries: 3000 } }, ['f.yaml: /counters/entries: must be a power of two (1024, 2048, ... 2097152)']],
  ['counter entries too many', { ...base, counters: { entries: 4194304 } }, ['f.yaml: /counters/entries: must be <= 2097152']],
  ['plugin without name', { ...base, plugins: [{ config: {} }] }, ["f.yaml: /plugins/0: must have property 'name'"]],
  ['plugin config not an object', { ...base, plugins: [{ name: 'x', config: 'y' }] }, ['f.yaml: /plugins/0/config: must be an object']]
]

for (const [name, value, want] of cases) {
  t.same(problems(value), want, name)
}

t.test('defaults and normalization', async (t) => {
  const cfg = validateGatewayConfig({ source: 'f', dir: '/', value: { ...base, timeouts: { headers: '2s' }, routes: [{ ...base.routes[0], timeouts: { body: '1m' } }] } })
  t.same(cfg.listen, { host: '127.0.0.1', port: 8080 })
  t.ok(cfg.workers >= 1, 'workers default to available parallelism')
  t.same(cfg.limits, { maxHeaderSize: 16384, maxHeadersCount: 100, headersTimeout: 10000, requestTimeout: 30000, keepAliveTimeout: 5000, drainTimeout: 30000, maxRequestsPerSocket: 0 })
  t.same(cfg.routes[0]?.timeouts, { connect: 5000, headers: 2000, body: 60000 }, 'route timeouts: own, else global, else default; in ms')
  t.same(cfg.routes[0]?.match, { path: '/', exact: false })
  t.equal(cfg.routes[0]?.preserveHost, false)
  t.same(cfg.plugins, [])
})

t.test('the input is not modified', async (t) => {
  const value = structuredClone(base)
  validateGatewayConfig({ source: 'f', dir: '/', value })
  t.same(value, base)
})

t.test('websocket: true or a block of limits, normalized to milliseconds; false or absent: none', async (t) => {
  const route = (websocket: unknown): Record<string, unknown> => ({ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1', ...(websocket === undefined ? {} : { websocket }) })
  const ws = (w: unknown): unknown => validateGatewayConfig({ source: 'f', dir: '/', value: { routes: [route(w)] } }).routes[0]?.websocket
  t.same(ws(true), { idleTimeout: 60000, maxLifetime: 0 }, 'true: the defaults')
  t.same(ws({ idleTimeout: '30s', maxLifetime: '1h' }), { idleTimeout: 30000, maxLifetime: 3600000 })
  t.same(ws({ maxLifetime: 500 }), { idleTimeout: 60000, maxLifetime: 500 })
  t.equal(ws(false), undefined, 'false: not proxied')
  t.equal(ws(undefined), undefined, 'absent: not proxied')
  t.throws(() => ws({ idle: 1 }), { code: 'GW_ERR_CONFIG_INVALID' }, 'an unknown key is refused')
  t.throws(() => ws({ idleTimeout: 'soon' }), { code: 'GW_ERR_CONFIG_INVALID' }, 'a bad duration is refused')
  t.throws(() => ws('yes'), { code: 'GW_ERR_CONFIG_INVALID' })
})

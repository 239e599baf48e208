import t from 'tap'
import { maskSecrets, summarize } from '../src/control/diff.js'

const SECRET = 'sk_live_do-not-leak-4242'

const base = {
  listen: { port: 8080 },
  plugins: [{ name: 'request-id' }, { name: 'access-log', config: { destination: 'stdout' } }],
  routes: [
    {
      name: 'orders',
      match: { path: '/orders' },
      upstream: 'http://127.0.0.1:3000',
      plugins: [{ name: 'rate-limit', config: { limits: [{ limit: 10, window: '1s' }], key: 'ip' } }]
    },
    { name: 'users', match: { path: '/users' }, upstream: 'http://127.0.0.1:3001' }
  ]
}
const clone = <T>(v: T): T => structuredClone(v)
const empty = { routes: { added: [], removed: [], changed: [] }, plugins: { added: [], removed: [], changed: [] }, settings: [] }

t.test('identical configs: nothing changed', async (t) => {
  t.same(summarize(base, clone(base)), empty)
  t.same(summarize(undefined, undefined), empty)
  t.same(summarize({}, { routes: [] }), empty)
})

t.test('object key order and written defaults do not count', async (t) => {
  const reordered = {
    routes: base.routes.map((r) => Object.fromEntries(Object.entries(r).reverse())),
    plugins: base.plugins,
    listen: base.listen
  }
  t.same(summarize(base, reordered), empty)
  const withDefaults = clone(base) as Record<string, any>
  withDefaults.listen = { host: '127.0.0.1', port: 8080 }
  withDefaults.limits = {}
  withDefaults.plugins[0].enabled = true
  withDefaults.plugins[0].config = {}
  withDefaults.routes[1].plugins = []
  withDefaults.routes[1].match.exact = false
  withDefaults.routes[1].stripPrefix = false
  t.same(summarize(base, withDefaults), empty)
})

t.test('routes added, removed, changed by name', async (t) => {
  const after = clone(base) as Record<string, any>
  after.routes[0].upstream = 'http://127.0.0.1:4000'
  after.routes.splice(1, 1)
  after.routes.push({ name: 'health', match: { path: '/health' }, upstream: 'http://127.0.0.1:3002' })
  const s = summarize(base, after)
  t.same(s.routes, { added: ['health'], removed: ['users'], changed: ['orders'] })
  t.same(s.plugins, empty.plugins)
  t.same(s.settings, [])
})

t.test('route order is part of the config', async (t) => {
  const after = clone(base)
  after.routes.reverse()
  const s = summarize(base, after)
  t.same(s.routes.changed, ['orders', 'users'])
  t.same(s.plugins, empty.plugins, "moving a route does not move its plugins within it")
})

t.test('plugin entries: global:<plugin> and <route>:<plugin>', async (t) => {
  const after = clone(base) as Record<string, any>
  after.routes[0].plugins[0].config.limits[0].limit = 20
  after.routes[1].plugins = [{ name: 'ip-filter', config: { allow: ['10.0.0.0/8'] } }]
  after.plugins = [{ name: 'request-id', config: { header: 'x-correlation-id' } }]
  const s = summarize(base, after)
  t.same(s.plugins, {
    added: ['users:ip-filter'],
    removed: ['global:access-log'],
    changed: ['global:request-id', 'orders:rate-limit']
  })
  t.same(s.routes.changed, ['orders', 'users'], 'a route whose plugins changed changed')
  t.same(s.settings, [])
})

t.test('plugins of added and removed routes are added and removed', async (t) => {
  const after = clone(base)
  after.routes = [base.routes[1] as typeof after.routes[number]]
  t.same(summarize(base, after).plugins, { added: [], removed: ['orders:rate-limit'], changed: [] })
  t.same(summarize(after, base).plugins, { added: ['orders:rate-limit'], removed: [], changed: [] })
})

t.test('plugin order within a list counts; enabled counts', async (t) => {
  const after = clone(base)
  after.plugins.reverse()
  t.same(summarize(base, after).plugins.changed, ['global:access-log', 'global:request-id'])
  const disabled = clone(base) as Record<string, any>
  disabled.plugins[1].enabled = false
  t.same(summarize(base, disabled).plugins.changed, ['global:access-log'])
})

t.test('top-level settings', async (t) => {
  const after = clone(base) as Record<string, any>
  after.listen.port = 9090
  after.workers = 4
  after.clientIp = { trustedProxies: ['10.0.0.0/8'] }
  after.admin = { tokens: [{ name: 'ops', token: SECRET }] }
  const s = summarize(base, after)
  t.same(s.settings, ['admin', 'clientIp', 'listen', 'workers'])
  t.same(s.routes, empty.routes)
  t.same(s.plugins, empty.plugins)
  t.same(summarize(after, base).settings, ['admin', 'clientIp', 'listen', 'workers'], 'removed sections too')
})

t.test('values never reach the summary', async (t) => {
  const before = {
    admin: { tokens: [{ name: 'ops', token: 'old-' + SECRET }] },
    routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://a', plugins: [{ name: 'api-key', config: { keys: [{ key: 'old-' + SECRET }] } }] }]
  }
  const after = {
    admin: { tokens: [{ name: 'ops', token: SECRET }] },
    plugins: [{ name: 'jwt', config: { secret: SECRET } }],
    routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://a', plugins: [{ name: 'api-key', config: { keys: [{ key: SECRET }] } }] }]
  }
  const s = summarize(before, after)
  t.same(s, { routes: { added: [], removed: [], changed: ['r'] }, plugins: { added: ['global:jwt'], removed: [], changed: ['r:api-key'] }, settings: ['admin'] })
  t.notMatch(JSON.stringify(s), SECRET)
  t.notMatch(JSON.stringify(summarize(after, before)), SECRET)
  t.notMatch(JSON.stringify(summarize(undefined, after)), SECRET)
})

t.test('summarise the configs as written, not masked ones', async (t) => {
  const before = { admin: { tokens: [{ name: 'ops', token: 'old' }] }, routes: [] }
  const after = { admin: { tokens: [{ name: 'ops', token: SECRET }] }, routes: [] }
  t.same(summarize(before, after).settings, ['admin'], 'a rotated token is a change')
  t.same(summarize(maskSecrets(before), maskSecrets(after)).settings, [], 'masked, the rotation is invisible')
})

t.test('names that are not identifiers are shown by position', async (t) => {
  const before = { routes: [{ name: 'ok', upstream: 'http://a' }] }
  const after = { routes: [{ name: 'ok', upstream: 'http://a' }, { name: SECRET + ' with spaces', upstream: 'http://b' }, { upstream: 'http://c' }] }
  const s = summarize(before, after)
  t.same(s.routes.added, ['#1', '#2'])
  t.notMatch(JSON.stringify(s), SECRET)
})

t.test('duplicate names (an invalid config) are told apart', async (t) => {
  const after = clone(base)
  after.plugins.push({ name: 'request-id' })
  t.same(summarize(base, after).plugins.added, ['global:request-id#2'])
})

t.test('anything that is not a config counts as an empty one', async (t) => {
  const s = summarize('not a config', base)
  t.same(s.routes.added, ['orders', 'users'])
  t.same(s.plugins.added, ['global:access-log', 'global:request-id', 'orders:rate-limit'])
  t.same(s.settings, [], 'listen: { port: 8080 } is the default')
  t.same(summarize(base, [1, 2, 3]).routes.removed, ['orders', 'users'])
  t.same(summarize({ routes: 'x', plugins: 5 }, { routes: [{}] }).routes.added, ['#0'])
})

t.test('maskSecrets', async (t) => {
  const raw = {
    admin: { tokens: [{ name: 'ops', token: SECRET }, { name: 'ci', token: SECRET }] },
    plugins: [
      { name: 'jwt', config: { secret: SECRET, issuer: 'https://id.example', jwks: { privateKey: SECRET } } },
      { name: 'api-key', config: { header: 'x-api-key', keys: [{ consumer: 'alice', value: SECRET }], apiKeys: { bob: SECRET } } },
      { name: 'basic', config: { users: [{ name: 'u', password: SECRET, passwordHash: SECRET }], credentials: [SECRET] } }
    ],
    routes: [{
      name: 'orders',
      upstream: 'http://127.0.0.1:3000',
      headers: { Authorization: 'Bearer ' + SECRET, Cookie: 'sid=' + SECRET, 'X-Client-Secret': SECRET },
      plugins: [{ name: 'rate-limit', config: { key: ['ip', 'header:X-Api-Key'], limits: [{ limit: 10, window: '1s' }] } }]
    }],
    limits: { maxHeaderSize: 16384 },
    tokenTtl: 3600,
    secretEnabled: true
  }
  const before = JSON.stringify(raw)
  const masked = maskSecrets(raw) as any
  t.equal(JSON.stringify(raw), before, 'the input is untouched')
  t.notMatch(JSON.stringify(masked), SECRET)
  t.same(masked.admin.tokens, [{ name: '[redacted]', token: '[redacted]' }, { name: '[redacted]', token: '[redacted]' }], 'deep: a key that looks secret masks everything below it')
  t.same(masked.plugins[0].config, { secret: '[redacted]', issuer: 'https://id.example', jwks: { privateKey: '[redacted]' } })
  t.same(masked.plugins[1].config, { header: 'x-api-key', keys: [{ consumer: '[redacted]', value: '[redacted]' }], apiKeys: { bob: '[redacted]' } }, 'everything under a secret key')
  t.same(masked.plugins[2].config.users, [{ name: 'u', password: '[redacted]', passwordHash: '[redacted]' }])
  t.same(masked.plugins[2].config.credentials, ['[redacted]'])
  t.same(masked.routes[0].headers, { Authorization: '[redacted]', Cookie: '[redacted]', 'X-Client-Secret': '[redacted]' })
  t.same(masked.routes[0].plugins[0].config.key, ['ip', 'header:X-Api-Key'], "rate-limit's key spec is not a secret")
  t.equal(masked.routes[0].upstream, 'http://127.0.0.1:3000')
  t.equal(masked.tokenTtl, 3600, 'numbers are kept')
  t.equal(masked.secretEnabled, true, 'booleans are kept')
  t.same(masked.limits, raw.limits)
  t.not(masked.routes[0], raw.routes[0], 'a deep copy')
  t.not(masked.routes[0].plugins, raw.routes[0].plugins)

  t.equal(maskSecrets('x'), 'x')
  t.equal(maskSecrets(null), null)
  t.same(maskSecrets([{ password: 'p' }]), [{ password: '[redacted]' }])
  const proto = maskSecrets(JSON.parse('{"__proto__": {"token": "t"}}')) as Record<string, unknown>
  t.equal(Object.getPrototypeOf(proto), Object.prototype, '__proto__ stays a member')
  t.same(Object.getOwnPropertyDescriptor(proto, '__proto__')?.value, { token: '[redacted]' })
})

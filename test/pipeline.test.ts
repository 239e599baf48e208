import t from 'tap'
import { request } from 'undici'
import { FIXTURES, startGateway, startUpstream } from './helpers/gateway.js'

const fixture = (name: string): string => `${FIXTURES}plugins/${name}.mjs`

t.test('a user plugin loaded by path denies by answering', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      routes: [{
        name: 'api',
        match: { path: '/api' },
        upstream: up.url,
        plugins: [{ name: 'deny-without-header', module: fixture('deny-without-header'), config: { header: 'x-tenant' } }]
      }]
    }
  })
  const denied = await request(`${gw.url}/api/x`)
  const body = await denied.body.json() as Record<string, unknown>
  t.equal(denied.statusCode, 401, 'denied')
  t.equal(denied.headers['content-type'], 'application/problem+json')
  t.same(body, { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'x-tenant is required', code: 'MISSING_HEADER' })
  t.equal(up.seen.length, 0, 'a denied request never reaches the upstream')

  const allowed = await request(`${gw.url}/api/x`, { headers: { 'x-tenant': 'a' } })
  await allowed.body.text()
  t.equal(allowed.statusCode, 200, 'allowed with the header')
  t.equal(up.seen.length, 1)
})

t.test('plugins run by phase, then in config order; async hooks are awaited', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      plugins: [
        { name: 'access-a', module: fixture('access-a') },
        { name: 'validate-d', module: fixture('validate-d'), config: { async: true } }
      ],
      routes: [{
        name: 'r',
        match: { path: '/' },
        upstream: up.url,
        plugins: [
          { name: 'authn-b', module: fixture('authn-b'), config: { async: true } },
          { name: 'connect-c', module: fixture('connect-c') }
        ]
      }]
    }
  })
  const res = await request(`${gw.url}/`)
  await res.body.text()
  t.equal(res.statusCode, 200)
  t.equal(up.seen[0]?.headers['x-order'], 'connect-c,authn-b,access-a,validate-d', 'connect -> authn -> access -> validate, whatever the list order')
})

t.test('a route entry overrides or disables a global plugin', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      plugins: [{ name: 'deny-without-header', module: fixture('deny-without-header'), config: { header: 'x-a' } }],
      routes: [
        { name: 'open', match: { path: '/open' }, upstream: up.url, plugins: [{ name: 'deny-without-header', module: fixture('deny-without-header'), enabled: false }] },
        { name: 'b', match: { path: '/b' }, upstream: up.url, plugins: [{ name: 'deny-without-header', module: fixture('deny-without-header'), config: { header: 'x-b', status: 403 } }] },
        { name: 'global', match: { path: '/' }, upstream: up.url }
      ]
    }
  })
  const statuses = async (path: string, headers: Record<string, string> = {}): Promise<number> => {
    const r = await request(`${gw.url}${path}`, { headers })
    await r.body.text()
    return r.statusCode
  }
  t.equal(await statuses('/open'), 200, 'disabled on /open')
  t.equal(await statuses('/b', { 'x-a': '1' }), 403, "/b uses the route's config")
  t.equal(await statuses('/b', { 'x-b': '1' }), 200)
  t.equal(await statuses('/other'), 401, 'the global config elsewhere')
  t.equal(await statuses('/other', { 'x-a': '1' }), 200)
})

t.test('a plugin that throws is a 500 for that request, not a dead worker', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      routes: [{ name: 'r', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'thrower', module: fixture('thrower') }] }]
    }
  })
  for (const path of ['/throw-sync', '/throw-async']) {
    const res = await request(`${gw.url}${path}`)
    const body = await res.body.json() as Record<string, unknown>
    t.equal(res.statusCode, 500, `${path} -> 500`)
    t.equal(body.code, 'GW_PLUGIN_FAILURE')
    t.notMatch(JSON.stringify(body), /failure|at /, 'no error message or stack reaches the client')
  }
  // Log lines are written asynchronously: wait for the second one.
  await gw.waitFor(() => gw.lines.filter((l) => l.msg === 'plugin hook failed').length >= 2)
  const errors = gw.lines.filter((l) => l.msg === 'plugin hook failed')
  t.equal(errors.length, 2, 'each failure is one error log line')
  t.equal(errors[0]?.plugin, 'thrower', 'naming the plugin')
  const ok = await request(`${gw.url}/fine`)
  await ok.body.text()
  t.equal(ok.statusCode, 200, 'the same worker keeps serving')
  t.equal(gw.lines.filter((l) => l.msg === 'worker thread died; replacing it').length, 0, 'no worker died')
})

t.test('global plugins run for unrouted requests too', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      plugins: [{ name: 'request-id' }],
      routes: [{ name: 'r', match: { path: '/r', exact: true }, upstream: up.url }]
    }
  })
  const res = await request(`${gw.url}/unknown`)
  await res.body.text()
  t.equal(res.statusCode, 404)
  t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'a 404 still carries a request id')
})

import t from 'tap'
import { request } from 'undici'
import securityHeaders from '../../plugins/security-headers/index.js'
import { createPluginHarness } from '../../src/testing.js'
import { startGateway, startUpstream } from '../helpers/gateway.js'

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const DEFAULTS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'strict-origin-when-cross-origin'
}

t.test('config: schema problems are refused with the path and reason', async (t) => {
  await t.resolves(createPluginHarness(securityHeaders, {}))
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ frameOptions: 'ALLOW-FROM https://a.example.com' }, '/frameOptions: must be one of: "DENY", "SAMEORIGIN", false'],
    [{ frameOptions: true }, '/frameOptions: must be one of'],
    [{ referrerPolicy: 'never' }, '/referrerPolicy: must be one of'],
    [{ hsts: { maxAge: -1 } }, '/hsts/maxAge: must be >= 0'],
    [{ hsts: { when: 'sometimes' } }, '/hsts/when: must be one of: "tls", "always"'],
    [{ hsts: { age: 1 } }, "/hsts: unknown property 'age'"],
    [{ contentSecurityPolicy: '' }, '/contentSecurityPolicy: must NOT have fewer than 1 characters'],
    [{ preferUpstream: ['server'] }, '/preferUpstream/0: must be one of'],
    [{ removeHeaders: ['x powered by'] }, '/removeHeaders/0: must match'],
    [{ frameAncestors: [] }, '/frameAncestors: must NOT have fewer than 1 items'],
    [{ xssProtection: '0' }, "/: unknown property 'xssProtection'"]
  ]
  for (const [config, line] of bad) {
    await t.rejects(createPluginHarness(securityHeaders, config), { code: 'GW_ERR_CONFIG_INVALID', details: [new RegExp('^' + esc(line))] }, JSON.stringify(config))
  }
})

t.test('config: values that could not be sent, or that contradict each other, are refused', async (t) => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ contentSecurityPolicy: "default-src 'self'\r\nSet-Cookie: a=b" }, /^\/contentSecurityPolicy: the value has a character a header cannot carry/],
    [{ contentSecurityPolicyReportOnly: "default-src 'none'\n" }, /^\/contentSecurityPolicyReportOnly: the value has a character a header cannot carry/],
    [{ permissionsPolicy: 'camera=()\u0000' }, /^\/permissionsPolicy: the value has a character a header cannot carry/],
    [{ contentSecurityPolicy: ' ; ; ' }, /^\/contentSecurityPolicy: the policy has no directive/],
    [{ contentSecurityPolicy: "'self' https:" }, /^\/contentSecurityPolicy: ''self' https:' does not start with a directive name/],
    [{ contentSecurityPolicy: "default-src 'self'; default-src 'none'" }, /^\/contentSecurityPolicy: the directive default-src is given twice/],
    [{ contentSecurityPolicy: "frame-ancestors 'self'", frameAncestors: ["'none'"] }, /^\/frameAncestors: contentSecurityPolicy has a frame-ancestors directive already/],
    [{ frameAncestors: ["'none'", "'self'"] }, /^\/frameAncestors: 'none' must be the only source/],
    [{ frameAncestors: ["'self'; script-src *"] }, /^\/frameAncestors\/0: .* is not a CSP source/],
    [{ frameAncestors: ['https://a.example.com, https://b'] }, /^\/frameAncestors\/0: .* is not a CSP source/],
    [{ hsts: { preload: true } }, /^\/hsts\/preload: the preload list requires includeSubDomains/],
    [{ hsts: { preload: true, includeSubDomains: true, maxAge: 86400 } }, /^\/hsts\/preload: the preload list requires/],
    [{ removeHeaders: ['Server', 'Content-Length'] }, /^\/removeHeaders\/1: content-length says how the body is framed/],
    [{ removeHeaders: ['x-frame-options'] }, /^\/removeHeaders\/0: x-frame-options is a header this plugin sets/],
    [{ removeHeaders: ['strict-transport-security'] }, /^\/removeHeaders\/0: strict-transport-security is a header this plugin sets/]
  ]
  for (const [config, message] of bad) {
    await t.rejects(createPluginHarness(securityHeaders, config), { message }, JSON.stringify(config))
  }
  // A header that is turned off may be removed from upstream responses.
  await t.resolves(createPluginHarness(securityHeaders, { frameOptions: false, removeHeaders: ['x-frame-options'] }))
  await t.resolves(createPluginHarness(securityHeaders, { hsts: { preload: true, includeSubDomains: true, maxAge: 63072000 } }))
})

t.test('defaults: nosniff, DENY, a referrer policy; no HSTS on a plain connection', async (t) => {
  const h = await createPluginHarness(securityHeaders, {})
  const r = await h.request({})
  t.equal(r.replied, false)
  t.same(r.responseHeaders, DEFAULTS)
  // X-Forwarded-Proto from a client is not believed: no trusted proxy is configured.
  t.same((await h.request({ headers: { 'x-forwarded-proto': 'https' } })).responseHeaders, DEFAULTS)

  const res = h.respond(r, 200, { server: 'nginx/1.25', 'x-powered-by': 'Express', 'X-Powered-By': 'PHP/8', 'x-frame-options': 'ALLOWALL', 'content-security-policy': "default-src 'self'", 'content-type': 'text/html' })
  t.same(res.headers, { ...DEFAULTS, 'content-security-policy': "default-src 'self'", 'content-type': 'text/html' }, 'Server and X-Powered-By gone, the upstream frame option replaced, its CSP kept')
})

t.test('every header configured, HSTS always', async (t) => {
  const config = {
    hsts: { when: 'always', maxAge: 63072000, includeSubDomains: true, preload: true },
    frameOptions: 'SAMEORIGIN',
    frameAncestors: ["'self'", 'https://*.example.com'],
    referrerPolicy: 'no-referrer',
    contentSecurityPolicy: "default-src 'none'; img-src 'self';",
    contentSecurityPolicyReportOnly: "script-src 'self'; report-to csp",
    permissionsPolicy: 'camera=(), geolocation=(self)',
    removeHeaders: ['X-AspNet-Version']
  }
  const want = {
    'strict-transport-security': 'max-age=63072000; includeSubDomains; preload',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'SAMEORIGIN',
    'referrer-policy': 'no-referrer',
    'content-security-policy': "default-src 'none'; img-src 'self'; frame-ancestors 'self' https://*.example.com",
    'content-security-policy-report-only': "script-src 'self'; report-to csp",
    'permissions-policy': 'camera=(), geolocation=(self)'
  }
  const h = await createPluginHarness(securityHeaders, config)
  const r = await h.request({})
  t.same(r.responseHeaders, want, 'every header, the preferUpstream ones as defaults (a reply gets them as is)')
  t.same(h.respond(r, 200, { 'x-aspnet-version': '4.0', server: 'kestrel' }).headers, { ...want, server: 'kestrel' }, 'added when the upstream has none; only the configured list is removed')
  t.same(h.respond(await h.request({}), 200, { 'content-security-policy': 'sandbox' }).headers['content-security-policy'], 'sandbox')

  // A request that matches no route is never proxied: everything is set at once.
  t.same((await h.request({ route: '' })).responseHeaders, want)

  // frameAncestors alone makes a policy of its own.
  const fa = await createPluginHarness(securityHeaders, { frameAncestors: ["'none'"], preferUpstream: [] })
  t.equal((await fa.request({})).responseHeaders['content-security-policy'], "frame-ancestors 'none'")
})

t.test('preferUpstream decides per header; everything can be switched off', async (t) => {
  const h = await createPluginHarness(securityHeaders, { hsts: { when: 'always' }, preferUpstream: ['x-frame-options', 'strict-transport-security'], contentSecurityPolicy: "default-src 'none'" })
  const r = await h.request({})
  t.same(r.responseHeaders, { 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'strict-transport-security': 'max-age=31536000', 'referrer-policy': 'strict-origin-when-cross-origin', 'content-security-policy': "default-src 'none'" })
  t.same(h.respond(r, 200, { 'x-frame-options': 'SAMEORIGIN', 'strict-transport-security': 'max-age=60', 'content-security-policy': 'sandbox' }).headers, {
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'strict-origin-when-cross-origin',
    'content-security-policy': "default-src 'none'",
    'x-frame-options': 'SAMEORIGIN',
    'strict-transport-security': 'max-age=60'
  })
  t.same(h.respond(await h.request({}), 200, {}).headers['strict-transport-security'], 'max-age=31536000')

  const off = await createPluginHarness(securityHeaders, { hsts: { enabled: false, when: 'always' }, contentTypeOptions: false, frameOptions: false, referrerPolicy: false, removeHeaders: [] })
  const o = await off.request({})
  t.same(o.responseHeaders, {})
  t.same(off.respond(o, 200, { server: 'x' }).headers, { server: 'x' })
})

t.test('through the gateway: proxied and gateway-made responses, HSTS behind a trusted proxy', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', server: 'Apache/2.4', 'X-Powered-By': 'PHP/8.3', 'x-frame-options': 'ALLOWALL', 'content-security-policy': "default-src 'self'" })
    res.end('<p>hi</p>')
  })
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      clientIp: { trustedProxies: ['127.0.0.1/32'] },
      consumers: [{ id: 'alice', credentials: { keys: [{ key: 'sec-headers-key-0123456789' }] } }],
      plugins: [{ name: 'security-headers', config: { contentSecurityPolicy: "default-src 'none'", permissionsPolicy: 'camera=()' } }],
      routes: [
        { name: 'site', match: { path: '/site' }, upstream: up.url },
        { name: 'private', match: { path: '/private' }, upstream: up.url, plugins: [{ name: 'key-auth' }] },
        // This route trusts another proxy only: the loopback peer's X-Forwarded-Proto is not believed.
        { name: 'other-proxy', match: { path: '/other' }, upstream: up.url, clientIp: { trustedProxies: ['10.0.0.0/8'] } }
      ]
    }
  })
  const get = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> => {
    const r = await request(gw.url + path, { headers })
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
  }

  const site = await get('/site')
  t.equal(site.status, 200)
  t.equal(site.body, '<p>hi</p>')
  t.equal(site.headers['x-content-type-options'], 'nosniff')
  t.equal(site.headers['x-frame-options'], 'DENY', "the upstream's ALLOWALL is replaced")
  t.equal(site.headers['referrer-policy'], 'strict-origin-when-cross-origin')
  t.equal(site.headers['permissions-policy'], 'camera=()')
  t.equal(site.headers['content-security-policy'], "default-src 'self'", "the upstream's CSP is kept")
  t.equal(site.headers.server, undefined, 'Server removed')
  t.equal(site.headers['x-powered-by'], undefined, 'X-Powered-By removed')
  t.equal(site.headers['strict-transport-security'], undefined, 'plain HTTP, no forwarded proto')

  const viaTls = await get('/site', { 'x-forwarded-proto': 'https' })
  t.equal(viaTls.headers['strict-transport-security'], 'max-age=31536000', 'a trusted proxy says the client used HTTPS')
  t.equal((await get('/site', { 'x-forwarded-proto': 'https, http' })).headers['strict-transport-security'], undefined, 'only the last value counts')
  t.equal((await get('/other', { 'x-forwarded-proto': 'https' })).headers['strict-transport-security'], undefined, 'not from a proxy this route trusts')

  const notFound = await get('/nowhere', { 'x-forwarded-proto': 'https' })
  t.equal(notFound.status, 404)
  t.equal(notFound.headers['x-content-type-options'], 'nosniff')
  t.equal(notFound.headers['x-frame-options'], 'DENY')
  t.equal(notFound.headers['content-security-policy'], "default-src 'none'", 'no upstream to prefer: the gateway CSP')
  t.equal(notFound.headers['strict-transport-security'], 'max-age=31536000')

  const denied = await get('/private')
  t.equal(denied.status, 401)
  t.equal(denied.headers['x-content-type-options'], 'nosniff')
  t.equal(denied.headers['x-frame-options'], 'DENY')
  t.equal(denied.headers['referrer-policy'], 'strict-origin-when-cross-origin')
  t.equal(denied.headers['content-security-policy'], "default-src 'none'", 'a reply on a route gets the gateway CSP (no upstream to prefer)')
  t.equal(up.seen.length, 4, 'the 404 and the 401 were not proxied')
})

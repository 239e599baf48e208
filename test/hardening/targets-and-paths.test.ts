// CHECKLIST A15 (request-target forms) and A30 (one path normalization for routing, every
// policy and the upstream): a deny on /admin holds for every spelling of /admin.
import t from 'tap'
import type { Test } from 'tap'
import { exchange, forwarded, gatewayFor, startRawUpstream } from './helpers.js'
import type { RawUpstream } from './helpers.js'

const up = await startRawUpstream(t)
const deny = [{ name: 'ip-filter', config: { deny: ['127.0.0.0/8', '::1/128'] } }]
const routes = (u: RawUpstream): unknown[] => [
  { name: 'admin', match: { path: '/admin', caseInsensitive: true }, upstream: u.url, plugins: deny },
  { name: 'secret', match: { path: '/secret' }, upstream: u.url, plugins: deny },
  { name: 'users', match: { path: '/users/:id', caseInsensitive: true }, upstream: `${u.url}/u` },
  { name: 'all', match: { path: '/' }, upstream: u.url }
]
const gw = await gatewayFor(t, up, { routes: routes(up) })

/** `GET target`: the status, and what reached the upstream (undefined: nothing). */
async function get (target: string, port = gw.port, u = up, waitClose = false): Promise<{ status: number | undefined, upstream: string | undefined, closed: boolean }> {
  const mark = u.mark()
  const ex = await exchange(port, `GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`, { finals: 1, ms: 3000, waitClose })
  const status = ex.finals[0]?.status
  if (status === 200) await u.waitFor(mark.requests + 1)
  const seen = u.since(mark)
  if (seen.requests.length > 1 || (seen.requests.length === 0 && seen.bytes > 0)) throw new Error(`unexpected upstream traffic for ${target}`)
  return { status, upstream: seen.requests[0]?.bytes.toString('latin1'), closed: ex.closed }
}

const fwd = (target: string, u = up, port = gw.port): string => forwarded({ method: 'GET', target, upstreamPort: u.port, gatewayPort: port })

async function denied (tt: Test, target: string, status: number): Promise<void> {
  const r = await get(target)
  tt.equal(r.status, status, `${target} -> ${status}`)
  tt.equal(r.upstream, undefined, `${target}: nothing upstream`)
}

t.test('A15: request targets that are not an origin-form path', async (t) => {
  const lines = ['GET * HTTP/1.1', 'OPTIONS * HTTP/1.1', 'OPTIONS */test HTTP/1.1', 'CONNECT / HTTP/1.1', 'CONNECT a:443 HTTP/1.1',
    'GET host:80 HTTP/1.1', 'GET admin HTTP/1.1', 'GET ?x HTTP/1.1', 'GET a/b HTTP/1.1', 'GET mailto:x@a HTTP/1.1', 'GET //a.example/x#frag HTTP/1.1']
  for (const line of lines) {
    const mark = up.mark()
    const ex = await exchange(gw.port, `${line}\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n`, { ms: 3000 })
    t.same(ex.finals.map((r) => r.status), [400], `${JSON.stringify(line)}: 400, and nothing after it is served`)
    t.match(ex.finals[0]?.headers['content-type'] ?? '', /problem\+json/)
    t.ok(ex.closed, `${JSON.stringify(line)}: connection closed`)
    t.equal(up.since(mark).bytes, 0, `${JSON.stringify(line)}: nothing upstream`)
  }
})

t.test('A30: every spelling of a denied path is denied, or refused', async (t) => {
  for (const target of ['/admin', '/admin/', '/admin/x', '/%61dmin', '/%61%64%6D%69%6E', '//admin', '///admin//x', '/pub/../admin', '/pub/%2e%2e/admin',
    '/pub/%2E%2E/admin', '/./admin', '/pub/./../admin', '/../admin', '/ADMIN', '/Admin/x', '/%41DMIN', '/aDmIn?x=1']) {
    await denied(t, target, 403)
  }
  for (const target of ['/admin%2f', '/admin%2F..', '/admin%2fx', '/pub/..%2fadmin', '/admin;x', '/admin;', '/pub;/../admin', '/admin%5c', '/a%00', '/admin%zz', '/admin#x', '/admin\\x']) {
    const r = await get(target, gw.port, up, true)
    t.equal(r.status, 400, `${target} -> 400`)
    t.equal(r.upstream, undefined, `${target}: nothing upstream`)
    t.ok(r.closed, `${target}: connection closed`)
  }
  // Case-sensitive unless the route says otherwise: /SECRET is another path (and goes to the
  // catch-all), exactly as a case-sensitive upstream will see it.
  await denied(t, '/secret', 403)
  await denied(t, '/%73ecret', 403)
  const other = await get('/SECRET')
  t.equal(other.status, 200, '/SECRET is not /secret on a case-sensitive route')
  t.equal(other.upstream, fwd('/SECRET'), 'and reaches the upstream as sent')
})

t.test('A30: the upstream gets the normalized path, the query as sent', async (t) => {
  const cases: Array<[string, string]> = [
    ['/pub/../x', '/x'], ['//x//y', '/x/y'], ['/%7euser/%41', '/~user/A'], ['/a/./b/../c', '/a/c'], ['/a/%2e/b', '/a/b'],
    ['/caf%c3%a9', '/caf%C3%A9'], ['/%2561dmin', '/%2561dmin'], ['/q?a=%2F&b=../x&c=%00', '/q?a=%2F&b=../x&c=%00'],
    ['/admin/..', '/'], ['/admin/../', '/'], ['/Users/AbC/x', '/u/Users/AbC/x'], ['/USERS/AbC', '/u/USERS/AbC']
  ]
  for (const [target, sent] of cases) {
    const r = await get(target)
    t.equal(r.status, 200, `${target} -> 200`)
    t.equal(r.upstream, fwd(sent), `${target} reaches the upstream as ${sent}`)
  }
})

t.test('A30: slash merging and ; can be switched', async (t) => {
  const up2 = await startRawUpstream(t)
  const gw2 = await gatewayFor(t, up2, { limits: { mergeSlashes: false, pathSemicolons: 'allow' }, routes: routes(up2) })
  const get2 = (target: string): ReturnType<typeof get> => get(target, gw2.port, up2)
  t.equal((await get2('/admin')).status, 403, 'the route still denies /admin')
  let r = await get2('//x//y')
  t.equal(r.status, 200)
  t.equal(r.upstream, fwd('//x//y', up2, gw2.port), 'mergeSlashes: false keeps //')
  r = await get2('/x;v=1/y')
  t.equal(r.status, 200)
  t.equal(r.upstream, fwd('/x;v=1/y', up2, gw2.port), "pathSemicolons: allow passes ; as an ordinary character")
  // With ; allowed, /admin;x is a different path for the gateway: an upstream that strips
  // path parameters would serve /admin. That is why reject is the default.
  r = await get2('/admin;x')
  t.equal(r.status, 200, '/admin;x is not /admin once ; is allowed')
})

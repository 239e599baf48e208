// threat-guard in a running gateway: 2 worker threads, real sockets, a real upstream, the
// admin API. Each client address is its own loopback address (127.0.0.x, all local on
// Linux), bound as the source of fresh connections, so the kernel spreads them over both
// workers (SO_REUSEPORT) and the thread-id fixture plugin tells which one answered.
import { request as httpRequest } from 'node:http'
import t from 'tap'
import { FIXTURES, startGateway, startUpstream } from './helpers/gateway.js'

type Json = Record<string, any>
const TOKEN = 'ops-token-0123456789abcdef'

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/** One request on a fresh connection from `from` (a 127.0.0.x source address). */
function get (port: number, path: string, from: string, opts: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', localAddress: from, agent: false, headers: opts.headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`${path}: no answer in 10 s`)))
    req.on('error', reject)
    req.end(opts.body)
  })
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every 50 ms for up to `ms`; true once it held. */
async function eventually (check: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await sleep(50)
  }
  return await check()
}

// Many steps against real processes on a possibly loaded machine: more than tap's default.
t.setTimeout(300_000)

t.test('auto-block in a 2-worker gateway: threshold, every worker, allow list, admin API, updates, expiry', async (t) => {
  // The upstream answers the status its path names: /s/401 -> 401.
  const up = await startUpstream(t, (req, res) => {
    const m = /^\/s\/([0-9]{3})$/.exec(req.url ?? '')
    res.writeHead(m === null ? 200 : Number(m[1]), { 'content-type': 'text/plain' })
    res.end('ok')
  })
  const config = (blockFor: string): Json => ({
    logLevel: 'info',
    workers: 2,
    admin: { port: 0, tokens: [{ name: 'ops', token: TOKEN }] },
    plugins: [
      { name: 'thread-id', module: `${FIXTURES}plugins/thread-id.mjs` },
      { name: 'threat-guard', config: { threshold: 4, window: '1h', blockFor, allow: ['127.0.0.3/32'] } }
    ],
    routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }]
  })
  const gw = await startGateway(t, { config: config('1h') })
  const admin = ((gw.lines.find((l) => l.msg === 'listening') as Json).admin as Json).port as number
  const auth = { authorization: `Bearer ${TOKEN}` }
  const blocks = async (): Promise<Json> => JSON.parse((await get(admin, '/blocks', '127.0.0.1', { headers: auth })).body) as Json

  t.test('the admin endpoints need the token', async (t) => {
    t.equal((await get(admin, '/blocks', '127.0.0.1')).status, 401)
    t.equal((await get(admin, '/blocks', '127.0.0.1', { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401)
    const del = await get(admin, '/blocks/127.0.0.9', '127.0.0.1', { method: 'DELETE' })
    t.equal(del.status, 401)
    t.equal(JSON.parse(del.body).code, 'GW_ERR_ADMIN_AUTH')
    t.same(await blocks(), { blocks: [], blockedIps: 0, autoblocksTotal: 0, tableFull: 0 })
  })

  const A = '127.0.0.2'
  t.test('the fourth strike blocks, whoever answered each', async (t) => {
    t.equal((await get(gw.port, '/s/401', A)).status, 401, 'strike 1: the upstream')
    t.equal((await get(gw.port, '/s/401', A)).status, 401, 'strike 2: the upstream')
    const refused = await get(gw.port, '/a;b', A)
    t.equal(refused.status, 400, 'strike 3: the gateway itself (a ; in the path)')
    t.equal(JSON.parse(refused.body).code, 'GW_BAD_REQUEST')
    await sleep(300)
    t.equal((await get(gw.port, '/s/200', A)).status, 200, 'three strikes: still served')
    t.same((await blocks()).blocks, [], 'and not listed')
    t.equal((await get(gw.port, '/s/403', A)).status, 403, 'strike 4: the upstream')
    t.ok(await eventually(async () => (await get(gw.port, '/s/200', A)).status === 403), 'then blocked')
    const r = await get(gw.port, '/s/200', A)
    t.equal(JSON.parse(r.body).code, 'GW_IP_AUTO_BLOCKED')
    t.match(r.headers['content-type'], /^application\/problem\+json/)
    t.ok(Number(r.headers['retry-after']) > 3500, 'Retry-After: about an hour')
    const b = await blocks()
    t.equal(b.blockedIps, 1)
    t.equal(b.autoblocksTotal, 1)
    t.match(b.blocks, [{ ip: A, reason: { count: 4, statuses: [{ status: 401, count: 2 }] } }])
    t.same([...(b.blocks[0].reason.statuses as Json[])].sort((x, y) => x.status - y.status), [{ status: 400, count: 1 }, { status: 401, count: 2 }, { status: 403, count: 1 }])
    t.ok(Date.parse(b.blocks[0].until) - Date.now() > 3_500_000)
    const event = await gw.waitFor((l) => l.securityEvent === 'ip-auto-blocked')
    t.match(event, { ip: A, count: 4, code: 'GW_IP_AUTO_BLOCKED', reasons: { 400: 1, 401: 2, 403: 1 } })
    t.equal(gw.lines.filter((l) => l.securityEvent === 'ip-auto-blocked').length, 1, 'one event, from one worker')
    const metrics = (await get(admin, '/metrics', '127.0.0.1', { headers: auth })).body
    t.match(metrics, /^tollgate_autoblocks_total 1$/m, 'the block in /metrics')
    t.match(metrics, /^tollgate_blocked_ips 1$/m)
    t.notMatch(metrics, /tollgate_cluster_/, 'no cluster families without cluster mode')
  })

  t.test('every worker refuses the blocked address at once; others are served', async (t) => {
    const threads = new Set<string>()
    let served = 0
    for (let i = 0; i < 60 && threads.size < 2; i++) {
      const r = await get(gw.port, '/s/200', A)
      if (r.status !== 403) served++
      threads.add(String(r.headers['x-thread-id']))
    }
    t.equal(threads.size, 2, 'answers came from both worker threads')
    t.equal(served, 0, 'and each of them refused the address')
    t.equal((await get(gw.port, '/s/200', '127.0.0.4')).status, 200, 'another address is served')
  })

  t.test('an allow-listed address is never blocked', async (t) => {
    for (let i = 0; i < 8; i++) t.equal((await get(gw.port, '/s/401', '127.0.0.3')).status, 401)
    await sleep(300)
    t.equal((await get(gw.port, '/s/200', '127.0.0.3')).status, 200)
    t.equal((await blocks()).blockedIps, 1)
  })

  t.test('a policy update keeps running blocks; the new blockFor applies to new ones', async (t) => {
    const put = await get(admin, '/config', '127.0.0.1', { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, ...config('1500ms') }) })
    t.equal(put.status, 200, put.body)
    t.equal((await get(gw.port, '/s/200', A)).status, 403, 'still blocked under the new generation')
    const B = '127.0.0.5'
    for (let i = 0; i < 4; i++) await get(gw.port, '/s/429', B)
    t.ok(await eventually(async () => (await get(gw.port, '/s/200', B)).status === 403), 'a new block')
    const until = Date.parse(((await blocks()).blocks as Json[]).find((e) => e.ip === B)?.until as string)
    t.ok(until - Date.now() <= 1500, 'lasting the new blockFor')
    t.ok(await eventually(async () => (await get(gw.port, '/s/200', B)).status === 200, 10_000), 'and it expires')
    t.equal((await get(gw.port, '/s/200', A)).status, 403, 'while the older block runs on')
    t.same(((await blocks()).blocks as Json[]).map((e) => e.ip), [A])
  })

  t.test('DELETE /blocks/:ip unblocks on every worker at once', async (t) => {
    const del = await get(admin, `/blocks/${A}`, '127.0.0.1', { method: 'DELETE', headers: auth })
    t.equal(del.status, 200)
    t.same(JSON.parse(del.body), { ip: A, lifted: true })
    const threads = new Set<string>()
    let refused = 0
    for (let i = 0; i < 60 && threads.size < 2; i++) {
      const r = await get(gw.port, '/s/200', A)
      if (r.status !== 200) refused++
      threads.add(String(r.headers['x-thread-id']))
    }
    t.equal(threads.size, 2, 'answers came from both worker threads')
    t.equal(refused, 0, 'none of them refused the address any more')
    t.equal((await get(gw.port, '/s/401', A)).status, 401)
    await sleep(300)
    t.equal((await get(gw.port, '/s/200', A)).status, 200, 'strikes count afresh after a lift')
    const again = await get(admin, `/blocks/${A}`, '127.0.0.1', { method: 'DELETE', headers: auth })
    t.equal(again.status, 404)
    t.equal(JSON.parse(again.body).code, 'GW_ERR_BLOCK_NOT_FOUND')
    const bad = await get(admin, '/blocks/not-an-address', '127.0.0.1', { method: 'DELETE', headers: auth })
    t.equal(bad.status, 400)
    t.equal(JSON.parse(bad.body).code, 'GW_BAD_REQUEST')
    t.match(await blocks(), { blocks: [], blockedIps: 0, autoblocksTotal: 2 })
  })
})

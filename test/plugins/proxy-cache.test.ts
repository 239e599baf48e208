import t from 'tap'
import { request } from 'undici'
import proxyCache from '../../plugins/proxy-cache/index.js'
import { createPluginHarness } from '../../src/testing.js'
import { startGateway, startUpstream } from '../helpers/gateway.js'
import type { RunningGateway, Upstream } from '../helpers/gateway.js'

interface Json { [k: string]: unknown }

const ALICE = 'alice-key-0123456789abcdef'
const BOB = 'bob-key-0123456789abcdef!!'

/**
 * The upstream: every answer says how many times this exact URL was asked for (`n`), and
 * takes its caching headers from the query: `cc` (Cache-Control), `vary`, `cookie`,
 * `size` (body bytes), `delay` (ms before answering), `status`.
 */
async function upstream (t: Tap): Promise<Upstream & { hits: (url: string) => number }> {
  const count = new Map<string, number>()
  const up = await startUpstream(t, (req, res) => {
    const url = req.url ?? ''
    const n = (count.get(url) ?? 0) + 1
    count.set(url, n)
    const q = new URL(url, 'http://x').searchParams
    const headers: Record<string, string> = { 'content-type': 'application/json', etag: `"v${n}"` }
    if (q.has('cc')) headers['cache-control'] = q.get('cc') as string
    if (q.has('vary')) headers.vary = q.get('vary') as string
    if (q.has('cookie')) headers['set-cookie'] = 'session=1'
    if (q.has('server')) headers.server = 'upstream/1.0'
    const size = Number(q.get('size') ?? 0)
    const body = JSON.stringify({ n, url, lang: req.headers['accept-language'] ?? null, consumer: req.headers['x-consumer-id'] ?? null, pad: 'x'.repeat(size) })
    const send = (): void => {
      res.writeHead(Number(q.get('status') ?? 200), { ...headers, 'content-length': String(Buffer.byteLength(body)) })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    const delay = Number(q.get('delay') ?? 0)
    if (delay > 0) setTimeout(send, delay)
    else send()
  })
  return { ...up, hits: (url) => count.get(url) ?? 0 }
}

type Tap = Parameters<typeof startUpstream>[0]

interface Got { status: number, cache: string | undefined, age: string | undefined, headers: Record<string, unknown>, text: string, json: Json }

async function get (gw: RunningGateway, path: string, headers: Record<string, string> = {}, method = 'GET', fresh = false): Promise<Got> {
  const res = await request(gw.url + path, { method: method as 'GET', headers, reset: fresh })
  const text = await res.body.text()
  let json: Json = {}
  try { json = JSON.parse(text) as Json } catch {}
  const h = res.headers as Record<string, string | undefined>
  return { status: res.statusCode, cache: h['x-cache'], age: h.age, headers: res.headers, text, json }
}

const cc = (v: string): string => encodeURIComponent(v)

async function admin (gw: RunningGateway, method: string, path: string, body?: unknown): Promise<{ status: number, body: Json }> {
  const line = gw.lines.find((l) => l.msg === 'listening') as { admin?: { port: number } }
  const port = line.admin?.port
  if (port === undefined) throw new Error('no admin listener')
  const res = await request(`http://127.0.0.1:${port}${path}`, { method: method as 'GET', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.body.text()
  return { status: res.statusCode, body: text === '' ? {} : JSON.parse(text) as Json }
}

/** Poll (bounded) until `fn` is true; the clock is never asserted. */
async function until (fn: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await fn()) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return false
}

t.test('config: bad ones are refused with the path and reason', async (t) => {
  await t.resolves(createPluginHarness(proxyCache, {}))
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ maxEntries: 0 }, /\/maxEntries: must be >= 1/],
    [{ statuses: [] }, /\/statuses: must NOT have fewer than 1 items/],
    [{ statuses: [200, 206] }, /\/statuses\/1/],
    [{ defaultTtl: '5 minutes' }, /\/defaultTtl/],
    [{ authorized: 'always' }, /\/authorized: must be one of/],
    [{ header: 'X Cache' }, /\/header: must match/],
    [{ ttl: 5 }, /unknown property 'ttl'/]
  ]
  for (const [config, line] of bad) await t.rejects(createPluginHarness(proxyCache, config), { code: 'GW_ERR_CONFIG_INVALID', details: [line] }, JSON.stringify(config))
  await t.rejects(createPluginHarness(proxyCache, { maxBytes: 2048, maxEntrySize: 4096 }), /maxEntrySize \(4096\) is larger than maxBytes/)
})

t.test('one gateway, one worker', async (t) => {
  const up = await upstream(t)
  const consumers = [
    { id: 'alice', credentials: { keys: [{ key: ALICE }] } },
    { id: 'bob', credentials: { keys: [{ key: BOB }] } }
  ]
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'warn',
      consumers,
      routes: [
        { name: 'small', match: { path: '/small' }, upstream: up.url, plugins: [{ name: 'proxy-cache', config: { maxBytes: 65536, maxEntrySize: 16384 } }] },
        { name: 'ttl', match: { path: '/ttl' }, upstream: up.url, plugins: [{ name: 'proxy-cache', config: { defaultTtl: '60s', header: 'X-Cache' } }] },
        { name: 'auth', match: { path: '/auth' }, upstream: up.url, plugins: [{ name: 'key-auth' }, { name: 'proxy-cache' }] },
        { name: 'bearer', match: { path: '/bearer' }, upstream: up.url, plugins: [{ name: 'proxy-cache' }] },
        { name: 'sec', match: { path: '/sec' }, upstream: up.url, plugins: [{ name: 'security-headers' }, { name: 'cors', config: { origins: ['https://app.example'] } }, { name: 'request-id' }, { name: 'proxy-cache' }] },
        { name: 'c', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'proxy-cache' }] }
      ]
    }
  })

  t.test('hit and miss; Age on hits; HEAD from the GET entry', async (t) => {
    const p = `/a?cc=${cc('max-age=60')}`
    const a = await get(gw, p)
    t.equal(a.status, 200)
    t.equal(a.cache, 'MISS')
    t.equal(a.age, undefined)
    const b = await get(gw, p)
    t.equal(b.cache, 'HIT')
    t.match(b.age, /^[0-9]+$/)
    t.equal(b.text, a.text, 'the same body')
    t.equal(b.headers.etag, '"v1"')
    t.equal(b.headers['content-length'], String(Buffer.byteLength(a.text)))
    const head = await get(gw, p, {}, 'HEAD')
    t.equal(head.cache, 'HIT')
    t.equal(head.text, '')
    t.equal(head.headers['content-length'], String(Buffer.byteLength(a.text)))
    t.equal(up.hits(p), 1, 'one upstream request for GET, GET, HEAD')
    // A conditional request for the stored ETag is answered 304 from the cache.
    const cond = await get(gw, p, { 'if-none-match': '"v1"' })
    t.equal(cond.status, 304)
    t.equal(cond.cache, 'HIT')
    t.equal(up.hits(p), 1)
    // POST is not cached and says so.
    const post = await request(gw.url + p, { method: 'POST', body: 'x' })
    await post.body.text()
    t.equal(post.headers['x-cache'], 'BYPASS')
  })

  t.test('a HEAD miss goes upstream and stores nothing', async (t) => {
    const p = `/head-first?cc=${cc('max-age=60')}`
    t.equal((await get(gw, p, {}, 'HEAD')).cache, 'MISS')
    t.equal((await get(gw, p)).cache, 'MISS')
    t.equal((await get(gw, p, {}, 'HEAD')).cache, 'HIT')
    t.equal(up.hits(p), 2)
  })

  t.test('max-age expiry (polled, not timed)', async (t) => {
    const p = `/short?cc=${cc('max-age=1')}`
    t.equal((await get(gw, p)).cache, 'MISS')
    t.equal((await get(gw, p)).cache, 'HIT')
    t.ok(await until(async () => (await get(gw, p)).cache === 'MISS'), 'a MISS once the second is over')
    t.equal(up.hits(p), 2)
    // s-maxage wins over max-age for a shared cache.
    const s = `/s?cc=${cc('max-age=60, s-maxage=0')}`
    await get(gw, s)
    t.equal((await get(gw, s)).cache, 'MISS')
    // The upstream's Age counts against the lifetime, and shows in ours.
    t.equal(up.hits(s), 2)
  })

  t.test('responses that say not to store, or give no lifetime, are not stored', async (t) => {
    for (const q of [`cc=${cc('no-store')}`, `cc=${cc('private, max-age=60')}`, `cc=${cc('no-cache, max-age=60')}`, `cc=${cc('max-age=60')}&cookie=1`, `cc=${cc('max-age=60')}&vary=*`, 'nothing=said', `cc=${cc('max-age=60')}&status=500`, `cc=${cc('max-age=abc')}`]) {
      const p = `/nostore?${q}`
      t.equal((await get(gw, p)).cache, 'MISS', q)
      t.equal((await get(gw, p)).cache, 'MISS', q)
      t.equal(up.hits(p), 2, `${q}: both went upstream`)
    }
    // A cacheable status other than 200.
    const nf = `/gone?cc=${cc('max-age=60')}&status=404`
    await get(gw, nf)
    const again = await get(gw, nf)
    t.equal(again.status, 404)
    t.equal(again.cache, 'HIT')
    // defaultTtl stores what says nothing; it still never stores Set-Cookie.
    t.equal((await get(gw, '/ttl/x')).cache, 'MISS')
    t.equal((await get(gw, '/ttl/x')).cache, 'HIT')
    await get(gw, '/ttl/y?cookie=1')
    t.equal((await get(gw, '/ttl/y?cookie=1')).cache, 'MISS')
  })

  t.test('request Cache-Control: no-store bypasses, no-cache refetches and stores', async (t) => {
    const p = `/req?cc=${cc('max-age=60')}`
    await get(gw, p)
    t.equal((await get(gw, p, { 'cache-control': 'no-store' })).cache, 'BYPASS')
    t.equal(up.hits(p), 2)
    const fresh = await get(gw, p, { 'cache-control': 'no-cache' })
    t.equal(fresh.cache, 'MISS')
    t.equal(fresh.json.n, 3)
    const after = await get(gw, p)
    t.equal(after.cache, 'HIT')
    t.equal(after.json.n, 3, 'the refetched response replaced the entry')
    const only = await get(gw, `/never?cc=${cc('max-age=60')}`, { 'cache-control': 'only-if-cached' })
    t.equal(only.status, 504)
    t.equal(only.json.code, 'CACHE_ONLY_IF_CACHED')
    t.equal(up.hits(`/never?cc=${cc('max-age=60')}`), 0)
  })

  t.test('Vary: one entry per value of the listed request headers', async (t) => {
    const p = `/vary?cc=${cc('max-age=60')}&vary=Accept-Language`
    t.equal((await get(gw, p, { 'accept-language': 'en' })).cache, 'MISS')
    const fr = await get(gw, p, { 'accept-language': 'fr' })
    t.equal(fr.cache, 'MISS')
    t.equal(fr.json.lang, 'fr')
    const en = await get(gw, p, { 'accept-language': 'en' })
    t.equal(en.cache, 'HIT')
    t.equal(en.json.lang, 'en')
    const fr2 = await get(gw, p, { 'accept-language': 'fr' })
    t.equal(fr2.cache, 'HIT')
    t.equal(fr2.json.lang, 'fr')
    const none = await get(gw, p)
    t.equal(none.cache, 'MISS', 'no header is its own variant')
    t.equal(none.json.lang, null)
    t.equal(up.hits(p), 3)
  })

  t.test('authenticated route: one consumer never gets another consumer\'s entry', async (t) => {
    const p = `/auth/x?cc=${cc('max-age=60')}`
    const a1 = await get(gw, p, { apikey: ALICE })
    t.equal(a1.cache, 'MISS')
    t.equal(a1.json.consumer, 'alice')
    const b1 = await get(gw, p, { apikey: BOB })
    t.equal(b1.cache, 'MISS')
    t.equal(b1.json.consumer, 'bob')
    const a2 = await get(gw, p, { apikey: ALICE })
    t.equal(a2.cache, 'HIT')
    t.equal(a2.json.consumer, 'alice')
    const b2 = await get(gw, p, { apikey: BOB })
    t.equal(b2.cache, 'HIT')
    t.equal(b2.json.consumer, 'bob')
    const anon = await get(gw, p)
    t.equal(anon.status, 401, 'policies run before the cache')
    t.equal(up.hits(p), 2)
  })

  t.test('Authorization: stored only when public or s-maxage (RFC 9111 §3.5)', async (t) => {
    const plain = `/bearer/a?cc=${cc('max-age=60')}`
    await get(gw, plain, { authorization: 'Bearer one' })
    t.equal((await get(gw, plain, { authorization: 'Bearer one' })).cache, 'MISS')
    t.equal(up.hits(plain), 2)
    const pub = `/bearer/b?cc=${cc('public, max-age=60')}`
    await get(gw, pub, { authorization: 'Bearer one' })
    t.equal((await get(gw, pub, { authorization: 'Bearer two' })).cache, 'HIT')
    // An entry stored for a request without Authorization is not given to one with it.
    const open = `/bearer/c?cc=${cc('max-age=60')}`
    await get(gw, open)
    t.equal((await get(gw, open)).cache, 'HIT')
    t.equal((await get(gw, open, { authorization: 'Bearer one' })).cache, 'MISS')
  })

  t.test('a hit goes through the route\'s other plugins like a proxied response', async (t) => {
    const p = `/sec/x?cc=${cc('max-age=60')}&server=1`
    const miss = await get(gw, p, { origin: 'https://app.example', 'x-request-id': 'req-1' })
    const hit = await get(gw, p, { origin: 'https://other.example', 'x-request-id': 'req-2' })
    t.equal(miss.cache, 'MISS')
    t.equal(hit.cache, 'HIT')
    for (const r of [miss, hit]) {
      t.equal(r.headers.server, undefined, 'security-headers removed Server')
      t.equal(r.headers['x-content-type-options'], 'nosniff')
      t.match(r.headers.vary, /Origin/, 'cors added Vary: Origin')
    }
    t.equal(miss.headers['access-control-allow-origin'], 'https://app.example')
    t.equal(hit.headers['access-control-allow-origin'], undefined, 'CORS is decided per request, not cached')
    t.equal(hit.headers['x-request-id'], 'req-2', 'the request id is this request\'s')
    t.equal(up.hits(p), 1)
  })

  t.test('the first request\'s client leaves: a waiting request fills the entry', async (t) => {
    const p = `/leave?cc=${cc('max-age=60')}&delay=600`
    const ac = new AbortController()
    const first = request(gw.url + p, { signal: ac.signal }).then(async (r) => await r.body.text(), () => 'aborted')
    await new Promise((resolve) => setTimeout(resolve, 150))
    const second = get(gw, p)
    await new Promise((resolve) => setTimeout(resolve, 100))
    ac.abort()
    t.equal(await first, 'aborted')
    const r = await second
    t.equal(r.status, 200)
    t.equal(r.cache, 'MISS')
    t.equal((await get(gw, p)).cache, 'HIT', 'the waiting request stored its response')
    t.equal(up.hits(p), 2)
  })

  t.test('concurrent misses for one key make one upstream request', async (t) => {
    const p = `/slow?cc=${cc('max-age=60')}&delay=300`
    const all = await Promise.all(Array.from({ length: 20 }, async () => await get(gw, p)))
    t.equal(up.hits(p), 1, '20 concurrent requests, 1 upstream request')
    t.ok(all.every((r) => r.status === 200 && r.json.n === 1))
    t.equal(all.filter((r) => r.cache === 'MISS').length, 1)
    t.equal(all.filter((r) => r.cache === 'HIT').length, 19)
    // Not cacheable: the waiters go upstream themselves once the first answer is known.
    const q = `/slow2?cc=no-store&delay=200`
    const rs = await Promise.all(Array.from({ length: 5 }, async () => await get(gw, q)))
    t.ok(rs.every((r) => r.status === 200 && r.cache === 'MISS'))
    t.equal(up.hits(q), 5)
  })

  t.test('LRU bounded by bytes; an entry over maxEntrySize is not stored', async (t) => {
    // maxBytes 64 KiB: ten 10 KiB responses cannot all stay.
    const paths = Array.from({ length: 10 }, (_, i) => `/small/${i}?cc=${cc('max-age=60')}&size=10000`)
    for (const p of paths) t.equal((await get(gw, p)).cache, 'MISS')
    const last = await get(gw, paths[9] as string)
    t.equal(last.cache, 'HIT', 'the newest is kept')
    const first = await get(gw, paths[0] as string)
    t.equal(first.cache, 'MISS', 'the oldest was evicted')
    t.equal(up.hits(paths[0] as string), 2)
    const big = `/small/big?cc=${cc('max-age=60')}&size=20000`
    const b1 = await get(gw, big)
    const b2 = await get(gw, big)
    t.equal(b2.cache, 'MISS')
    t.equal(b2.text.length, b1.text.length, 'the body is intact')
    t.equal(up.hits(big), 2)
  })
})

t.test('two workers: purge through the admin API reaches both; an unchanged policy keeps the cache', async (t) => {
  const up = await upstream(t)
  const route = (config: Json, extra: Json[] = []): Json[] => [
    { name: 'c', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'proxy-cache', config }] },
    ...extra
  ]
  const base = { listen: { host: '127.0.0.1', port: 0 }, workers: 2, logLevel: 'warn', admin: { port: 0 } }
  const gw = await startGateway(t, { config: { ...base, routes: route({ maxEntries: 100 }) } })
  const p = `/p/1?cc=${cc('max-age=600')}`
  // New connections until both workers have the entry (the kernel spreads connections).
  t.ok(await until(async () => { await get(gw, p, {}, 'GET', true); return up.hits(p) === 2 }, 20_000), 'both workers filled')
  await get(gw, `/other?cc=${cc('max-age=600')}`, {}, 'GET', true)

  t.equal((await admin(gw, 'DELETE', '/cache?key=/p/1&prefix=/p')).status, 400)
  t.equal((await admin(gw, 'DELETE', '/cache?path=/p')).status, 400)
  const purged = await admin(gw, 'DELETE', '/cache?prefix=/p/')
  t.equal(purged.status, 200)
  t.same(purged.body, { workers: 2, entries: 2 })
  // Every answer after the purge is new: no worker kept the old one.
  for (let i = 0; i < 20; i++) {
    const r = await get(gw, p, {}, 'GET', true)
    t.ok((r.json.n as number) > 2, `answer ${i} is not a purged one (n=${String(r.json.n)})`)
  }
  const hitsAfter = up.hits(p)
  t.ok(hitsAfter >= 3 && hitsAfter <= 4, 'refilled once per worker that was asked')
  t.equal((await get(gw, p)).cache, 'HIT')

  // An update that leaves the plugin's config alone keeps the entries.
  const put = await admin(gw, 'PUT', '/config', { ...base, routes: route({ maxEntries: 100 }, [{ name: 'x', match: { path: '/x' }, upstream: up.url }]) })
  t.equal(put.status, 200)
  const kept = await get(gw, p)
  t.equal(kept.cache, 'HIT', 'unchanged config: same cache')
  t.equal(up.hits(p), hitsAfter)
  // A changed config starts empty.
  t.equal((await admin(gw, 'PUT', '/config', { ...base, routes: route({ maxEntries: 200 }) })).status, 200)
  t.equal((await get(gw, p)).cache, 'MISS', 'changed config: a new cache')

  const all = await admin(gw, 'DELETE', '/cache')
  t.equal(all.status, 200)
  t.equal(all.body.workers, 2)
})

import t from 'tap'
import { parseCacheControl, requestRules, storability, varyNames } from '../../plugins/proxy-cache/cache-control.js'
import { DEFAULT_STATUSES } from '../../plugins/proxy-cache/schema.js'

const limits = { statuses: new Set<number>(DEFAULT_STATUSES), defaultTtlMs: 0, maxTtlMs: 3_600_000, maxEntrySize: 1000 }
const NOW = Date.parse('2026-01-01T00:00:00Z')

t.test('Cache-Control parsing', async (t) => {
  const cases: Array<[string, Record<string, string | true> | undefined]> = [
    ['max-age=60', { 'max-age': '60' }],
    ['Public, MAX-AGE=60', { public: true, 'max-age': '60' }],
    ['no-cache="Set-Cookie, X-A", max-age=5', { 'no-cache': 'Set-Cookie, X-A', 'max-age': '5' }],
    ['max-age=60,,  s-maxage=10 ,', { 'max-age': '60', 's-maxage': '10' }],
    ['max-age=60, max-age=60', { 'max-age': '60' }],
    ['max-age=60, max-age=10', undefined],
    ['max-age=60; public', undefined],
    ['max-age="60', undefined],
    ['', {}]
  ]
  for (const [text, want] of cases) {
    const got = parseCacheControl(text)
    t.same(got === undefined ? undefined : Object.fromEntries(got), want, JSON.stringify(text))
  }
})

t.test('what may be stored, and for how long', async (t) => {
  const cases: Array<[number, Record<string, string>, false | number]> = [
    [200, { 'cache-control': 'max-age=60' }, 60_000],
    [200, { 'cache-control': 'max-age=60, s-maxage=5' }, 5_000],
    [200, { 'cache-control': 'max-age=60', age: '20' }, 40_000],
    [200, { 'cache-control': 'max-age=60', age: '60' }, false],
    [200, { 'cache-control': 'max-age=0' }, false],
    [200, { 'cache-control': 'max-age=99999999' }, 3_600_000],
    [200, { 'cache-control': 'max-age=x' }, false],
    [200, { 'cache-control': 'no-store, max-age=60' }, false],
    [200, { 'cache-control': 'private, max-age=60' }, false],
    [200, { 'cache-control': 'private="x", max-age=60' }, false],
    [200, { 'cache-control': 'no-cache, max-age=60' }, false],
    [200, { 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }, false],
    [200, { 'cache-control': 'max-age=60', vary: 'Accept, *' }, false],
    [200, { 'cache-control': 'max-age=60', 'content-length': '1001' }, false],
    [200, {}, false],
    [200, { expires: 'Thu, 01 Jan 2026 00:01:00 GMT', date: 'Thu, 01 Jan 2026 00:00:00 GMT' }, 60_000],
    [200, { expires: '0' }, false],
    [206, { 'cache-control': 'max-age=60' }, false],
    [500, { 'cache-control': 'max-age=60' }, false],
    [404, { 'cache-control': 'max-age=60' }, 60_000],
    [301, { 'cache-control': 'max-age=60' }, 60_000]
  ]
  for (const [status, headers, want] of cases) {
    const s = storability(status, headers, limits, NOW)
    t.equal(s.store ? s.ttlMs : false, want, `${status} ${JSON.stringify(headers)}`)
  }
  const d = storability(200, {}, { ...limits, defaultTtlMs: 30_000 }, NOW)
  t.equal(d.store && d.ttlMs, 30_000, 'defaultTtl for a response that says nothing')
  const pub = storability(200, { 'cache-control': 'public, max-age=60' }, limits, NOW)
  t.equal(pub.store && pub.authOk, true)
  const mr = storability(200, { 'cache-control': 'must-revalidate, max-age=60' }, limits, NOW)
  t.equal(mr.store && mr.authOk, false, 'must-revalidate does not make an authorized response shareable here')
})

t.test('Vary names and request rules', async (t) => {
  t.same(varyNames('Accept-Language, accept, ACCEPT'), ['accept', 'accept-language'])
  t.same(varyNames(undefined), [])
  t.same(varyNames('*'), ['*'])
  t.match(requestRules({ 'cache-control': 'no-store' }), { noStore: true })
  t.match(requestRules({ 'cache-control': 'no-cache' }), { noCache: true })
  t.match(requestRules({ 'cache-control': 'max-age=0' }), { noCache: true })
  t.match(requestRules({ 'cache-control': 'max-age=30' }), { noCache: false, maxAge: 30 })
  t.match(requestRules({ pragma: 'no-cache' }), { noCache: true })
  t.match(requestRules({ pragma: 'no-cache', 'cache-control': 'max-age=10' }), { noCache: false })
  t.match(requestRules({ 'cache-control': 'only-if-cached' }), { onlyIfCached: true })
})

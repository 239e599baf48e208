// The strict-mode script on a real redis-server: each algorithm's semantics, all-or-nothing
// counting across limits, and Redis time.
import { Redis } from 'ioredis'
import t from 'tap'
import { STRICT_LIMIT, STRICT_LIMIT_BATCH } from '../../src/cluster/scripts.js'
import { startRedis } from './redis.js'

t.test('STRICT_LIMIT', async (t) => {
  const redis = await startRedis(t)
  const r = new Redis(redis.url)
  t.teardown(() => { r.disconnect() })
  const run = async (keys: string[], argv: number[]): Promise<number[]> => await r.eval(STRICT_LIMIT, keys.length, ...keys, ...argv) as number[]

  // fixed window: 3 per hour
  const fixed = [1, 3, 3_600_000, 3]
  t.same((await run(['f'], fixed)).slice(0, 2), [1, 2])
  t.same((await run(['f'], fixed)).slice(0, 2), [1, 1])
  t.same((await run(['f'], fixed)).slice(0, 2), [1, 0])
  const rf = await run(['f'], fixed)
  t.equal(rf[0], 0, 'the 4th is rejected')
  t.equal(rf[1], 1, 'by limit 1')
  t.ok((rf[2] as number) > 0 && (rf[2] as number) <= 3_600_000, 'retry after: the window end')
  t.equal(rf[3], rf[2], 'reset = retry for a fixed window')
  t.ok(await r.pttl('f') > 0, 'the key expires')

  // sliding window: 2 per hour
  const sliding = [2, 2, 3_600_000, 2]
  t.equal((await run(['s'], sliding))[0], 1)
  t.equal((await run(['s'], sliding))[0], 1)
  t.equal((await run(['s'], sliding))[0], 0)

  // gcra: 10 per 100 s, burst 2: two at once, the third waits up to one interval (10 s)
  const gcra = [3, 10, 100_000, 2]
  t.same((await run(['g'], gcra)).slice(0, 2), [1, 1])
  t.same((await run(['g'], gcra)).slice(0, 2), [1, 0])
  const rg = await run(['g'], gcra)
  t.equal(rg[0], 0)
  t.ok((rg[2] as number) >= 1 && (rg[2] as number) <= 10_000, `retry ${rg[2]} ms: at most one interval`)

  // Two limits: the second rejects, the first is not counted (a rejected request consumes nothing).
  const both = [1, 10, 3_600_000, 10, 1, 1, 3_600_000, 1]
  t.equal((await run(['a1', 'b1'], both))[0], 1)
  const rb = await run(['a1', 'b1'], both)
  t.same(rb.slice(0, 2), [0, 2], 'rejected by limit 2')
  t.equal(await r.hget('a1', 'c'), '1', 'limit 1 still counts one request')
})

t.test('STRICT_LIMIT_BATCH decides each request as STRICT_LIMIT would, in order', async (t) => {
  const redis = await startRedis(t)
  const r = new Redis(redis.url)
  t.teardown(() => { r.disconnect() })
  // Requests: [keys, argv]; the batch is KEYS = all keys, ARGV = per request n then its argv.
  const batch = async (reqs: Array<[string[], number[]]>): Promise<number[][]> => {
    const keys = reqs.flatMap(([k]) => k)
    const argv = reqs.flatMap(([k, a]) => [k.length, ...a])
    return await r.eval(STRICT_LIMIT_BATCH, keys.length, ...keys, ...argv) as number[][]
  }
  const fixed3 = [1, 3, 3_600_000, 3]
  const two = [1, 10, 3_600_000, 10, 1, 2, 3_600_000, 2]
  const out = await batch([
    [['bf'], fixed3], [['bf'], fixed3],
    // Two limits on other keys, in between: the second limit (2) rejects the third request.
    [['ba', 'bb'], two], [['ba', 'bb'], two], [['ba', 'bb'], two],
    [['bf'], fixed3], [['bf'], fixed3]
  ])
  t.equal(out.length, 7, 'one reply per request')
  t.same(out.map((x) => x[0]), [1, 1, 1, 1, 0, 1, 0], 'admitted in order until each limit is reached')
  t.same(out.map((x) => x.slice(0, 2)).filter((x) => x[0] === 1).slice(0, 2), [[1, 2], [1, 1]], 'remaining counts down within the batch')
  t.same((out[4] as number[]).slice(0, 2), [0, 2], 'the rejected two-limit request: by limit 2')
  t.equal(await r.hget('ba', 'c'), '2', 'and limit 1 did not count it')
  t.equal(await r.hget('bf', 'c'), '3', 'the fixed window counted 3 of 4')
  // The same as separate STRICT_LIMIT runs from here on: both see the same counters.
  const single = await r.eval(STRICT_LIMIT, 1, 'bf', ...fixed3) as number[]
  t.equal(single[0], 0, 'STRICT_LIMIT agrees: bf is full')
})

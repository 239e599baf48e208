import t from 'tap'
import { createSharedMemory, loadHotPath, setCounterEntries, type HotPath } from '../src/shared-memory.js'
import { RateLimitCounters, newRateLimitResult, type CompiledRule, type RateLimitResult, type RateLimitRule } from '../src/rate-limit/counters.js'
import { halfSipHash64, hashKey, hashPrefix, sipKeyFromSeed, stringWords } from '../src/rate-limit/hash.js'
import { kTestInternals } from '../src/symbols.js'
import {
  COUNTER_ENTRIES, COUNTER_ENTRY_BYTES, COUNTER_KEY_FIELD, COUNTER_PROBE_LIMIT, COUNTER_RECLAIM_GRACE_MS,
  COUNTER_STATE_FIELD, COUNTER_TABLE_OFFSET, HDR_HASH_SEED
} from '../wasm/layout.js'

// A time on a minute boundary (so on 1 s and 1000 ms window boundaries too).
const T0 = 1_700_000_040_000
const TICKS = 2 ** 22
const LOCKED = 2n ** 64n - 1n
const KILLED = 2n ** 64n - 2n

async function setup (): Promise<{ memory: WebAssembly.Memory, hot: HotPath, counters: RateLimitCounters }> {
  const memory = createSharedMemory()
  const hot = await loadHotPath(memory)
  return { memory, hot, counters: new RateLimitCounters(hot) }
}

function words64 (memory: WebAssembly.Memory): BigUint64Array {
  return new BigUint64Array(memory.buffer)
}
const keyAt = (memory: WebAssembly.Memory, slot: number): bigint =>
  Atomics.load(words64(memory), (COUNTER_TABLE_OFFSET + slot * COUNTER_ENTRY_BYTES + COUNTER_KEY_FIELD) / 8)
const stateAt = (memory: WebAssembly.Memory, slot: number): bigint =>
  Atomics.load(words64(memory), (COUNTER_TABLE_OFFSET + slot * COUNTER_ENTRY_BYTES + COUNTER_STATE_FIELD) / 8)
function setSlot (memory: WebAssembly.Memory, slot: number, key: bigint, state: bigint): void {
  Atomics.store(words64(memory), (COUNTER_TABLE_OFFSET + slot * COUNTER_ENTRY_BYTES + COUNTER_KEY_FIELD) / 8, key)
  Atomics.store(words64(memory), (COUNTER_TABLE_OFFSET + slot * COUNTER_ENTRY_BYTES + COUNTER_STATE_FIELD) / 8, state)
}

/** Admitted → remaining; rejected → -retryAfterMs; table full → -Infinity: the WASM code, read back. */
function code (r: RateLimitResult): number {
  return r.tableFull ? -Infinity : r.admitted ? r.remaining : -r.retryAfterMs
}

function hits (counters: RateLimitCounters, rule: CompiledRule, key: string, now: number, n: number): number[] {
  return Array.from({ length: n }, () => code(counters.hit(rule, key, now)))
}

t.test('fixed window: exact counts, window edges, rejections consume nothing', async t => {
  const { counters } = await setup()
  const rule = counters.rule('p', { algorithm: 'fixed-window', limit: 3, windowMs: 1000 })
  const first = counters.hit(rule, 'client', T0 + 500)
  t.same(first, { admitted: true, remaining: 2, retryAfterMs: 0, resetMs: 500, tableFull: false })
  t.same(hits(counters, rule, 'client', T0 + 500, 2), [1, 0])
  t.same(hits(counters, rule, 'client', T0 + 500, 5), [-500, -500, -500, -500, -500], 'retry-after = time to the window end')
  t.same(counters.hit(rule, 'client', T0 + 999.25), { admitted: false, remaining: 0, retryAfterMs: 0.75, resetMs: 0.75, tableFull: false })
  t.same(hits(counters, rule, 'client', T0 + 1000, 4), [2, 1, 0, -1000], 'resets at the boundary; the 5 rejections took nothing')
  t.same(hits(counters, rule, 'client', T0 + 1999, 1), [-1])
  // F3: a fixed window lets 2 x limit through across a boundary, documented.
  const minute = counters.rule('p', { algorithm: 'fixed-window', limit: 100, windowMs: 60_000 })
  const before = hits(counters, minute, 'x', T0 + 59_900, 100).filter(c => c >= 0).length
  const after = hits(counters, minute, 'x', T0 + 60_100, 100).filter(c => c >= 0).length
  t.equal(before + after, 200, '100 at 59.9 s and 100 at 60.1 s: all 200 admitted')
})

t.test('sliding window: the weighted estimate, retry-after to the ms', async t => {
  const { counters } = await setup()
  const rule = counters.rule('p', { algorithm: 'sliding-window', limit: 10, windowMs: 1000 })
  t.same(hits(counters, rule, 'c', T0 + 500, 11), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -501],
    'no previous window: 10 admitted; then wait for the next window, 1 ms in (10 * 999/1000 < 10)')
  t.same(hits(counters, rule, 'c', T0 + 1000, 1), [-1], 'at the boundary the previous 10 weigh fully')
  // 250 ms in: 10 * 0.75 = 7.5 -> 7.5, 8.5, 9.5 admitted, 10.5 not.
  t.same(hits(counters, rule, 'c', T0 + 1250, 4), [2, 1, 0, -51], 'retry: 10 * (1000 - e) / 1000 + 3 < 10 first at e = 301')
  t.same(hits(counters, rule, 'c', T0 + 1300, 1), [-1])
  t.same(hits(counters, rule, 'c', T0 + 1301, 2), [0, -100], '10 * 0.699 + 3 = 9.99 < 10; then 10.99: wait for e = 401')
  t.same(hits(counters, rule, 'c', T0 + 1400, 1), [-1], '10 * 0.6 + 4 = 10: not below the limit')
  t.same(counters.hit(rule, 'c', T0 + 1401), { admitted: true, remaining: 0, retryAfterMs: 0, resetMs: 599, tableFull: false })
  // Two windows later the old counts are gone.
  t.same(hits(counters, rule, 'c', T0 + 3000, 1), [9])
  // F9's adversarial case: the whole previous window at its end, then the estimate lets
  // nearly another limit through within the same rolling second.
  const adv = counters.rule('adv', { algorithm: 'sliding-window', limit: 100, windowMs: 1000 })
  const late = hits(counters, adv, 'x', T0 + 999, 100).filter(c => c >= 0).length
  let early = 0
  for (let ms = 1000; ms < 1999; ms++) early += hits(counters, adv, 'x', T0 + ms, 5).filter(c => c >= 0).length
  t.equal(late, 100)
  t.equal(late + early, 200, 'worst case: 2 x limit within one rolling second (CHECKLIST F9, documented)')
})

t.test('gcra: burst, then the steady rate; retry-after exact', async t => {
  const { counters } = await setup()
  const rule = counters.rule('p', { algorithm: 'gcra', limit: 10, windowMs: 1000, burst: 5 }) // T = 100 ms
  t.same(counters.hit(rule, 'c', T0), { admitted: true, remaining: 4, retryAfterMs: 0, resetMs: 100, tableFull: false })
  t.same(hits(counters, rule, 'c', T0, 5), [3, 2, 1, 0, -100])
  t.same(counters.hit(rule, 'c', T0 + 50), { admitted: false, remaining: 0, retryAfterMs: 50, resetMs: 450, tableFull: false },
    'rejected: retry when the next token comes; reset when the bucket is full')
  t.same(hits(counters, rule, 'c', T0 + 100, 3), [0, -100, -100], 'one token per 100 ms; rejections take none')
  for (let k = 2; k <= 20; k++) t.same(hits(counters, rule, 'c', T0 + 100 * k, 2), [0, -100], `steady: one at ${100 * k} ms`)
  t.same(hits(counters, rule, 'c', T0 + 2000 + 1000, 6), [4, 3, 2, 1, 0, -100], 'idle for 500 ms or more: a full burst again')

  // An interval that is not a whole number of ms: 1000/3 ms, rounded up to a tick.
  const third = counters.rule('p', { algorithm: 'gcra', limit: 3, windowMs: 1000, burst: 1 })
  const T = Math.ceil(1000 * TICKS / 3) / TICKS
  // (Same policy, algorithm and window as `rule`: only the limit differs, so client 'c'
  // would share its counter, by design. Another client.)
  t.same(hits(counters, third, 'd', T0, 2), [0, -T])
  t.same(hits(counters, third, 'd', T0 + 333, 1), [-(T - 333)])
  t.same(hits(counters, third, 'd', T0 + 333.5, 1), [0], 'fractional now counts in gcra')

  // F3: 100/min with burst 100: at most burst + rate x 0.2 s across 59.9 s / 60.1 s.
  const minute = counters.rule('p', { algorithm: 'gcra', limit: 100, windowMs: 60_000, burst: 100 })
  const n = hits(counters, minute, 'x', T0 + 59_900, 100).filter(c => c >= 0).length +
    hits(counters, minute, 'x', T0 + 60_100, 100).filter(c => c >= 0).length
  t.equal(n, 100, '<= 100 + 100 / 60 x 0.2')
})

t.test('keys, policies and rules are independent counters', async t => {
  const { counters } = await setup()
  const a = counters.rule('policy-a', { algorithm: 'fixed-window', limit: 2, windowMs: 1000 })
  const b = counters.rule('policy-b', { algorithm: 'fixed-window', limit: 2, windowMs: 1000 })
  const a2 = counters.rule('policy-a', { algorithm: 'fixed-window', limit: 2, windowMs: 2000 })
  const ag = counters.rule('policy-a', { algorithm: 'gcra', limit: 2, windowMs: 1000 })
  t.same(hits(counters, a, 'k1', T0, 3), [1, 0, -1000])
  t.same(hits(counters, a, 'k2', T0, 3), [1, 0, -1000], 'another key')
  t.same(hits(counters, b, 'k1', T0, 3), [1, 0, -1000], 'another policy')
  t.same(hits(counters, a2, 'k1', T0, 3), [1, 0, -2000], 'another window: a new counter')
  t.same(hits(counters, ag, 'k1', T0, 3), [1, 0, -500], 'another algorithm: a new counter')
  const a5 = counters.rule('policy-a', { algorithm: 'fixed-window', limit: 5, windowMs: 1000 })
  t.same(hits(counters, a5, 'k1', T0, 4), [2, 1, 0, -1000], 'a new limit keeps the count (2 of 5 used)')
  // Keys that differ by one unit, by position, by length, or only above the low byte.
  const keys = ['', 'a', 'b', 'ab', 'ba', 'a\0', '\u0100', '\u0001', '203.0.113.7', '203.0.113.70', '2001:db8::1']
  for (const k of keys) t.same(hits(counters, b, `x${k}`, T0 + 5000, 2), [1, 0], `key ${JSON.stringify(k)}`)
})

t.test('a key whose clock lags: never moves a counter back', async t => {
  const { counters } = await setup()
  const fixed = counters.rule('p', { algorithm: 'fixed-window', limit: 2, windowMs: 1000 })
  t.same(hits(counters, fixed, 'c', T0 + 1500, 1), [1])
  t.same(hits(counters, fixed, 'c', T0 + 500, 1), [0], 'an earlier now counts in the later window already started')
  t.same(hits(counters, fixed, 'c', T0 + 1500, 1), [-500])
  const sliding = counters.rule('p', { algorithm: 'sliding-window', limit: 2, windowMs: 1000 })
  t.same(hits(counters, sliding, 'c', T0 + 1500, 1), [1])
  t.same(hits(counters, sliding, 'c', T0 + 200, 1), [0])
  t.same(hits(counters, sliding, 'c', T0 + 1500, 1), [-501])
  const gcra = counters.rule('p', { algorithm: 'gcra', limit: 1, windowMs: 1000, burst: 1 })
  t.same(hits(counters, gcra, 'c', T0 + 1500, 1), [0])
  t.same(hits(counters, gcra, 'c', T0 + 1000, 1), [-1500], 'TAT stays put: retry from the earlier now')
})

t.test('refund: gives one admitted hit back, never more', async t => {
  const { counters } = await setup()
  const fixed = counters.rule('p', { algorithm: 'fixed-window', limit: 3, windowMs: 1000 })
  t.same(hits(counters, fixed, 'c', T0 + 10, 2), [2, 1])
  t.equal(counters.refund(fixed, 'c', T0 + 10), true)
  t.same(hits(counters, fixed, 'c', T0 + 20, 3), [1, 0, -980], 'the refunded hit is available again')
  t.equal(counters.refund(fixed, 'c', T0 + 1010), false, 'a later window: nothing was counted there')
  t.equal(counters.refund(fixed, 'nobody', T0 + 10), false, 'no counter')
  t.same(hits(counters, fixed, 'c', T0 + 1010, 1), [2])
  t.equal(counters.refund(fixed, 'c', T0 + 1010), true)
  t.equal(counters.refund(fixed, 'c', T0 + 1010), false, 'never below 0')
  t.same(hits(counters, fixed, 'c', T0 + 2500, 1), [2])
  t.same(hits(counters, fixed, 'c', T0 + 1500, 1), [1], 'a lagging now counted in the later window...')
  t.equal(counters.refund(fixed, 'c', T0 + 1500), false, '... is not given back (it cannot tell which window had it)')

  const sliding = counters.rule('p', { algorithm: 'sliding-window', limit: 2, windowMs: 1000 })
  t.same(hits(counters, sliding, 'c', T0 + 10, 2), [1, 0])
  t.equal(counters.refund(sliding, 'c', T0 + 10), true)
  t.same(hits(counters, sliding, 'c', T0 + 10, 2), [0, -991])
  t.same(hits(counters, sliding, 'c', T0 + 1600, 1), [1], '2 * 0.4 + 0 < 2, and 0.8 + 1 < 2 leaves room for one')
  t.equal(counters.refund(sliding, 'c', T0 + 1600), true, 'the hit in the current window')
  t.same(hits(counters, sliding, 'c', T0 + 1600, 3), [1, 0, -401], 'both again; then wait for the next window')

  const gcra = counters.rule('p', { algorithm: 'gcra', limit: 10, windowMs: 1000, burst: 2 }) // T = 100 ms
  t.same(hits(counters, gcra, 'c', T0, 3), [1, 0, -100])
  t.equal(counters.refund(gcra, 'c', T0), true)
  t.same(hits(counters, gcra, 'c', T0, 2), [0, -100], 'one token back')
  t.equal(counters.refund(gcra, 'c', T0), true)
  t.equal(counters.refund(gcra, 'c', T0), true)
  t.equal(counters.refund(gcra, 'c', T0), false, 'the bucket is full: not above burst')
  t.same(hits(counters, gcra, 'c', T0, 3), [1, 0, -100])

  // Two limits on one request: the tighter one rejects, the looser one gets its hit back.
  const loose = counters.rule('q', { algorithm: 'fixed-window', limit: 5, windowMs: 1000 })
  const tight = counters.rule('q', { algorithm: 'gcra', limit: 1, windowMs: 1000, burst: 1 })
  let both = 0
  for (let i = 0; i < 4; i++) {
    if (!counters.hit(loose, 'k', T0).admitted) continue
    if (counters.hit(tight, 'k', T0).admitted) both++
    else counters.refund(loose, 'k', T0)
  }
  t.equal(both, 1)
  t.same(hits(counters, loose, 'k', T0, 1), [3], 'the loose limit counted only the request both admitted')
})

t.test('table full, and expired entries reused for other keys', async t => {
  const { memory, hot, counters } = await setup()
  const home = 4000
  const P = COUNTER_PROBE_LIMIT
  // Keys aimed at one home slot: the same low word, different high words.
  const hit = (hi: number, now: number): number => hot.rateLimitFixedWindow(home, hi, now, 1000, 2)
  for (let hi = 1; hi <= P; hi++) t.equal(hit(hi, T0 + 100), 1, `key ${hi} gets a slot`)
  for (let i = 0; i < P; i++) t.equal(keyAt(memory, home + i), (BigInt(i + 1) << 32n) | BigInt(home), `slot ${home + i} holds key ${i + 1}`)
  t.equal(hit(P + 1, T0 + 100), -Infinity, 'probe range full of live counters: the distinct table-full code')
  t.equal(hit(1, T0 + 100), 0, 'a key with a slot still counts')
  t.equal(keyAt(memory, home + P), 0n, 'nothing written past the probe range')

  // Expired (window ended at T0 + 1000) but within the reclaim grace: not yet reusable.
  t.equal(hit(P + 1, T0 + 1000 + COUNTER_RECLAIM_GRACE_MS), -Infinity)
  t.equal(hit(2, T0 + 1000 + COUNTER_RECLAIM_GRACE_MS), 1, 'its own key still finds it, as a new window (to T0 + 3000)')
  const later = T0 + 3001 + COUNTER_RECLAIM_GRACE_MS
  t.equal(hit(P + 1, later), 1, 'once the grace has passed, a new key takes an expired slot')
  t.equal(keyAt(memory, home), (BigInt(P + 1) << 32n) | BigInt(home), '... the first one in the probe range')
  for (let hi = P + 2; hi < 2 * P + 1; hi++) t.equal(hit(hi, later), 1)
  t.same(Array.from({ length: P }, (_, i) => keyAt(memory, home + i) >> 32n),
    [BigInt(P + 1), ...Array.from({ length: P - 1 }, (_, i) => BigInt(P + 2 + i))], 'every expired slot reused in order')
  t.equal(hit(1, later), -Infinity, 'an old key whose slot was taken finds no room now')
  t.equal(hit(P + 1, later), 0, 'the new keys count on')

  // The probe range wraps around the end of the table.
  const last = COUNTER_ENTRIES - 1
  t.equal(hot.rateLimitGcra(last, 1, T0, 100 * TICKS, 1), 0)
  t.equal(hot.rateLimitGcra(last, 2, T0, 100 * TICKS, 1), 0)
  t.equal(keyAt(memory, 0), (2n << 32n) | BigInt(last), 'wrapped to slot 0')

  // Through RateLimitCounters: whenFull decides; the metric counts either way.
  const deny = counters.rule('p', { algorithm: 'fixed-window', limit: 2, windowMs: 1000 })
  const allow = counters.rule('p', { algorithm: 'fixed-window', limit: 2, windowMs: 1000, whenFull: 'allow' })
  const internals = counters[kTestInternals]
  t.same(internals.hitHashed(deny, home, 99, later), { admitted: false, remaining: 0, retryAfterMs: 1000, resetMs: 1000, tableFull: true })
  t.same(internals.hitHashed(allow, home, 99, later), { admitted: true, remaining: 0, retryAfterMs: 0, resetMs: 0, tableFull: true })
  t.equal(counters.tableFullCount, 2)
})

t.test('sliding window: two sub-counters, neighbours in the table', async t => {
  const { memory, hot } = await setup()
  const home = 6000 // even: the two parities' homes are 6000 and 6001
  const w0 = (T0 + 10 - ((T0 + 10) % 1000)) / 1000 // even
  const key = (7n << 32n) | BigInt(home)
  t.equal(hot.rateLimitSlidingWindow(home, 7, T0 + 10, 1000, 5), 4)
  t.same([keyAt(memory, home), keyAt(memory, home + 1)], [key, 0n], 'an even window counts under key ^ 0')
  t.equal(stateAt(memory, home), (BigInt((w0 + 2) * 1000) << 22n) | 1n, 'expires when the window after it ends')
  // 10 ms into the next window: 1 * 0.99 + 0 < 5; then 5000 - 990 - 1000 leaves room for 4 more.
  t.equal(hot.rateLimitSlidingWindow(home, 7, T0 + 1010, 1000, 5), 4)
  t.equal(keyAt(memory, home + 1), key ^ 1n, 'an odd window counts under key ^ 1, next door')
  t.equal(hot.rateLimitSlidingWindow(home, 7, T0 + 2010, 1000, 5), 4, 'window w0 + 2 reuses the even sub-counter')
  t.equal(stateAt(memory, home), (BigInt((w0 + 4) * 1000) << 22n) | 1n)
})

t.test('a claim left LOCKED (stalled or dead thread) is cancelled, not waited on forever', async t => {
  const { memory, hot } = await setup()
  const home = 8000
  const key = (5n << 32n) | BigInt(home)
  setSlot(memory, home, key, LOCKED) // its claimer stopped between claiming and publishing
  t.equal(hot.rateLimitFixedWindow(home, 5, T0, 1000, 3), 2, 'the hit goes on')
  t.equal(stateAt(memory, home), KILLED, 'the stuck claim is cancelled')
  t.equal(keyAt(memory, home + 1), key, 'the key counts in the next slot')
  t.equal(hot.rateLimitFixedWindow(home, 5, T0, 1000, 3), 1, 'and keeps counting there')
  t.equal(hot.rateLimitFixedWindow(home, 6, T0 + 10 * 60_000, 1000, 3), 2, 'another key skips the KILLED slot')
  t.equal(stateAt(memory, home), KILLED, 'which nobody claims')

  // A claimer stopped before storing its key: (0, LOCKED). Lookups must not stop there.
  const home2 = 9000
  t.equal(hot.rateLimitFixedWindow(home2, 1, T0, 1000, 3), 2)
  t.equal(hot.rateLimitFixedWindow(home2, 2, T0, 1000, 3), 2)
  setSlot(memory, home2, 0n, LOCKED)
  t.equal(hot.rateLimitFixedWindow(home2, 2, T0, 1000, 3), 1, 'key 2, past the stuck empty slot, is still found')
  t.equal(keyAt(memory, home2 + 2), 0n, 'and not inserted again')
})

t.test('hash: HalfSipHash vectors, and the fast path agrees with the plain one', async t => {
  // The reference C code's vectors (HalfSipHash-2-4, 64-bit tag; key 00..07, input 00..len-1).
  const vectors = ['218d1f59b9b83cc8', 'be552412f8387315', '064f39ef7c50eb57', 'ce0f1a45f7060679',
    'd5e78a175be52ea1', 'cb9d7c3f2f3db580', 'ce3e91358aa2bc25', 'ff202728b07bc684', 'edfee820bce4858c']
  const k0 = 0x03020100
  const k1 = 0x07060504
  vectors.forEach((hex, len) => {
    const [lo, hi] = halfSipHash64(Uint8Array.from({ length: len }, (_, i) => i), k0, k1, 2, 4)
    const bytes = Buffer.alloc(8)
    bytes.writeUInt32LE(lo, 0)
    bytes.writeUInt32LE(hi, 4)
    t.equal(bytes.toString('hex'), hex, `vector ${len}`)
  })

  const out = new Uint32Array(2)
  const [s0, s1] = sipKeyFromSeed(0xdeadbeef)
  const cases: Array<[string, string]> = [['', ''], ['p', 'k'], ['policy', ''], ['policy-id', '203.0.113.7'],
    ['π', 'clé-Ω'], ['odd', 'even'], ['x'.repeat(300), 'y'.repeat(301)]]
  for (const [policy, key] of cases) {
    const words = [...stringWords(policy), 3, 60_000]
    hashKey(hashPrefix(s0, s1, words), key, out)
    const message = Buffer.concat([Buffer.from(Uint32Array.from(words).buffer), Buffer.from(key, 'utf16le')])
    t.same([out[0], out[1]], halfSipHash64(message, s0, s1, 1, 3), `(${policy.slice(0, 10)}, ${key.slice(0, 10)})`)
  }
})

t.test('hash seed: shared by the memory, differs between memories', async t => {
  const { memory, hot, counters } = await setup()
  const seed = new Uint32Array(memory.buffer)[HDR_HASH_SEED / 4]!
  t.not(seed, 0, 'the first RateLimitCounters sets a seed')
  const again = new RateLimitCounters(hot)
  t.equal(new Uint32Array(memory.buffer)[HDR_HASH_SEED / 4], seed, 'a second one keeps it')
  const rule = (c: RateLimitCounters): CompiledRule => c.rule('p', { algorithm: 'fixed-window', limit: 3, windowMs: 1000 })
  t.same([code(counters.hit(rule(counters), 'k', T0)), code(again.hit(rule(again), 'k', T0))], [2, 1], 'both hash to the same counter')
  const other = await setup()
  t.not(new Uint32Array(other.memory.buffer)[HDR_HASH_SEED / 4], seed, 'another memory, another seed (fails 1 time in 2^32)')
})

t.test('rule checks', async t => {
  const { counters } = await setup()
  const bad: Array<[RateLimitRule, RegExp]> = [
    [{ algorithm: 'leaky' as 'gcra', limit: 1, windowMs: 1 }, /algorithm must be one of fixed-window, sliding-window, gcra/],
    [{ algorithm: 'fixed-window', limit: 0, windowMs: 1000 }, /limit must be an integer from 1 to 4194303, got 0/],
    [{ algorithm: 'sliding-window', limit: 2 ** 22, windowMs: 1000 }, /limit must be an integer from 1 to 4194303/],
    [{ algorithm: 'fixed-window', limit: 1.5, windowMs: 1000 }, /limit must be an integer/],
    [{ algorithm: 'fixed-window', limit: 1, windowMs: 0 }, /windowMs must be an integer from 1 to 4294967295/],
    [{ algorithm: 'fixed-window', limit: 1, windowMs: 2 ** 32 }, /windowMs must be an integer/],
    [{ algorithm: 'fixed-window', limit: 1, windowMs: 1000, burst: 2 }, /burst applies to gcra only/],
    [{ algorithm: 'gcra', limit: 1, windowMs: 1000, burst: 0 }, /burst must be an integer from 1/],
    [{ algorithm: 'gcra', limit: 1, windowMs: 2 ** 32 - 1, burst: 2 ** 32 - 1 }, /and burst times it at most 2\^38 ms/],
    [{ algorithm: 'fixed-window', limit: 1, windowMs: 1, whenFull: 'maybe' as 'deny' }, /whenFull must be 'deny' or 'allow'/]
  ]
  for (const [rule, message] of bad) t.throws(() => counters.rule('p', rule), message)
  const gcra = counters.rule('p', { algorithm: 'gcra', limit: 7, windowMs: 1000 })
  t.match(gcra, { burst: 7, whenFull: 'deny' }, 'burst defaults to limit')
  t.ok(Object.isFrozen(gcra))
  t.equal(counters.rule('p', { algorithm: 'gcra', limit: 1, windowMs: 2 ** 31 }).burst, 1, 'the longest interval is fine')
  t.throws(() => counters.rule('p', { algorithm: 'gcra', limit: 1, windowMs: 2 ** 31 + 1 }), /interval windowMs \/ limit must be at most 2\^31 ms/)
  t.throws(() => counters.hit(gcra, 'k', -1), /now must be ms from 0 to 4e12/)
  t.throws(() => counters.hit(gcra, 'k', Number.NaN), /now must be ms from 0 to 4e12/)
  const out = newRateLimitResult()
  t.equal(counters.hit(gcra, 'k', T0, out), out, 'fills the object it is given')
})

// ---------------------------------------------------------------------------------------
// Differential test against a plain-JS model written from the definitions: per-window
// counts in Maps, the GCRA TAT as a BigInt, and retry-after / remaining found by searching
// forward rather than by the closed forms the WASM uses.

interface Model { hit(key: string, now: number): number }

function fixedModel (limit: number, W: number): Model {
  const state = new Map<string, { w: number, c: number }>()
  return {
    hit (key, now) {
      const w = Math.floor(Math.floor(now) / W)
      let s = state.get(key)
      if (s === undefined || s.w !== w) state.set(key, s = { w, c: 0 })
      if (s.c >= limit) return -((w + 1) * W - now)
      s.c++
      return limit - s.c
    }
  }
}

function slidingModel (limit: number, W: number): Model {
  const counts = new Map<string, number>() // `${key} ${window}` -> count
  const admits = (prev: number, cur: number, e: number): boolean => prev * (W - e) / W + cur < limit
  return {
    hit (key, now) {
      const n = Math.floor(now)
      const w = Math.floor(n / W)
      const cur = counts.get(`${key} ${w}`) ?? 0
      const prev = counts.get(`${key} ${w - 1}`) ?? 0
      if (admits(prev, cur, n - w * W)) {
        counts.set(`${key} ${w}`, cur + 1)
        let more = 0
        while (admits(prev, cur + 1 + more, n - w * W)) more++
        return more
      }
      for (let at = n + 1; ; at++) {
        const wa = Math.floor(at / W)
        const [p, c] = wa === w ? [prev, cur] : wa === w + 1 ? [cur, 0] : [0, 0]
        if (admits(p, c, at - wa * W)) return -(at - now)
      }
    }
  }
}

function gcraModel (limit: number, W: number, burst: number): Model {
  const T = (BigInt(W) * BigInt(TICKS) + BigInt(limit) - 1n) / BigInt(limit)
  const tau = T * BigInt(burst)
  const tats = new Map<string, bigint>()
  return {
    hit (key, now) {
      const ms = Math.floor(now)
      const nowT = (BigInt(ms) << 22n) | BigInt(Math.floor((now - ms) * TICKS))
      const tat = tats.get(key) ?? 0n
      const next = (tat > nowT ? tat : nowT) + T
      if (next - nowT > tau) return -(Number(next - tau - nowT) / TICKS)
      tats.set(key, next)
      let more = 0
      while (next + BigInt(more + 1) * T - nowT <= tau) more++
      return more
    }
  }
}

function mulberry32 (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

t.test('differential: random single-threaded sequences match the model', async t => {
  const { counters } = await setup()
  const rules: Array<[RateLimitRule, Model]> = [
    [{ algorithm: 'fixed-window', limit: 5, windowMs: 1000 }, fixedModel(5, 1000)],
    [{ algorithm: 'fixed-window', limit: 3, windowMs: 7 }, fixedModel(3, 7)],
    [{ algorithm: 'fixed-window', limit: 1, windowMs: 1 }, fixedModel(1, 1)],
    [{ algorithm: 'sliding-window', limit: 5, windowMs: 1000 }, slidingModel(5, 1000)],
    [{ algorithm: 'sliding-window', limit: 4, windowMs: 10 }, slidingModel(4, 10)],
    [{ algorithm: 'sliding-window', limit: 13, windowMs: 333 }, slidingModel(13, 333)],
    [{ algorithm: 'sliding-window', limit: 2, windowMs: 1 }, slidingModel(2, 1)],
    [{ algorithm: 'gcra', limit: 5, windowMs: 1000, burst: 3 }, gcraModel(5, 1000, 3)],
    [{ algorithm: 'gcra', limit: 3, windowMs: 10, burst: 1 }, gcraModel(3, 10, 1)],
    [{ algorithm: 'gcra', limit: 7, windowMs: 1000, burst: 7 }, gcraModel(7, 1000, 7)],
    [{ algorithm: 'gcra', limit: 1000, windowMs: 3, burst: 20 }, gcraModel(1000, 3, 20)]
  ]
  const compiled = rules.map(([rule], i) => counters.rule(`policy-${i}`, rule))
  const keys = ['a', 'b', 'c', '198.51.100.23', '']
  for (const seed of [1, 2, 3]) {
    const random = mulberry32(seed)
    let now = T0 + Math.floor(random() * 100_000) + seed * 10_000_000
    const mismatches: string[] = []
    let admitted = 0
    let rejected = 0
    for (let step = 0; step < 20_000; step++) {
      const r = random()
      now += r < 0.5 ? 0 : r < 0.7 ? 1 : r < 0.85 ? Math.floor(random() * 50) : r < 0.95 ? Math.floor(random() * 1500) : r < 0.98 ? 0.25 : 5000
      const i = Math.floor(random() * rules.length)
      const key = keys[Math.floor(random() * keys.length)]!
      const want = rules[i]![1].hit(key, now)
      const got = code(counters.hit(compiled[i]!, key, now))
      if (got !== want) mismatches.push(`step ${step}: ${compiled[i]!.algorithm} #${i} key ${key} now ${now}: got ${got}, want ${want}`)
      if (want >= 0) admitted++
      else rejected++
    }
    t.same(mismatches.slice(0, 5), [], `seed ${seed}: 20,000 hits, ${admitted} admitted, ${rejected} rejected, no mismatch`)
  }
})

t.test('a smaller configured table: keys stay inside the first `entries` slots', async (t) => {
  const memory = createSharedMemory()
  setCounterEntries(memory, 1024)
  const hot = await loadHotPath(memory)
  const counters = new RateLimitCounters(hot)
  const rule = counters.rule('small-table', { algorithm: 'fixed-window', limit: 1, windowMs: 3_600_000 })
  const now = Date.now()
  for (let i = 0; i < 500; i++) t.equal(counters.hit(rule, `k${i}`, now).admitted, true)
  const view = new BigUint64Array(memory.buffer)
  let used = 0
  let outside = 0
  for (let slot = 0; slot < COUNTER_ENTRIES; slot++) {
    const key = view[(COUNTER_TABLE_OFFSET + slot * COUNTER_ENTRY_BYTES + COUNTER_KEY_FIELD) / 8]
    if (key !== 0n) { used++; if (slot >= 1024) outside++ }
  }
  t.equal(used, 500, 'one slot per key')
  t.equal(outside, 0, 'none past the configured size')
  t.throws(() => setCounterEntries(memory, 1000), RangeError, 'not a power of two')
  t.throws(() => setCounterEntries(memory, COUNTER_ENTRIES * 2), RangeError, 'larger than the region')
})

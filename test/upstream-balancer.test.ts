// The balancers and the shared upstream state, in-process: exact shares, the power of two
// choices, ring stickiness and bounded movement, skipping what is down, passive ejection with
// its cap and half-open return. Real threads share the same state in upstream-*.test.ts.
import t from 'tap'
import { ConsistentHash, LeastRequest, RoundRobin } from '../src/upstream/balancer.js'
import { HashRing, hashString } from '../src/upstream/hash-ring.js'
import { upstreamSpec } from '../src/upstream/spec.js'
import { createSharedUpstream, H_FIELDS, T_UNTIL, UpstreamState } from '../src/upstream/state.js'
import type { RequestContext } from '../src/types.js'

function stateFor (n: number, passive: Record<string, unknown> = {}): UpstreamState {
  const spec = upstreamSpec({ targets: Array.from({ length: n }, (_, i) => `http://127.0.0.1:${1000 + i}`), passive: passive as never })
  return new UpstreamState(createSharedUpstream(n), spec.passive, spec.breaker, spec.retries)
}

const ctxWith = (ip: string): RequestContext => ({ client: { ip }, headers: {} } as unknown as RequestContext)
const anyCtx = ctxWith('192.0.2.1')

t.test('round-robin: exact shares by weight, smoothly interleaved', async (t) => {
  const rr = new RoundRobin([5, 1, 1], stateFor(3))
  const seq = Array.from({ length: 7 }, () => rr.pick(anyCtx, undefined).index)
  t.same(seq, [0, 0, 1, 0, 2, 0, 0], "nginx's smooth order for 5,1,1")
  const rr2 = new RoundRobin([3, 1], stateFor(2))
  const counts = [0, 0]
  for (let i = 0; i < 1000; i++) counts[rr2.pick(anyCtx, undefined).index]!++
  t.same(counts, [750, 250], '1,000 picks at 3:1 are exactly 750/250')
})

t.test('round-robin skips targets that are down and targets already tried', async (t) => {
  const state = stateFor(3)
  const rr = new RoundRobin([1, 1, 1], state)
  state.setHealthy(1, false)
  const seen = new Set<number>()
  for (let i = 0; i < 30; i++) seen.add(rr.pick(anyCtx, undefined).index)
  t.same([...seen].sort(), [0, 2], 'an unhealthy target is never picked')
  t.equal(rr.pick(anyCtx, new Set([0])).index, 2, 'a retry goes to a target not tried yet')
  t.not(rr.pick(anyCtx, new Set([0, 2])).index, -1, 'when every usable target was tried, one of them is used again')
  state.setHealthy(0, false)
  state.setHealthy(2, false)
  t.equal(rr.pick(anyCtx, undefined).index, -1, 'nothing usable: -1')
})

t.test('least-request: the power of two choices favours the target with fewer in flight', async (t) => {
  const state = stateFor(2)
  const lr = new LeastRequest([1, 1], state)
  // Target 0 has 5 requests in flight (a slow target), target 1 none.
  for (let i = 0; i < 5; i++) state.begin(0)
  const counts = [0, 0]
  for (let i = 0; i < 1000; i++) counts[lr.pick(anyCtx, undefined).index]!++
  // With two targets both choices are distinct whenever a second one is drawn: the less
  // loaded one wins nearly always; only a draw of the same target twice in 8 tries picks 0.
  t.ok(counts[1]! > 950, `the idle target wins (${counts.join('/')})`)
  for (let i = 0; i < 5; i++) state.end(0, false, true)
  const even = [0, 0]
  for (let i = 0; i < 1000; i++) even[lr.pick(anyCtx, undefined).index]!++
  t.ok(even[0]! > 350 && even[1]! > 350, `equal load: both are used (${even.join('/')})`)
})

t.test('consistent hash: sticky, balanced, and bounded movement', async (t) => {
  const urls = ['http://127.0.0.1:1001', 'http://127.0.0.1:1002', 'http://127.0.0.1:1003', 'http://127.0.0.1:1004']
  const ring4 = new HashRing(urls, [1, 1, 1, 1])
  const keys = Array.from({ length: 10_000 }, (_, i) => `client-${i}`)
  const owner4 = keys.map((k) => urls[ring4.owner(hashString(k))])
  const share = new Map<string, number>()
  for (const o of owner4) share.set(o as string, (share.get(o as string) ?? 0) + 1)
  for (const [u, n] of share) t.ok(n > 2000 && n < 3000, `${u} holds ${n} of 10,000 keys (25% +- 5)`)

  // Remove one target: only its keys move.
  const urls3 = urls.slice(0, 3)
  const ring3 = new HashRing(urls3, [1, 1, 1])
  let moved = 0
  let wrong = 0
  keys.forEach((k, i) => {
    const now = urls3[ring3.owner(hashString(k))]
    if (now !== owner4[i]) {
      moved++
      if (owner4[i] !== urls[3]) wrong++
    }
  })
  t.equal(wrong, 0, 'no key of a remaining target moved')
  t.ok(moved < 3000, `only the removed target's keys moved (${moved})`)

  // Add a fifth: keys move only to it, about a fifth of them.
  const urls5 = [...urls, 'http://127.0.0.1:1005']
  const ring5 = new HashRing(urls5, [1, 1, 1, 1, 1])
  let toNew = 0
  let elsewhere = 0
  keys.forEach((k, i) => {
    const now = urls5[ring5.owner(hashString(k))]
    if (now !== owner4[i]) { if (now === urls5[4]) toNew++; else elsewhere++ }
  })
  t.equal(elsewhere, 0, 'adding a target moves keys only to it')
  t.ok(toNew > 1400 && toNew < 2600, `about 1/5 of the keys moved (${toNew})`)

  // Through the balancer: the same key, the same target; a target that is down moves only its keys.
  const state = stateFor(4)
  const ch = new ConsistentHash(urls, [1, 1, 1, 1], state, (ctx) => ctx.client.ip)
  const before = keys.slice(0, 1000).map((k) => ch.pick(ctxWith(k), undefined).index)
  t.same(keys.slice(0, 1000).map((k) => ch.pick(ctxWith(k), undefined).index), before, 'sticky: every key picks the same target again')
  state.setHealthy(2, false)
  const after = keys.slice(0, 1000).map((k) => ch.pick(ctxWith(k), undefined).index)
  t.ok(after.every((x, i) => before[i] === 2 ? x !== 2 : x === before[i]), 'a target down moves only its own keys')
})

t.test('passive ejection: consecutive failures, cap, half-open trial, longer second ejection', async (t) => {
  const state = stateFor(10, { consecutiveFailures: 3, baseEjectionTime: 200, maxEjectionPercent: 10 })
  t.equal(state.failure(0, false), false)
  state.success(0, false)
  t.equal(state.failure(0, false), false, 'a success resets the run')
  t.equal(state.failure(0, false), false)
  t.equal(state.failure(0, false), true, 'the third failure in a row ejects')
  t.equal(state.availability(0), 0, 'ejected: down')
  for (let i = 0; i < 3; i++) state.failure(1, false)
  t.equal(state.availability(1), 1, 'max 10% of 10 targets: a second ejection is refused')
  await new Promise((resolve) => setTimeout(resolve, 250))
  t.equal(state.availability(0), 2, 'the ejection is over: half-open, one trial')
  t.equal(state.claimTrial(0), true, 'one request takes the trial')
  t.equal(state.claimTrial(0), false, 'no second trial while it is out')
  state.failure(0, true)
  t.equal(state.availability(0), 0, 'a failed trial ejects again')
  // Read the deadline rather than sleep to it: timers on a loaded machine run late.
  const left = (state.a[H_FIELDS + T_UNTIL]! - state.now()) | 0
  t.ok(left > 300 && left <= 400, `the second ejection lasts twice as long (${left} ms left of 400)`)
  await new Promise((resolve) => setTimeout(resolve, 450))
  t.equal(state.availability(0), 2, 'half-open again')
  t.equal(state.claimTrial(0), true)
  state.success(0, true)
  t.equal(state.availability(0), 1, 'a good trial brings the target back')
  t.same(state.snapshot()[0], { healthy: true, ejected: false, fails: 0, inFlight: 0 })
})

t.test('breaker and retry budget counts', async (t) => {
  const spec = upstreamSpec({ targets: ['http://127.0.0.1:1'], breaker: { maxRequests: 3, maxPending: 2 }, retries: { budgetPercent: 20, minRetryConcurrency: 1 } })
  const state = new UpstreamState(createSharedUpstream(1), spec.passive, spec.breaker, spec.retries)
  state.begin(0)
  state.begin(0)
  t.equal(state.overLimit(), 'pending', 'two waiting for a connection: pending is full')
  state.started()
  t.equal(state.overLimit(), undefined)
  state.begin(0)
  state.started()
  t.equal(state.overLimit(), 'requests', 'three in flight: requests are full')
  t.equal(state.reserveRetry(), true, 'min retry concurrency 1: one retry is allowed')
  state.begin(0)
  t.equal(state.reserveRetry(), false, '1 retry of 4 in flight is over 20%')
  state.end(0, true, true)
  t.equal(state.reserveRetry(), true, 'the retry ended: its slot is free again')
})

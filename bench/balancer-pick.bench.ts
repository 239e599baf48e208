// Nanoseconds per target pick, in-process: the balancer's own cost beside a proxied
// request's (about 100 us of CPU per request on a quiet core). `npm run bench:balancer`.
import { ConsistentHash, LeastRequest, RoundRobin } from '../src/upstream/balancer.js'
import type { Balancer } from '../src/upstream/balancer.js'
import { upstreamSpec } from '../src/upstream/spec.js'
import { createSharedUpstream, UpstreamState } from '../src/upstream/state.js'
import type { RequestContext } from '../src/types.js'

function state (n: number): UpstreamState {
  const spec = upstreamSpec({ targets: Array.from({ length: n }, (_, i) => `http://127.0.0.1:${1000 + i}`) })
  return new UpstreamState(createSharedUpstream(n), spec.passive, spec.breaker, spec.retries)
}

const ctx = { client: { ip: '192.0.2.7' }, headers: {} } as unknown as RequestContext
const urls = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1']
const cases: Array<[string, Balancer]> = [
  ['round-robin, 1 target', new RoundRobin([1], state(1))],
  ['round-robin, 4 targets', new RoundRobin([1, 1, 1, 1], state(4))],
  ['least-request, 4 targets', new LeastRequest([1, 1, 1, 1], state(4))],
  ['consistent-hash, 4 targets', new ConsistentHash(urls, [1, 1, 1, 1], state(4), (c) => c.client.ip)]
]
const N = 5_000_000
for (const [name, b] of cases) {
  for (let i = 0; i < N / 5; i++) b.pick(ctx, undefined)
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) b.pick(ctx, undefined)
  process.stdout.write(`${name.padEnd(28)} ${(Number(process.hrtime.bigint() - t0) / N).toFixed(1)} ns/pick\n`)
}

// How /status reads an upstream's shared state (src/upstream/status.ts), and the tunnel
// count the breaker keeps (state.ts), in-process. The same state across real threads is
// tested in upstream-status.test.ts and websocket-breaker.test.ts.
import t from 'tap'
import { upstreamSpec } from '../src/upstream/spec.js'
import { createSharedUpstream, UpstreamState } from '../src/upstream/state.js'
import { readUpstreamStatus } from '../src/upstream/status.js'

const targets = [{ url: 'http://127.0.0.1:1001', weight: 2 }, { url: 'http://127.0.0.1:1002', weight: 1 }, { url: 'http://127.0.0.1:1003', weight: 1 }]

t.test('health: unhealthy wins over ejected; ejected until a time; then half-open; counts', async (t) => {
  const spec = upstreamSpec({ targets: targets.map((x) => x.url), passive: { consecutiveFailures: 2, baseEjectionTime: '10s', maxEjectionPercent: 100 } })
  const shared = createSharedUpstream(3)
  const state = new UpstreamState(shared, spec.passive, spec.breaker, spec.retries)
  const read = (now = Date.now()): ReturnType<typeof readUpstreamStatus> => readUpstreamStatus(shared, targets, ['r'], false, now)

  t.same(read().targets.map((x) => x.health), ['healthy', 'healthy', 'healthy'])
  state.failure(1, false)
  t.equal(read().targets[1]?.consecutiveFailures, 1, 'one failure counted, not ejected')
  t.equal(read().targets[1]?.health, 'healthy')
  state.failure(1, false)
  const now = Date.now()
  const ejected = read(now).targets[1]
  t.equal(ejected?.health, 'ejected')
  t.equal(ejected?.ejections, 1)
  const until = Date.parse(ejected?.ejectedUntil ?? '')
  t.ok(until > now + 9000 && until <= now + 10_001, `ejectedUntil about 10 s ahead (${ejected?.ejectedUntil ?? ''})`)
  // Read as if 11 s later: the ejection is over, the next request is a trial.
  t.equal(read(now + 11_000).targets[1]?.health, 'half-open')
  t.equal(read(now + 11_000).targets[1]?.ejectedUntil, undefined, 'no end time once it is over')

  state.failure(2, false)
  state.failure(2, false)
  state.setHealthy(2, false)
  t.equal(read().targets[2]?.health, 'unhealthy', 'taken out by the active check: unhealthy, whatever its ejection')

  state.begin(0)
  state.begin(0)
  const s = read()
  t.equal(s.inFlight, 2, 'requests in flight to the upstream')
  t.same(s.targets.map((x) => x.inFlight), [2, 0, 0], 'and to each target')
  t.same(s.targets.map((x) => x.weight), [2, 1, 1])
  t.same(s.routes, ['r'])
})

t.test('tunnels: counted against maxConnections; a closed one frees its slot', async (t) => {
  const spec = upstreamSpec({ targets: ['http://127.0.0.1:1'], breaker: { maxConnections: 2 } })
  const shared = createSharedUpstream(1)
  const state = new UpstreamState(shared, spec.passive, spec.breaker, spec.retries)
  t.equal(state.openTunnel(), true)
  t.equal(state.openTunnel(), true)
  t.equal(state.openTunnel(), false, 'a third over maxConnections 2 is refused')
  t.equal(readUpstreamStatus(shared, [{ url: 'http://127.0.0.1:1', weight: 1 }], ['r'], false).tunnels, 2)
  state.closeTunnel()
  t.equal(state.openTunnel(), true, 'one closed: room for one')
  t.equal(state.overLimit(), undefined, 'tunnels do not count as requests in flight')
})

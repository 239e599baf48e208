// Route timeouts.connect: a connect that never completes is 504 GW_UPSTREAM_TIMEOUT, and
// counts as a connect failure towards passive ejection (issue 9). The target is a loopback
// listener whose accept queue is full (helpers/full-backlog.ts): the kernel drops the SYNs.
import t from 'tap'
import { request } from 'undici'
import { startGateway, startUpstream } from './helpers/gateway.js'
import { startFullBacklog } from './helpers/full-backlog.js'
import { targetStatus } from './helpers/status.js'

t.test('a connect that never completes: 504 after timeouts.connect; two in a row eject the target', async (t) => {
  const hung = await startFullBacklog(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'warn',
      admin: { port: 0 },
      // The gateway-wide connect timeout is far longer: an answer well before it shows the
      // route's own setting was used.
      timeouts: { connect: '60s' },
      routes: [{
        name: 'hung',
        match: { path: '/' },
        upstream: { targets: [hung.url], retries: { attempts: 0 }, passive: { consecutiveFailures: 2, baseEjectionTime: '60s' } },
        // Headers and total far beyond connect: only the connect timeout can answer first.
        timeouts: { connect: '700ms', headers: '60s', total: '120s' }
      }]
    }
  })

  for (const n of [1, 2]) {
    const started = performance.now()
    const r = await request(`${gw.url}/x`, { headersTimeout: 30_000 })
    const body = await r.body.json() as { code: string }
    const ms = performance.now() - started
    t.equal(r.statusCode, 504, `connect ${n}: 504`)
    t.equal(body.code, 'GW_UPSTREAM_TIMEOUT', `connect ${n}: GW_UPSTREAM_TIMEOUT`)
    // Not instant (a refusal would be), and long before any of the 60 s timeouts: the
    // route's 700 ms connect timeout answered. Generous bounds, not a speed assertion.
    t.ok(ms >= 500 && ms < 30_000, `connect ${n}: answered after the connect timeout, not at once (${Math.round(ms)} ms)`)
    if (n === 1) {
      const st = await targetStatus(gw, 'hung', hung.url)
      t.equal(st?.consecutiveFailures, 1, 'the connect timeout counted as one failure of the target')
      t.equal(st?.health, 'healthy', 'one failure does not eject it')
    }
  }

  await gw.waitFor((l) => l.msg === 'upstream target ejected after consecutive failures', 5000)
  t.pass('the second connect failure ejected the target (logged)')
  const st = await targetStatus(gw, 'hung', hung.url)
  t.equal(st?.health, 'ejected', '/status shows it ejected')
  const until = Date.parse(st?.ejectedUntil ?? '')
  t.ok(until > Date.now() + 30_000 && until <= Date.now() + 61_000, `until about 60 s from now (${st?.ejectedUntil ?? 'none'})`)
  t.equal(st?.ejections, 1)

  // Ejected: the next request is not sent to it at all.
  const r = await request(`${gw.url}/y`, { headersTimeout: 30_000 })
  t.equal(r.statusCode, 503, 'no target left: 503')
  t.equal((await r.body.json() as { code: string }).code, 'GW_UPSTREAM_NO_HEALTHY')
  t.ok(r.headers['retry-after'] !== undefined, 'with Retry-After')
})

t.test('a connect timeout never reached the upstream: even a POST is retried on another target', async (t) => {
  const hung = await startFullBacklog(t)
  const well = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'warn',
      admin: { port: 0 },
      timeouts: { connect: '60s' },
      routes: [{
        name: 'pair',
        match: { path: '/' },
        // Round-robin from the first target: the first request goes to the hung one.
        upstream: { targets: [hung.url, well.url], retries: { attempts: 1 } },
        timeouts: { connect: '700ms', headers: '60s' }
      }]
    }
  })
  const r = await request(`${gw.url}/order`, { method: 'POST', body: 'one order', headers: { 'content-type': 'text/plain' }, headersTimeout: 30_000 })
  t.equal(r.statusCode, 200, 'answered by the other target')
  const seen = await r.body.json() as { method: string, length: number }
  t.same({ method: seen.method, length: seen.length }, { method: 'POST', length: 9 }, 'the POST and its body arrived')
  t.equal(well.seen.length, 1, 'exactly once')
  const st = await targetStatus(gw, 'pair', hung.url)
  t.equal(st?.consecutiveFailures, 1, 'the hung target has one connect failure counted')
})

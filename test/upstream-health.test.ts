// CHECKLIST G8 and active health checks: targets ejected and brought back, state shared by
// every worker and kept across a policy update.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startGateway } from './helpers/gateway.js'
import { client, get, many, named, sleep, tally } from './helpers/upstreams.js'

t.test('G8 (passive): 5 consecutive 5xx eject a target; it comes back half-open', async (t) => {
  let broken = true
  const sick = await named(t, 'sick', (_req, res) => { res.writeHead(broken ? 500 : 200, { 'x-upstream': 'sick' }); res.end('sick') })
  const well = await named(t, 'well')
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      routes: [{ name: 'p', match: { path: '/' }, upstream: { targets: [sick.url, well.url], passive: { baseEjectionTime: '5s' }, retries: { attempts: 0 } } }]
    }
  })
  const agent = client(t)
  const first = await many(20, 1, async () => await get(agent, `${gw.url}/x`))
  const fives = first.filter((a) => a.status === 500).length
  t.ok(fives >= 5 && fives <= 6, `the sick target answered 5 (one per worker may be in flight: 6) before ejection (${fives})`)
  const sickBefore = sick.hits()
  const during = await many(20, 2, async () => await get(agent, `${gw.url}/y`))
  t.same(tally(during, (a) => String(a.status)), { 200: 20 }, 'ejected: every request goes to the well target')
  t.equal(sick.hits(), sickBefore, 'the ejected target gets nothing')
  await gw.waitFor((l) => l.msg === 'upstream target ejected after consecutive failures', 2000)
  broken = false
  // Ejected for 5 s from the fifth failure (long enough for the requests above on a slow
  // machine); then the half-open trial.
  await sleep(5500)
  const after = await many(20, 1, async () => await get(agent, `${gw.url}/z`))
  t.same(tally(after, (a) => String(a.status)), { 200: 20 })
  t.ok(sick.hits() > sickBefore, 'after the ejection time a trial request goes to it, and it is back in rotation')
  t.ok(after.filter((a) => a.body === 'sick').length >= 5, 'it takes its share again')
})

t.test('active checks run once per gateway and take a target out and back; state survives a reload', async (t) => {
  let aSick = false
  let probes = 0
  const a = await named(t, 'a', (req, res) => {
    if (req.url === '/health') { probes++; res.writeHead(aSick ? 500 : 200); res.end(); return }
    res.end('a')
  })
  const b = await named(t, 'b')
  const dir = t.testdir({})
  const file = join(dir, 'gateway.json')
  const cfg = (extraRoute: boolean): Record<string, unknown> => ({
    listen: { host: '127.0.0.1', port: 0 },
    workers: 2,
    logLevel: 'info',
    routes: [
      { name: 'ab', match: { path: '/' }, upstream: { targets: [a.url, b.url], healthCheck: { path: '/health', interval: '200ms', timeout: '150ms', unhealthyThreshold: 2, healthyThreshold: 2 } } },
      ...(extraRoute ? [{ name: 'extra', match: { path: '/extra' }, upstream: b.url }] : [])
    ]
  })
  writeFileSync(file, JSON.stringify(cfg(false)))
  const gw = await startGateway(t, { args: ['--config', file] })
  const agent = client(t)
  const who = async (n: number): Promise<Record<string, number>> => tally(await many(n, 2, async () => await get(agent, `${gw.url}/x`)), (r) => r.body)

  const both = await who(20)
  // Exact halves per worker; the kernel decides how many each worker gets, hence +-2.
  t.ok(Math.abs((both.a ?? 0) - (both.b ?? 0)) <= 2, `both targets healthy: round-robin halves (${JSON.stringify(both)})`)
  // Probes: the acceptor alone probes (2 workers would make it twice as many).
  const p0 = probes
  await sleep(2000)
  const perSecond = (probes - p0) / 2
  t.ok(perSecond >= 1 && perSecond <= 7, `about 5 probes a second of target a, not 10 (${perSecond})`)

  aSick = true
  let seen = await who(10)
  for (let i = 0; i < 50 && seen.a !== undefined; i++) { await sleep(100); seen = await who(10) }
  t.same(seen, { b: 10 }, 'a failed its health check twice: out, on every worker')
  await gw.waitFor((l) => l.msg === 'upstream target failed its health check: taken out', 2000)

  // A reload that keeps this upstream as it is keeps its health state: a stays out.
  const before = gw.lines.filter((l) => l.msg === 'policy update applied').length
  writeFileSync(file, JSON.stringify(cfg(true)))
  await gw.waitFor(() => gw.lines.filter((l) => l.msg === 'policy update applied').length > before)
  t.equal((await get(agent, `${gw.url}/extra`)).body, 'b', 'the new generation is live')
  t.same(await who(10), { b: 10 }, 'after the reload a is still out (the state survived)')

  aSick = false
  seen = await who(10)
  for (let i = 0; i < 50 && seen.a === undefined; i++) { await sleep(100); seen = await who(10) }
  t.ok((seen.a ?? 0) > 0, 'a passed twice: back in')
  await gw.waitFor((l) => l.msg === 'upstream target passed its health check: back in', 2000)
})

// GET /status on the admin API shows each upstream's targets: weight, health by active and
// passive checks, in-flight counts. A real target is stopped (dead) and started again on
// the same loopback port.
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startGateway } from './helpers/gateway.js'
import { adminStatus, targetStatus } from './helpers/status.js'
import { sleep } from './helpers/upstreams.js'

async function listen (name: string, port = 0): Promise<Server> {
  const s = createServer((_req, res) => { res.end(name) })
  await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(port, '127.0.0.1', resolve) })
  return s
}
const stop = async (s: Server): Promise<void> => { s.closeAllConnections(); await new Promise((resolve) => s.close(resolve)) }

t.test('/status: a dead target shows unhealthy by active checks, then healthy once it is back', async (t) => {
  let a: Server | undefined = await listen('a')
  const b = await listen('b')
  t.teardown(async () => { if (a !== undefined) await stop(a); await stop(b) })
  const aPort = (a.address() as AddressInfo).port
  const aUrl = `http://127.0.0.1:${aPort}`
  const bUrl = `http://127.0.0.1:${(b.address() as AddressInfo).port}`
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      admin: { port: 0 },
      routes: [
        { name: 'ab', match: { path: '/' }, upstream: { targets: [{ url: aUrl, weight: 3 }, bUrl], healthCheck: { path: '/health', interval: '200ms', timeout: '150ms', unhealthyThreshold: 2, healthyThreshold: 2 } } },
        { name: 'b-only', match: { path: '/b' }, upstream: bUrl }
      ]
    }
  })

  const status = await adminStatus(gw)
  t.equal(status.upstreams.length, 2, 'one entry per upstream state')
  const ab = status.upstreams.find((u) => u.routes.includes('ab'))
  t.same(ab, {
    routes: ['ab'],
    activeChecks: true,
    inFlight: 0,
    tunnels: 0,
    targets: [
      { url: aUrl, weight: 3, health: 'healthy', consecutiveFailures: 0, ejections: 0, inFlight: 0 },
      { url: bUrl, weight: 1, health: 'healthy', consecutiveFailures: 0, ejections: 0, inFlight: 0 }
    ]
  }, 'targets with url, weight, health and counts')
  t.same(status.upstreams.find((u) => u.routes.includes('b-only'))?.activeChecks, false, 'a plain URL upstream is not probed')

  // Target a dies: two failed probes take it out.
  await stop(a)
  a = undefined
  let health = (await targetStatus(gw, 'ab', aUrl))?.health
  for (let i = 0; i < 100 && health !== 'unhealthy'; i++) { await sleep(100); health = (await targetStatus(gw, 'ab', aUrl))?.health }
  t.equal(health, 'unhealthy', 'the dead target shows unhealthy')
  t.equal((await targetStatus(gw, 'ab', bUrl))?.health, 'healthy', 'the other stays healthy')
  const answers = []
  for (let i = 0; i < 6; i++) answers.push(await (await fetch(`${gw.url}/x`)).text())
  t.same(answers, ['b', 'b', 'b', 'b', 'b', 'b'], 'requests go to the healthy target only')

  // Back on the same port: two passing probes bring it back.
  a = await listen('a', aPort)
  for (let i = 0; i < 100 && health !== 'healthy'; i++) { await sleep(100); health = (await targetStatus(gw, 'ab', aUrl))?.health }
  t.equal(health, 'healthy', 'back: healthy again')
})

t.test('/status: requests in flight are counted per target and per upstream', async (t) => {
  const held: Array<() => void> = []
  const slow = createServer((_req, res) => { held.push(() => res.end('late')) })
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const h of held) h(); await stop(slow) })
  const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`
  const gw = await startGateway(t, { config: { logLevel: 'warn', admin: { port: 0 }, routes: [{ name: 'slow', match: { path: '/' }, upstream: url }] } })
  const pending = [fetch(`${gw.url}/1`), fetch(`${gw.url}/2`)]
  for (let i = 0; i < 100 && held.length < 2; i++) await sleep(50)
  t.equal(held.length, 2, 'both requests reached the upstream')
  const s = (await adminStatus(gw)).upstreams[0]
  t.equal(s?.inFlight, 2, 'two requests in flight to the upstream (counted across workers)')
  t.equal(s?.targets[0]?.inFlight, 2, 'and to its target')
  for (const h of held.splice(0)) h()
  for (const p of pending) await (await p).text()
  t.equal((await adminStatus(gw)).upstreams[0]?.inFlight, 0, 'none once they are answered')
})

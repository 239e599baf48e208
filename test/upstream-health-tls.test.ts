// Active health checks of https:// targets use the route's upstream TLS (CA, servername), and
// an upstream with a tls block keeps its prober and state across a policy update. A real
// HTTPS upstream on 127.0.0.1 with a certificate from a test CA made at test time.
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { issue, makeCa } from './helpers/certs.js'
import { startGateway } from './helpers/gateway.js'
import { targetStatus } from './helpers/status.js'
import { sleep } from './helpers/upstreams.js'

t.test('probes of an https:// target behind a private CA pass; the prober survives an update', async (t) => {
  const ca = makeCa('Probe CA', (fn) => t.teardown(fn))
  const leaf = issue(ca, 'probe.test', ['DNS:probe.test'])
  const dir = t.testdir({ 'ca.pem': ca.cert })
  let probes = 0
  let sick = false
  const server = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    if (req.url === '/health') { probes++; res.writeHead(sick ? 500 : 200); res.end(); return }
    res.end('secure')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  const file = join(dir, 'gateway.json')
  const cfg = (extra: boolean): Record<string, unknown> => ({
    listen: { host: '127.0.0.1', port: 0 },
    workers: 1,
    logLevel: 'info',
    admin: { port: 0 },
    routes: [
      { name: 'tls', match: { path: '/' }, upstream: { targets: [origin], tls: { ca: 'ca.pem', servername: 'probe.test' }, healthCheck: { path: '/health', interval: '200ms', timeout: '150ms', unhealthyThreshold: 2, healthyThreshold: 2 } } },
      ...(extra ? [{ name: 'extra', match: { path: '/extra' }, upstream: 'http://127.0.0.1:1' }] : [])
    ]
  })
  writeFileSync(file, JSON.stringify(cfg(false)))
  const gw = await startGateway(t, { args: ['--config', file] })

  for (let i = 0; i < 50 && probes < 3; i++) await sleep(100)
  t.ok(probes >= 3, `probes reached the upstream through TLS with the route's CA (${probes})`)
  t.equal((await targetStatus(gw, 'tls', origin))?.health, 'healthy', 'the target stays healthy')
  const r = await fetch(`${gw.url}/x`)
  t.equal(await r.text(), 'secure', 'and serves requests')

  // A policy update that keeps this upstream as it is.
  const before = gw.lines.filter((l) => l.msg === 'policy update applied').length
  writeFileSync(file, JSON.stringify(cfg(true)))
  await gw.waitFor(() => gw.lines.filter((l) => l.msg === 'policy update applied').length > before)
  const p0 = probes
  for (let i = 0; i < 50 && probes < p0 + 3; i++) await sleep(100)
  t.ok(probes >= p0 + 3, `still probed after the update (${probes - p0} more)`)
  sick = true
  let health = (await targetStatus(gw, 'tls', origin))?.health
  for (let i = 0; i < 50 && health !== 'unhealthy'; i++) { await sleep(100); health = (await targetStatus(gw, 'tls', origin))?.health }
  t.equal(health, 'unhealthy', 'failing probes after the update still take it out, and /status shows it')
  const down = await fetch(`${gw.url}/x`)
  t.equal(down.status, 503, 'no healthy target: 503')
  await down.arrayBuffer()
})

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startGateway, startUpstream } from '../helpers/gateway.js'

t.test('burst then SIGTERM', async (t) => {
  const up = await startUpstream(t, (_req, res) => { setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('x'.repeat(1000)) }, 500) })
  const file = join(t.testdirName, 'access.log')
  const gw = await startGateway(t, { config: { logLevel: 'warn', workers: 2, plugins: [{ name: 'access-log', config: { destination: 'access.log', headers: ['user-agent'] } }], routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }] } })
  const N = 400
  const ps = []
  for (let i = 0; i < N; i++) ps.push(request(`${gw.url}/r${i}`, { headers: { 'user-agent': 'u'.repeat(500) } }).then(async (r) => { await r.body.text(); return r.statusCode }).catch(() => 0))
  await new Promise((r) => setTimeout(r, 200))
  const stopP = gw.stop()
  const statuses = await Promise.all(ps)
  await stopP
  const ok = statuses.filter((s) => s === 200).length
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : -1
  t.comment(`ok=${ok} lines=${lines} seen=${up.seen.length}`)
  t.equal(lines, ok)
})

// The anomaly auto-block, fleet-wide: threat-guard blocks a client on one instance, and the
// other instance refuses the same client too (through Redis: stored and announced by the
// first, placed into the second's shared block table by its acceptor).
import t from 'tap'
import { clusterReady, eventually, get, guardedFleet, startInDir, startRedis, tempDir } from './redis.js'

t.setTimeout(600_000)

t.test('a block placed on one instance holds on the other', async (t) => {
  const redis = await startRedis(t)
  const config = await guardedFleet(t, redis.url)
  const a = await startInDir(t, tempDir(t), config('ga'))
  const b = await startInDir(t, tempDir(t), config('gb'))
  await Promise.all([a, b].map(clusterReady))

  t.equal((await get(b.url + '/ok')).status, 200, 'B serves the client before any strike')
  for (let i = 0; i < 3; i++) t.equal((await get(a.url + '/bad')).status, 401, `strike ${i + 1} on A`)
  t.equal((await get(a.url + '/ok')).status, 403, 'A blocks the client after the third strike')
  const ms = await eventually(async () => (await get(b.url + '/ok')).status === 403, 30_000, 'B refuses the client')
  t.comment(`the block held on B ${Math.round(ms)} ms after A placed it`)
  const r = await get(b.url + '/ok')
  t.equal(r.code, 'GW_IP_AUTO_BLOCKED', "B's refusal is the auto-block")
  t.ok(b.lines.every((l) => l.securityEvent !== 'ip-auto-blocked'), 'B placed no block of its own: it came from the fleet')
})

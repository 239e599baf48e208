// The open-loop generator measures from the intended send time: a subject that stalls shows
// the stall in every request that was due during it (no coordinated omission), and its
// status counts are what the server answered. Real node:http server on 127.0.0.1.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { openLoop } from '../../bench/open-loop.js'

async function server (handler: http.RequestListener): Promise<{ url: string, close: () => Promise<void> }> {
  const s = http.createServer(handler)
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/`, close: async () => { s.closeAllConnections(); await new Promise((resolve) => s.close(resolve)) } }
}

t.test('a stall of the only connection shows in the requests due during it', async (t) => {
  let stalled = false
  let count = 0
  const s = await server((req, res) => {
    req.resume()
    // The 20th request holds the only connection for 600 ms; ~12 more fall due meanwhile.
    count++
    if (count === 20 && !stalled) {
      stalled = true
      setTimeout(() => res.end('ok'), 600)
      return
    }
    res.end('ok')
  })
  t.teardown(s.close)
  // No warm-up: the stall must fall in the measured schedule.
  const r = await openLoop({ url: s.url, rate: 50, durationSec: 2, connections: 1, warmupSec: 0 })
  t.equal(r.scheduled, 100, 'rate x duration requests were due')
  t.equal(r.completed, 100, 'all were answered')
  t.same(r.statuses, { 200: 100 })
  t.equal(r.errors, 0)
  // Measured from when each was sent (closed-loop style), only one request would be slow,
  // and p90 would be a few ms. From the intended time, every request that waited behind
  // the stall counts its wait: over 10% of them waited, so p90 is above 100 ms, and the
  // worst one at least the stall.
  t.ok(r.latencyUs.max >= 600_000, `max ${r.latencyUs.max} us >= the 600 ms stall`)
  t.ok(r.latencyUs.p90 >= 100_000, `p90 ${r.latencyUs.p90} us >= 100 ms: the queued requests count their wait`)
  t.ok(r.histogram.length > 0, 'the histogram is kept for re-analysis')
})

t.test('non-200 answers and refused connections are counted, not hidden', async (t) => {
  const s = await server((req, res) => { req.resume(); res.statusCode = 401; res.end() })
  t.teardown(s.close)
  const r = await openLoop({ url: s.url, rate: 20, durationSec: 1, connections: 2, warmupSec: 0 })
  t.same(r.statuses, { 401: 20 })
  const dead = await server((req, res) => res.end())
  await dead.close()
  const d = await openLoop({ url: dead.url, rate: 20, durationSec: 1, connections: 2, warmupSec: 0 })
  t.equal(d.completed, 0)
  t.equal(d.errors, 20, 'every request to a closed port is an error')
})

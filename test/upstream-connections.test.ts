// CHECKLIST G10 and back-pressure: a client that leaves aborts its upstream request; a client
// that does not read stops the upstream, not fills memory.
import { connect } from 'node:net'
import t from 'tap'
import { startGateway } from './helpers/gateway.js'
import { client, get, named, sleep } from './helpers/upstreams.js'

t.test('G10: a client that disconnects aborts the upstream request; the connection is freed', async (t) => {
  let closedAt = 0
  let calls = 0
  const hang = await named(t, 'hang', (req, res) => {
    calls++
    if (req.url === '/hang') { res.once('close', () => { closedAt = Date.now() }); return }
    res.end('ok')
  })
  const gw = await startGateway(t, { config: { logLevel: 'warn', workers: 1, routes: [{ name: 'h', match: { path: '/' }, upstream: { targets: [hang.url], connections: 1 } }] } })
  const sock = connect(gw.port, '127.0.0.1')
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()))
  sock.write('GET /hang HTTP/1.1\r\nHost: a\r\n\r\n')
  for (let i = 0; i < 100 && calls === 0; i++) await sleep(20)
  t.equal(calls, 1, 'the request reached the upstream')
  const leftAt = Date.now()
  sock.destroy()
  for (let i = 0; i < 100 && closedAt === 0; i++) await sleep(5)
  t.ok(closedAt > 0, 'the upstream saw the request aborted')
  t.ok(closedAt - leftAt <= 100, `within 100 ms of the client leaving (${closedAt - leftAt} ms)`)
  // One connection per worker to this upstream: the next request can only be served if the
  // aborted one gave its connection back.
  const agent = client(t)
  const next = await get(agent, `${gw.url}/next`)
  t.equal(next.status, 200, 'the pool (1 connection) serves the next request')
})

t.test('a client that does not read makes back-pressure, not memory growth', async (t) => {
  let written = 0
  let closed = false
  const firehose = await named(t, 'firehose', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    const chunk = Buffer.alloc(64 * 1024, 120)
    const pump = (): void => {
      // Bounded: at most 256 MiB, stopping whenever the socket says it is full.
      while (!res.destroyed && written < 256 * 1024 * 1024) {
        written += chunk.length
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
    }
    res.once('close', () => { closed = true })
    pump()
  })
  const gw = await startGateway(t, { config: { logLevel: 'warn', workers: 1, routes: [{ name: 'f', match: { path: '/' }, upstream: firehose.url }] } })
  const sock = connect(gw.port, '127.0.0.1')
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()))
  sock.pause()
  sock.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n')
  await sleep(1500)
  const plateau = written
  await sleep(1000)
  t.ok(plateau > 0, `the upstream started sending (${plateau} bytes)`)
  t.equal(written, plateau, 'and then stopped: nobody reads, so nobody writes')
  t.ok(written < 32 * 1024 * 1024, `only socket and stream buffers are filled (${(written / 1048576).toFixed(1)} MiB of 256)`)
  sock.destroy()
  for (let i = 0; i < 100 && !closed; i++) await sleep(20)
  t.ok(closed, 'the client left: the upstream response was aborted')
})

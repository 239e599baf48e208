// CHECKLIST B1-B9: limits and slow clients, as raw bytes. Timeouts are configured short so
// the tests stay fast; the only timing assertions are generous upper bounds on when a
// connection was closed.
import { writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { exchange, forwarded, gatewayFor, sleep, startRawUpstream } from './helpers.js'

const up = await startRawUpstream(t)
const gw = await gatewayFor(t, up, {
  limits: { headersTimeout: '1s', requestTimeout: '3s', keepAliveTimeout: '1s', bodyIdleTimeout: '1s', maxBodySize: 4096 },
  routes: [
    { name: 'small', match: { path: '/small' }, upstream: up.url, maxBodySize: 1024 },
    { name: 'all', match: { path: '/' }, upstream: up.url }
  ]
})
const fwd = (o: { method: string, target: string, headers?: Array<[string, string]>, body?: string }): string =>
  forwarded({ upstreamPort: up.port, gatewayPort: gw.port, ...o })

t.test('B1-B2: header block size and header count -> 431 + close', async (t) => {
  let mark = up.mark()
  let ex = await exchange(gw.port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, { ms: 4000 })
  t.equal(ex.finals[0]?.status, 431, 'B1: over 16 KiB of headers')
  t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_HEADERS_TOO_LARGE' })
  t.ok(ex.closed, 'B1: closed')
  t.equal(up.since(mark).bytes, 0, 'B1: nothing upstream')

  const lines = (n: number): string => Array.from({ length: n }, (_, i) => `X-H${i}: ${i}\r\n`).join('')
  mark = up.mark()
  ex = await exchange(gw.port, `GET /many HTTP/1.1\r\nHost: a\r\n${lines(100)}\r\n`, { ms: 4000 })
  t.equal(ex.finals[0]?.status, 431, 'B2: 101 header lines')
  t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_HEADERS_TOO_LARGE' })
  t.ok(ex.closed, 'B2: closed')
  t.equal(up.since(mark).bytes, 0, 'B2: nothing upstream')

  mark = up.mark()
  ex = await exchange(gw.port, `GET /many HTTP/1.1\r\nHost: a\r\n${lines(99)}\r\n`, { finals: 1 })
  t.equal(ex.finals[0]?.status, 200, 'B2: 100 header lines are fine')
  await up.waitFor(mark.requests + 1)
  t.equal(up.since(mark).requests[0]?.bytes.toString('latin1'), fwd({ method: 'GET', target: '/many', headers: Array.from({ length: 99 }, (_, i) => [`X-H${i}`, String(i)] as [string, string]) }))
})

t.test('B3: slowloris headers -> 408 + close within headersTimeout + 1 s', async (t) => {
  const mark = up.mark()
  const parts = ['GET / HTTP/1.1\r\nHost: a\r\n', ...Array.from({ length: 30 }, () => 'X')]
  const ex = await exchange(gw.port, parts, { gapMs: 250, ms: 8000 })
  t.equal(ex.finals[0]?.status, 408, '408')
  t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_REQUEST_TIMEOUT' })
  t.ok(ex.closed, 'closed')
  t.ok(ex.ms < 5000, `closed after ${ex.ms} ms (headersTimeout 1 s)`)
  t.equal(up.since(mark).bytes, 0, 'nothing upstream')
})

t.test('B4: a body trickled or paused -> 408 + close; the upstream never gets a whole request', async (t) => {
  // 1 byte every 250 ms never trips the 1 s idle timeout, but the whole request must arrive
  // within requestTimeout (3 s).
  let mark = up.mark()
  let ex = await exchange(gw.port, ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n', ...Array.from({ length: 60 }, () => 'x')], { gapMs: 250, ms: 10_000 })
  t.equal(ex.finals[0]?.status, 408, 'trickle: 408')
  t.ok(ex.closed, 'trickle: closed')
  t.ok(ex.ms < 8000, `trickle: closed after ${ex.ms} ms (requestTimeout 3 s)`)
  await sleep(100)
  let seen = up.since(mark)
  t.equal(seen.requests.length, 0, 'trickle: no complete request upstream')
  t.ok(seen.partial.length <= 1, 'trickle: at most one request cut short upstream')

  // A body that stops: cut at bodyIdleTimeout (1 s).
  mark = up.mark()
  ex = await exchange(gw.port, ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n', '0123456789'], { gapMs: 50, ms: 8000 })
  t.equal(ex.finals[0]?.status, 408, 'pause: 408')
  t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_REQUEST_TIMEOUT' })
  t.ok(ex.closed, 'pause: closed')
  t.ok(ex.ms < 4000, `pause: closed after ${ex.ms} ms (bodyIdleTimeout 1 s)`)
  await sleep(100)
  seen = up.since(mark)
  t.equal(seen.requests.length, 0, 'pause: no complete request upstream')
  for (const p of seen.partial) t.ok(p.length < 400, 'pause: what the upstream got was cut short')
})

t.test('B5: an idle keep-alive connection is closed at keepAliveTimeout', async (t) => {
  const ex = await exchange(gw.port, 'GET /b5 HTTP/1.1\r\nHost: a\r\n\r\n', { finals: 1, waitClose: true, ms: 7000 })
  t.equal(ex.finals[0]?.status, 200)
  t.match(ex.finals[0]?.headers['keep-alive'] ?? '', /timeout=1/)
  t.ok(ex.closed, 'closed while idle')
  t.ok(ex.ms < 5000, `closed after ${ex.ms} ms (keepAliveTimeout 1 s)`)
})

t.test('B6: request body limits per route', async (t) => {
  // Content-Length over the limit: 413 before a byte of the body is read, and before any
  // 100 Continue.
  for (const expect of ['', 'Expect: 100-continue\r\n']) {
    const mark = up.mark()
    const ex = await exchange(gw.port, `POST /small HTTP/1.1\r\nHost: a\r\n${expect}Content-Length: 2048\r\n\r\n`, { ms: 4000 })
    t.same(ex.responses.map((r) => r.status), [413], `CL 2048 on a 1 KiB route${expect === '' ? '' : ' with Expect'}: 413, no 100`)
    t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_BODY_TOO_LARGE' })
    t.ok(ex.closed, 'closed')
    t.equal(up.since(mark).bytes, 0, 'nothing upstream')
  }
  // The global limit (4 KiB here) applies to routes without their own.
  let mark = up.mark()
  let ex = await exchange(gw.port, 'POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n', { ms: 4000 })
  t.equal(ex.finals[0]?.status, 413, 'CL 5000 against limits.maxBodySize 4096')
  t.equal(up.since(mark).bytes, 0)

  // At the limit: fine, byte for byte.
  const body = 'b'.repeat(1024)
  mark = up.mark()
  ex = await exchange(gw.port, `POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n${body}`, { finals: 1 })
  t.equal(ex.finals[0]?.status, 200, 'CL at the limit')
  await up.waitFor(mark.requests + 1)
  t.equal(up.since(mark).requests[0]?.bytes.toString('latin1'), fwd({ method: 'POST', target: '/small', body }))

  // Expect: 100-continue within the limit: 100, then the body, then the answer.
  mark = up.mark()
  ex = await exchange(gw.port, ['POST /small HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n', 'hello'], { gapMs: 300, finals: 1 })
  t.same(ex.responses.map((r) => r.status), [100, 200], '100 Continue, then the answer')
  await up.waitFor(mark.requests + 1)
  t.equal(up.since(mark).requests[0]?.bytes.toString('latin1'), fwd({ method: 'POST', target: '/small', body: 'hello' }), 'Expect is not passed on')

  // Chunked, over the limit: 413 mid-stream, closed; the upstream never gets it whole.
  const chunk = 'c'.repeat(512)
  const chunked = (n: number): string => `${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(n) + '0\r\n\r\n'
  mark = up.mark()
  ex = await exchange(gw.port, `POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(8)}`, { ms: 4000 })
  t.equal(ex.finals[0]?.status, 413, 'chunked 4 KiB on a 1 KiB route: 413')
  t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_BODY_TOO_LARGE' })
  t.ok(ex.closed, 'closed')
  await sleep(100)
  t.equal(up.since(mark).requests.length, 0, 'no request upstream')
  t.equal(up.since(mark).bytes, 0, 'not a byte upstream (refused within the packet it came in)')

  // Over the limit in a later packet than the first body bytes: the upstream request is cut.
  mark = up.mark()
  ex = await exchange(gw.port, ['POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n', `200\r\n${chunk}\r\n`, `200\r\n${chunk}\r\n200\r\n${chunk}\r\n0\r\n\r\n`], { gapMs: 200, ms: 4000 })
  t.equal(ex.finals[0]?.status, 413, 'chunked over the limit in a later packet: 413')
  t.ok(ex.closed, 'closed')
  await sleep(100)
  t.equal(up.since(mark).requests.length, 0, 'no complete request upstream')

  // Chunked within the limit: re-framed, exact body.
  mark = up.mark()
  ex = await exchange(gw.port, `POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(2)}`, { finals: 1 })
  t.equal(ex.finals[0]?.status, 200, 'chunked 1 KiB: fine')
  await up.waitFor(mark.requests + 1)
  t.equal(up.since(mark).requests[0]?.body.toString('latin1'), chunk + chunk)
})

t.test('B7: a client that never reads a 100 MB response: back-pressure bounds the buffering', async (t) => {
  let written = 0
  let done = false
  const total = 100 * 1024 * 1024
  const sockets = new Set<Socket>()
  const big = createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.once('data', () => {
      s.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${total}\r\n\r\n`)
      const block = Buffer.alloc(65536, 0x61)
      const pump = (): void => {
        while (!done && written < total) {
          written += block.length
          if (!s.write(block)) { s.once('drain', pump); return }
        }
      }
      pump()
    })
  })
  await new Promise<void>((resolve) => big.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { done = true; for (const s of sockets) s.destroy(); big.close(() => resolve()) }))
  const gwBig = await startGateway(t, { config: { workers: 1, logLevel: 'warn', tracing: { propagate: false }, routes: [{ name: 'big', match: { path: '/' }, upstream: `http://127.0.0.1:${(big.address() as AddressInfo).port}` }] } })
  const client = connect(gwBig.port, '127.0.0.1')
  client.on('error', () => {})
  await new Promise<void>((resolve) => client.once('connect', () => resolve()))
  client.write('GET /huge HTTP/1.1\r\nHost: a\r\n\r\n')
  let received = 0
  client.on('data', (d: Buffer) => { received += d.length; client.pause() })
  // Let the pipes fill up, then check the upstream is held back.
  let last = -1
  for (let i = 0; i < 40 && written !== last; i++) { last = written; await sleep(250) }
  t.ok(written < 48 * 1024 * 1024, `the upstream could write only ${(written / 1048576).toFixed(1)} MiB of 100 MiB while the client read ${(received / 1024).toFixed(0)} KiB`)
  client.destroy()
})

t.test('B8: a connection that sends nothing is closed at headersTimeout', async (t) => {
  const mark = up.mark()
  const ex = await exchange(gw.port, [], { ms: 7000 })
  t.ok(ex.closed, 'closed')
  t.ok(ex.ms < 5000, `closed after ${ex.ms} ms (headersTimeout 1 s)`)
  t.equal(ex.finals[0]?.status ?? 408, 408, 'with a 408 if anything')
  t.equal(up.since(mark).bytes, 0)
})

t.test('B9: connections over limits.maxConnections are shed, the gateway keeps serving', async (t) => {
  const up9 = await startRawUpstream(t)
  const gw9 = await gatewayFor(t, up9, { limits: { maxConnections: 3 } })
  const open: Socket[] = []
  t.teardown(() => { for (const s of open) s.destroy() })
  for (let i = 0; i < 3; i++) {
    const s = connect(gw9.port, '127.0.0.1')
    s.on('error', () => {})
    await new Promise<void>((resolve) => s.once('connect', () => resolve()))
    open.push(s)
  }
  await sleep(200)
  const shed = await exchange(gw9.port, 'GET /over HTTP/1.1\r\nHost: a\r\n\r\n', { ms: 3000 })
  t.ok(shed.closed, 'the fourth connection is closed')
  t.equal(shed.responses.length, 0, 'without an answer')
  t.ok(shed.ms < 2000, `at once (${shed.ms} ms)`)
  await gw9.waitFor((l) => l.msg === 'connections over limits.maxConnections were closed', 3000)
  for (const s of open.splice(0)) s.destroy()
  await sleep(200)
  const ok = await exchange(gw9.port, 'GET /fine HTTP/1.1\r\nHost: a\r\n\r\n', { finals: 1 })
  t.equal(ok.finals[0]?.status, 200, 'below the cap again: served')
  t.equal(up9.requests.map((r) => r.target).join(), '/fine', 'the shed request never reached the upstream')
})

t.test('limits follow a policy update without a restart', async (t) => {
  const up2 = await startRawUpstream(t)
  const dir = t.testdir({})
  const file = join(dir, 'gateway.json')
  const cfg = (maxHeaderSize: number): string => JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, workers: 1, logLevel: 'info', limits: { maxHeaderSize }, routes: [{ name: 'all', match: { path: '/' }, upstream: up2.url }] })
  writeFileSync(file, cfg(16384))
  const gw2 = await startGateway(t, { args: ['--config', file] })
  const req = `GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ${'p'.repeat(4096)}\r\n\r\n`
  t.equal((await exchange(gw2.port, req, { finals: 1 })).finals[0]?.status, 200, '4 KiB of headers under a 16 KiB limit')
  const applied = (l: Record<string, unknown>): boolean => l.msg === 'policy update applied'
  const before = gw2.lines.filter(applied).length
  writeFileSync(file, cfg(2048))
  await gw2.waitFor(() => gw2.lines.filter(applied).length > before)
  const ex = await exchange(gw2.port, req, { ms: 3000 })
  t.equal(ex.finals[0]?.status, 431, 'the same request under the new 2 KiB limit')
})

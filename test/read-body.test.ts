import { createHash } from 'node:crypto'
import t from 'tap'
import { request } from 'undici'
import { FIXTURES, rawRequest, startGateway, startUpstream } from './helpers/gateway.js'

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

t.test('ctx.readBody: a plugin reads the body, the upstream still gets it byte for byte', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      routes: [{ name: 'r', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'body-check', module: FIXTURES + 'plugins/body-check.mjs', config: { limit: 1000 } }] }]
    }
  })

  const json = JSON.stringify({ a: 'é'.repeat(100), n: [1, 2, 3] })
  const r = await request(gw.url + '/x', { method: 'POST', body: json, headers: { 'content-type': 'application/json' } })
  const echoed = await r.body.json() as { sha256: string, length: number, headers: Record<string, string> }
  t.equal(r.statusCode, 200)
  t.equal(echoed.sha256, sha(json))
  t.equal(echoed.length, Buffer.byteLength(json))
  t.equal(echoed.headers['x-body-seen'], String(Buffer.byteLength(json)))
  t.equal(echoed.headers['content-length'], String(Buffer.byteLength(json)))

  // Chunked in: read whole, sent with a Content-Length.
  const chunked = await rawRequest(gw.port, 'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')
  t.match(chunked, /^HTTP\/1\.1 200 /)
  const seen = up.seen[up.seen.length - 1]
  t.equal(seen?.body.toString(), 'hello world')
  t.equal(seen?.headers['content-length'], '11')
  t.equal(seen?.headers['transfer-encoding'], undefined)

  // No body at all: nothing to read, nothing sent.
  const empty = await request(gw.url + '/e', { method: 'POST' })
  t.equal(empty.statusCode, 200)
  t.equal((await empty.body.json() as { length: number }).length, 0)

  const denied = await request(gw.url + '/d', { method: 'POST', body: 'please deny me' })
  t.equal(denied.statusCode, 422)
  await denied.body.text()

  const before = up.seen.length
  // Content-Length over the limit: 413 before a byte of the body is read; connection closed.
  const big = await rawRequest(gw.port, 'POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n' + 'a'.repeat(100))
  t.match(big, /^HTTP\/1\.1 413 /)
  t.match(big, /\r\nconnection: close\r\n/i)
  t.match(big, /"code":"GW_BODY_TOO_LARGE"/)
  // Chunked past the limit: 413 mid-stream.
  const chunks = Array.from({ length: 20 }, () => '64\r\n' + 'b'.repeat(100) + '\r\n').join('')
  const bigChunked = await rawRequest(gw.port, 'POST /bigc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' + chunks + '0\r\n\r\n')
  t.match(bigChunked, /^HTTP\/1\.1 413 /)
  // Broken framing: 400.
  const broken = await rawRequest(gw.port, 'POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n')
  t.match(broken, /^HTTP\/1\.1 400 /)
  t.equal(up.seen.length, before, 'the upstream saw none of the refused requests')
})

t.test('ctx.readBody is held to the route limits too: maxBodySize and the body idle timeout', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 1,
      limits: { bodyIdleTimeout: '1s' },
      routes: [{ name: 'r', match: { path: '/' }, upstream: up.url, maxBodySize: 100, plugins: [{ name: 'body-check', module: FIXTURES + 'plugins/body-check.mjs', config: { limit: 100000 } }] }]
    }
  })
  // Chunked (no Content-Length to refuse up front): past the route's 100 bytes, not the plugin's 100000.
  const chunks = Array.from({ length: 3 }, () => '32\r\n' + 'c'.repeat(50) + '\r\n').join('')
  const big = await rawRequest(gw.port, 'POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' + chunks + '0\r\n\r\n')
  t.match(big, /^HTTP\/1\.1 413 /)
  t.match(big, /the request body is larger than 100 bytes/)
  // A body that stops arriving: 408 after the route's idle time, nothing proxied.
  const stalled = await rawRequest(gw.port, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nonly-part', 5000)
  t.match(stalled, /^HTTP\/1\.1 408 /)
  t.match(stalled, /"code":"GW_REQUEST_TIMEOUT"/)
  t.equal(up.seen.length, 0)
})

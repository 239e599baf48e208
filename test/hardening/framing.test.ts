// CHECKLIST A1-A14, A16-A19, A31: message framing, as raw bytes. For each case: what the
// client gets, and what a raw-socket upstream receives (nothing for a refused request, the
// exact bytes for an accepted one).
import t from 'tap'
import { exchange, forwarded, gatewayFor, startRawUpstream, STUB_RESPONSE, withoutFraming } from './helpers.js'
import type { Exchange, RawUpstream } from './helpers.js'
import type { Test } from 'tap'

const b = (s: string): Buffer => Buffer.from(s, 'latin1')

const up = await startRawUpstream(t)
const gw = await gatewayFor(t, up)

/** A refused request: one final answer `status`, the connection closed, nothing upstream. */
async function refused (tt: Test, label: string, bytes: string | Buffer | Array<string | Buffer>, status: number, opts: { end?: boolean, gapMs?: number, partialOk?: boolean } = {}): Promise<Exchange> {
  const mark = up.mark()
  const ex = await exchange(gw.port, bytes, { ms: 4000, ...opts })
  tt.equal(ex.finals[0]?.status, status, `${label}: ${status}`)
  tt.equal(ex.finals.length, 1, `${label}: one answer`)
  tt.ok(ex.closed, `${label}: connection closed`)
  if (status >= 400 && ex.finals[0] !== undefined) tt.match(ex.finals[0].headers['content-type'] ?? '', /problem\+json/, `${label}: problem+json`)
  const seen = up.since(mark)
  tt.equal(seen.requests.length, 0, `${label}: the upstream received no request`)
  if (opts.partialOk === true) {
    // A body refused in a later packet than its head: whatever the upstream got of it was cut
    // off (the stub records leftovers only when their connection closes), never completed.
    for (const p of seen.partial) tt.notMatch(p.toString('latin1'), /\r\n0\r\n\r\n$/, `${label}: the cut request never ends`)
  } else {
    tt.equal(seen.bytes, 0, `${label}: the upstream received no bytes`)
  }
  return ex
}

t.test('A1-A7: Content-Length and Transfer-Encoding that llhttp refuses', async (t) => {
  const cases: Array<[string, string, number]> = [
    ['A1 CL + TE', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['A1 TE + CL', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n', 400],
    ['A2 CL 1 + CL 2', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400],
    ['A2 CL 0 + CL 31 + smuggled GET', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 31\r\n\r\nGET /evil HTTP/1.1\r\nHost: a\r\n\r\n', 400],
    ['A2 CL 5 twice', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 400],
    ['A3 empty CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n', 400],
    ['A3 empty CL then CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\nContent-Length: 5\r\n\r\nhello', 400],
    ['A4 +1_0', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1_0\r\n\r\n0123456789', 400],
    ['A4 +10', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +10\r\n\r\n0123456789', 400],
    ['A4 0x10', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n0123456789abcdef', 400],
    ['A4 1Z', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1Z\r\n\r\nx', 400],
    ['A4 -48', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -48\r\n\r\n', 400],
    ['A4 4 2', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4 2\r\n\r\n0123', 400],
    ['A4 1,1', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\nx', 400],
    ['A5 CL 2^64', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n', 400],
    ['A6 TE chunked twice', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['A6 TE chunked, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n', 400],
    ['A7 chunked, gzip', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n', 400],
    ['A7 gzip', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n', 400],
    ['A7 pigeons', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: pigeons\r\n\r\n0\r\n\r\n', 400],
    ['A7 chunkedchunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedchunked\r\n\r\n0\r\n\r\n', 400],
    ['A7 ,chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n', 400],
    ['A7 \\xa0chunked\\xa0', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \xa0chunked\xa0\r\n\r\n0\r\n\r\n', 400],
    ['A7 \\xffchunked\\xff', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \xffchunked\xff\r\n\r\n0\r\n\r\n', 400],
    ['A7 chunked then gzip lines', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n', 400],
    ['A7 "chunked"', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n', 400]
  ]
  for (const [label, bytes, status] of cases) await refused(t, label, b(bytes), status)
})

t.test('A7b: a coding llhttp accepts but the gateway does not implement is 501, never forwarded', async (t) => {
  await refused(t, 'gzip, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501)
  await refused(t, 'gzip line + chunked line', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 501)
  await refused(t, 'identity, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 501)
  const ex = await refused(t, 'deflate, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: deflate , chunked\r\n\r\n0\r\n\r\n', 501)
  t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { status: 501, code: 'GW_NOT_IMPLEMENTED' })
  await refused(t, 'empty element before chunked (400)', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,,chunked\r\n\r\n0\r\n\r\n', 400)
})

t.test('A9-A12: obs-fold, whitespace, bare CR/LF, NUL, bad names', async (t) => {
  const cases: Array<[string, string]> = [
    ['A9 obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n'],
    ['A9 TE obs-fold', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n  abc\r\n\r\n0\r\n\r\n'],
    ['A10 space before colon', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 34\r\n\r\n'],
    ['A10 tab-led first header', 'POST / HTTP/1.1\r\n\tContent-Length: 1\r\nHost: a\r\n\r\nx'],
    ['A11 bare LF endings', 'GET / HTTP/1.1\nHost: a\n\n'],
    ['A11 bare LF in the head', 'GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n'],
    ['A11 bare CR in a value', 'GET / HTTP/1.1\r\nHost: a\r\nVisible: :/\rSmuggled: :)\r\n\r\n'],
    ['A11 va\\rlue', 'GET / HTTP/1.1\r\nHost: a\r\nX: va\rlue\r\n\r\n'],
    ['A11 NUL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: v\x00alue\r\n\r\n'],
    ['A11 \\r\\n\\rZ ending the head', 'GET / HTTP/1.1\r\nHost: a\r\n\rZ\r\n\r\n'],
    ['A12 name \\xefoo', 'GET / HTTP/1.1\r\nHost: a\r\n\xefoo: x\r\n\r\n'],
    ['A12 empty name', 'GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n'],
    ['A12 colon alone', 'GET / HTTP/1.1\r\nHost: a\r\n:\r\n\r\n'],
    ['A12 Header\\x85', 'GET / HTTP/1.1\r\nHost: a\r\nHeader\x85: v\r\n\r\n'],
    ['A12 no colon', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length 10\r\n\r\n0123456789'],
    ['A12 name across lines', 'GET / HTTP/1.1\r\nHost: a\r\nX-Fo\r\no: bar\r\n\r\n']
  ]
  for (const [label, bytes] of cases) await refused(t, label, b(bytes), 400)
})

t.test('A13-A14: chunked body errors', async (t) => {
  const head = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'
  const cases: Array<[string, string]> = [
    ['size 0_2e', '0_2e\r\n\r\n'],
    ['size -0x0', '-0x0\r\n\r\n'],
    ['size +1', '+1\r\nx\r\n0\r\n\r\n'],
    ['size with leading spaces', '  5\r\nhello\r\n0\r\n\r\n'],
    ['size 1garbage', '1garbage\r\nx\r\n0\r\n\r\n'],
    ['chunk data with no CRLF', '5\r\nhelloXX0\r\n\r\n'],
    ['bare-LF chunk terminator', '5\nhello\n0\n\n'],
    ['5\\r\\r;ABCD', '5\r\r;ABCD\r\nhello\r\n0\r\n\r\n'],
    ['size 0x5', '0x5\r\nhello\r\n0\r\n\r\n']
  ]
  for (const [label, body] of cases) await refused(t, `A13 ${label}`, head + body, 400)
  // Missing last chunk: the body never ends; the client gives up (half-close). The gateway
  // answers 400 and whatever reached the upstream is cut, never a complete request.
  await refused(t, 'A13 missing last chunk', [head, '5\r\nhello\r\n'], 400, { end: true, gapMs: 100, partialOk: true })
  // The error in a later packet than the first body bytes: the request is cut upstream.
  await refused(t, 'A13 bad chunk in a later packet', [head + '5\r\nhello\r\n', 'zz\r\n'], 400, { gapMs: 100, partialOk: true })
  // A14: a megabyte of chunk extensions (CVE-2024-22019): 413 (llhttp's limit), closed.
  const ext = ';a=b'.repeat(262144)
  await refused(t, 'A14 1 MiB of chunk extensions', [head + '1' + ext.slice(0, 65536), ext.slice(65536) + '\r\nx\r\n0\r\n\r\n'], 413)
})

t.test('A15 HTTP versions and request lines llhttp refuses', async (t) => {
  for (const line of ['GET / HTTP/1.32', 'GET / HTTP/4294967295.255', 'GET /\nHTTP/1.1', 'G=":<>(e)" / HTTP/1.1', 'GET ! HTTP/1.1', 'PRI * HTTP/1.1', 'GET / HTTP/1.1 ', 'GET /\tHTTP/1.1', 'GET / HTTP/3.1']) {
    const ex = await refused(t, JSON.stringify(line), `${line}\r\nHost: a\r\n\r\n`, 400)
    t.match(ex.finals[0]?.body ?? '', /GW_BAD_REQUEST/)
  }
  // Versions llhttp parses but HTTP/1 is not: 505.
  for (const line of ['GET / HTTP/2.0', 'GET / HTTP/0.9']) {
    const ex = await refused(t, JSON.stringify(line), `${line}\r\nHost: a\r\n\r\n`, 505)
    t.match(ex.finals[0]?.body ?? '', /GW_VERSION_NOT_SUPPORTED/)
  }
})

t.test('A16-A18: what is accepted reaches the upstream byte for byte', async (t) => {
  // A16: Connection: close, then more bytes: only the first request is served.
  let mark = up.mark()
  let ex = await exchange(gw.port, 'GET /a16 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /a16-more HTTP/1.1\r\nHost: a\r\n\r\n', { ms: 3000 })
  t.equal(ex.finals.length, 1, 'A16: one answer')
  t.equal(ex.finals[0]?.status, 200)
  t.equal(ex.finals[0]?.headers.connection, 'close')
  t.ok(ex.closed, 'A16: then the connection closes')
  let seen = up.since(mark)
  t.equal(seen.requests.length, 1, 'A16: one request upstream')
  t.equal(seen.requests[0]?.bytes.toString('latin1'), forwarded({ method: 'GET', target: '/a16', upstreamPort: up.port, gatewayPort: gw.port }), 'A16: exact bytes')
  t.equal(seen.bytes, seen.requests[0]?.bytes.length, 'A16: nothing else')

  // A17: three pipelined requests in one packet, in order, with their bodies.
  const body34 = 'a'.repeat(34)
  mark = up.mark()
  ex = await exchange(gw.port, 'POST /p1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n' +
    `POST /p2 HTTP/1.1\r\nHost: a\r\nContent-Length: 34\r\n\r\n${body34}` +
    'GET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', { ms: 3000 })
  t.same(ex.finals.map((r) => r.status), [200, 200, 200], 'A17: three answers')
  seen = up.since(mark)
  const byTarget = new Map(seen.requests.map((r) => [r.target, r]))
  t.equal(seen.requests.length, 3, 'A17: three requests upstream')
  t.equal(byTarget.get('/p1')?.bytes.toString('latin1'), forwarded({ method: 'POST', target: '/p1', upstreamPort: up.port, gatewayPort: gw.port, body: '' }), 'A17: POST CL 0 exact')
  t.equal(byTarget.get('/p2')?.bytes.toString('latin1'), forwarded({ method: 'POST', target: '/p2', upstreamPort: up.port, gatewayPort: gw.port, body: body34 }), 'A17: POST CL 34 exact')
  t.equal(byTarget.get('/p3')?.bytes.toString('latin1'), forwarded({ method: 'GET', target: '/p3', upstreamPort: up.port, gatewayPort: gw.port }), 'A17: GET exact')
  t.equal(seen.bytes, seen.requests.reduce((n, r) => n + r.bytes.length, 0), 'A17: nothing else')

  // A18: GET with a body: forwarded with its Content-Length and body.
  mark = up.mark()
  ex = await exchange(gw.port, 'GET /a18 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789', { finals: 1 })
  t.equal(ex.finals[0]?.status, 200)
  await up.waitFor(mark.requests + 1)
  seen = up.since(mark)
  t.equal(seen.requests[0]?.bytes.toString('latin1'), forwarded({ method: 'GET', target: '/a18', upstreamPort: up.port, gatewayPort: gw.port, body: '0123456789' }), 'A18: body and its length kept')

  // A chunked body: re-framed by the gateway, never with two framings; the body is exact.
  mark = up.mark()
  ex = await exchange(gw.port, 'POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n', { finals: 1 })
  t.equal(ex.finals[0]?.status, 200)
  await up.waitFor(mark.requests + 1)
  seen = up.since(mark)
  const r = seen.requests[0]
  t.ok(r !== undefined && r.framing !== 'none', `chunked: one framing upstream (${r?.framing})`)
  const expectedHead = forwarded({ method: 'POST', target: '/chunked', upstreamPort: up.port, gatewayPort: gw.port }).slice(0, -2)
  t.same(r === undefined ? undefined : withoutFraming(r), { head: expectedHead, body: 'hello world' }, 'chunked: head and body exact; no extension, no trailer passed on')
})

t.test('a refusal in the middle of a pipeline: what came before is answered, nothing after is served', async (t) => {
  const cases: Array<[string, string, number]> = [
    ['underscore header', 'GET /two HTTP/1.1\r\nHost: a\r\nX_User: admin\r\n\r\n', 400],
    ['absolute-form for another host', 'GET http://b.example/two HTTP/1.1\r\nHost: a\r\n\r\n', 400],
    ['gzip, chunked', 'POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501],
    ['two Authorization', 'GET /two HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n', 400],
    ['parse error', 'GET /two HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400]
  ]
  for (const [label, second, status] of cases) {
    const mark = up.mark()
    const ex = await exchange(gw.port, 'GET /one HTTP/1.1\r\nHost: a\r\n\r\n' + second + 'GET /three HTTP/1.1\r\nHost: a\r\n\r\n', { ms: 4000 })
    t.same(ex.finals.map((r) => r.status), [200, status], `${label}: the first answered, then the refusal`)
    t.ok(ex.closed, `${label}: closed`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    t.same(up.since(mark).requests.map((r) => r.target), ['/one'], `${label}: only the first reached the upstream`)
  }
})

t.test('A19: HTTP/1.0 with Transfer-Encoding is refused', async (t) => {
  await refused(t, 'HTTP/1.0 + chunked', 'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400)
  // HTTP/1.0 with Content-Length is fine, and closes after the answer.
  const mark = up.mark()
  const ex = await exchange(gw.port, 'POST /h10 HTTP/1.0\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello')
  t.equal(ex.finals[0]?.status, 200)
  t.ok(ex.closed)
  t.equal(up.since(mark).requests[0]?.bytes.toString('latin1'), forwarded({ method: 'POST', target: '/h10', upstreamPort: up.port, gatewayPort: gw.port, body: 'hello' }))
})

// A8: smuggler's Transfer-Encoding mutations, in CL.TE and TE.CL shapes. Every case is tagged
// by its path, so upstream requests map back to it. Whatever the gateway makes of a case, the
// upstream must receive exactly the requests the client got a 200 for, framed once, and
// never a header that an upstream could read as Transfer-Encoding or Content-Length.
t.test('A8: Transfer-Encoding mutations never desynchronize gateway and upstream', async (t) => {
  const mutations: Array<[string, string]> = [
    ['nameprefix1', ' Transfer-Encoding: chunked'], ['tabprefix1', 'Transfer-Encoding:\tchunked'],
    ['tabprefix2', 'Transfer-Encoding\t:\tchunked'], ['space1', 'Transfer-Encoding : chunked'],
    ['spacejoin1', 'Transfer Encoding: chunked'], ['underjoin1', 'Transfer_Encoding: chunked'],
    ['smashed', 'Transfer Encoding:chunked'], ['valueprefix1', 'Transfer-Encoding:  chunked'],
    ['vertprefix1', 'Transfer-Encoding:\x0bchunked'], ['commaCow', 'Transfer-Encoding: chunked, cow'],
    ['cowComma', 'Transfer-Encoding: cow, chunked'], ['contentEnc', 'Content-Encoding: chunked'],
    ['linewrapped1', 'Transfer-Encoding:\n chunked'], ['quoted', 'Transfer-Encoding: "chunked"'],
    ['aposed', "Transfer-Encoding: 'chunked'"], ['lazygrep', 'Transfer-Encoding: chunk'],
    ['sarcasm', 'TrAnSFer-EnCODinG: cHuNkeD'], ['yelling', 'TRANSFER-ENCODING: CHUNKED'],
    ['0dsuffix', 'Transfer-Encoding: chunked\r'], ['tabsuffix', 'Transfer-Encoding: chunked\t'],
    ['revdualchunk', 'Transfer-Encoding: cow\r\nTransfer-Encoding: chunked'], ['nested', 'Transfer-Encoding: cow chunked bar'],
    ['spaceFF', 'Transfer-Encoding:\xffchunked'], ['unispace', 'Transfer-Encoding:\xa0chunked'],
    ['accentTE', 'Transf\x82r-Encoding: chunked'], ['x-rout', 'X:X\rTransfer-Encoding: chunked'],
    ['x-nout', 'X:X\nTransfer-Encoding: chunked'], ['plain', 'Transfer-Encoding: chunked']
  ]
  const bytes: number[] = []
  for (let c = 0x01; c <= 0x1f; c++) bytes.push(c)
  for (let c = 0x7f; c <= 0xff; c++) bytes.push(c)
  for (const c of bytes) {
    const x = String.fromCharCode(c)
    const hex = c.toString(16).padStart(2, '0')
    mutations.push(
      [`prespace-${hex}`, `${x}Transfer-Encoding: chunked`], [`postspace-${hex}`, `Transfer-Encoding${x}: chunked`],
      [`midspace-${hex}`, `Transfer-Encoding:${x}chunked`], [`endspace-${hex}`, `Transfer-Encoding: chunked${x}`],
      [`xprespace-${hex}`, `X: X${x}Transfer-Encoding: chunked`], [`endspacex-${hex}`, `Transfer-Encoding: chunked${x}X: X`],
      [`rxprespace-${hex}`, `X: X\r${x}Transfer-Encoding: chunked`], [`xnprespace-${hex}`, `X: X${x}\nTransfer-Encoding: chunked`],
      [`endspacerx-${hex}`, `Transfer-Encoding: chunked\r${x}X: X`], [`endspacexn-${hex}`, `Transfer-Encoding: chunked${x}\nX: X`]
    )
  }
  const cases: Array<{ tag: string, name: string, bytes: Buffer }> = []
  mutations.forEach(([name, te], i) => {
    // CL.TE: by Content-Length the smuggled GET is body; by TE it is a second request.
    const smuggled = `GET /c${i}a/smuggled HTTP/1.1\r\nHost: a\r\n\r\n`
    const clte = `0\r\n\r\n${smuggled}`
    cases.push({ tag: `c${i}a`, name: `CL.TE ${name}`, bytes: b(`POST /c${i}a HTTP/1.1\r\nHost: a\r\nContent-Length: ${clte.length}\r\n${te}\r\n\r\n${clte}GET /c${i}a/end HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`) })
    // TE.CL: by TE the body is one chunk; by Content-Length it is 4 bytes and a garbage tail.
    const tecl = `1\r\nZ\r\n0\r\n\r\n`
    cases.push({ tag: `c${i}b`, name: `TE.CL ${name}`, bytes: b(`POST /c${i}b HTTP/1.1\r\nHost: a\r\n${te}\r\nContent-Length: 4\r\n\r\n${tecl}GET /c${i}b/end HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`) })
  })
  const mark = up.mark()
  const results = new Map<string, Exchange>()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const c = cases[next++] as (typeof cases)[number]
      results.set(c.tag, await exchange(gw.port, c.bytes, { ms: 3000 }))
    }
  }
  await Promise.all(Array.from({ length: 12 }, worker))
  // Every request a client got a 200 for has reached the upstream by now, or will shortly.
  const oks = [...results.values()].reduce((n, ex) => n + ex.finals.filter((r) => r.status === 200).length, 0)
  await up.waitFor(mark.requests + oks, 10_000)
  const seen = up.since(mark)
  t.equal(seen.requests.length, oks, `the upstream received exactly the ${oks} requests the gateway answered 200 (of ${cases.length} cases)`)
  t.same(up.errors, [], 'every upstream request was framed once, cleanly')
  const perTag = new Map<string, number>()
  for (const r of seen.requests) {
    const tag = /^\/(c\d+[ab])/.exec(r.target)?.[1] ?? '?'
    perTag.set(tag, (perTag.get(tag) ?? 0) + 1)
  }
  let mismatched = 0
  let refusedCases = 0
  let acceptedCases = 0
  for (const c of cases) {
    const ex = results.get(c.tag) as Exchange
    const ok = ex.finals.filter((r) => r.status === 200).length
    if (ok === 0) refusedCases++
    else acceptedCases++
    if (ex.finals.some((r) => r.status !== 200 && r.status !== 400 && r.status !== 501)) { mismatched++; t.fail(`${c.name}: unexpected status ${ex.finals.map((r) => r.status).join(',')}`) }
    if ((perTag.get(c.tag) ?? 0) !== ok) { mismatched++; t.fail(`${c.name}: client got ${ok} x 200, upstream saw ${perTag.get(c.tag) ?? 0}`) }
  }
  t.equal(mismatched, 0, `no differential mismatch (${refusedCases} cases refused, ${acceptedCases} accepted)`)
  const framingLike = seen.requests.flatMap((r) => r.headers.filter(([n]) => {
    const k = n.toLowerCase().replace(/_/g, '-').trim()
    return k.includes('transfer') || (k === 'content-length' && r.framing !== 'length')
  }).map(([n, v]) => `${r.target}: ${n}: ${v}`))
  t.same(framingLike, [], 'no Transfer-Encoding look-alike reached the upstream')
  t.same(seen.partial, [], 'no request was left half-sent')
})

// A31: an upstream whose response framing is ambiguous: 502, and that connection is dropped.
t.test('A31: bad upstream framing is a 502 and the upstream connection is discarded', async (t) => {
  const bad: Record<string, string> = {
    '/te-cl': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    '/te-twice': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n',
    '/te-lines': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    '/cl-twice': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!',
    '/obs-fold': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: a\r\n b\r\n\r\nok',
    '/gzip-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    '/gzip': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok',
    '/cl-plus': 'HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok',
    '/bare-lf': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok'
  }
  const upBad: RawUpstream = await startRawUpstream(t, { respond: (req) => bad[req.target] ?? STUB_RESPONSE })
  const gwBad = await gatewayFor(t, upBad)
  for (const path of Object.keys(bad)) {
    const conns = upBad.connections()
    const closedBefore = upBad.closed()
    const ex = await exchange(gwBad.port, `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`, { finals: 1 })
    t.equal(ex.finals[0]?.status, 502, `${path}: 502`)
    t.match(JSON.parse(ex.finals[0]?.body ?? '{}'), { code: 'GW_UPSTREAM_BAD_RESPONSE' }, `${path}: GW_UPSTREAM_BAD_RESPONSE`)
    for (let i = 0; i < 40 && upBad.closed() === closedBefore; i++) await new Promise((resolve) => setTimeout(resolve, 25))
    t.ok(upBad.closed() > closedBefore, `${path}: the gateway closed that upstream connection`)
    const after = await exchange(gwBad.port, 'GET /fine HTTP/1.1\r\nHost: a\r\n\r\n', { finals: 1 })
    t.equal(after.finals[0]?.status, 200, `${path}: the next request is served`)
    t.ok(upBad.connections() > conns, `${path}: on a new upstream connection`)
    t.equal(upBad.requests.at(-1)?.target, '/fine')
  }
})

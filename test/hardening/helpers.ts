// Shared by the HTTP-hardening tests: a raw TCP upstream that records the exact bytes it
// receives, a raw TCP client, and the exact bytes the gateway is expected to send upstream.
// Every server binds 127.0.0.1 and is closed in t.teardown; every wait is bounded.
import { connect, createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { startGateway } from '../helpers/gateway.js'
import type { RunningGateway } from '../helpers/gateway.js'

interface Tap {
  teardown: (fn: () => void | Promise<void>) => void
  testdir: (fixture?: Record<string, string>) => string
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** One complete request as the upstream received it. */
export interface StubRequest {
  /** Which upstream connection it came on (1, 2, ...). */
  conn: number
  /** `GET /x HTTP/1.1` */
  requestLine: string
  method: string
  target: string
  /** Header lines as sent, name and value (value without surrounding whitespace). */
  headers: Array<[string, string]>
  framing: 'none' | 'length' | 'chunked'
  body: Buffer
  /** Every byte of this request, exactly as received. */
  bytes: Buffer
}

export interface Mark { requests: number, bytes: number, partial: number }

export interface RawUpstream {
  port: number
  url: string
  requests: StubRequest[]
  /** Connections accepted so far. */
  connections: () => number
  /** Connections that have closed so far. */
  closed: () => number
  /** Bytes of a request left incomplete when its connection closed (a request cut short). */
  partial: Buffer[]
  /** Bytes the stub could not read as undici-framed HTTP/1.1 (never expected). */
  errors: string[]
  /** Every byte received, in arrival order across connections. */
  total: () => number
  mark: () => Mark
  since: (m: Mark) => { requests: StubRequest[], bytes: number, partial: Buffer[] }
  /** Wait until `n` complete requests in all (bounded). */
  waitFor: (n: number, ms?: number) => Promise<void>
}

export const STUB_RESPONSE = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok'

type Parsed = { end: number, body: Buffer } | 'incomplete' | string

function parseChunked (buf: Buffer, from: number): Parsed {
  const parts: Buffer[] = []
  let pos = from
  for (let guard = 0; guard < 100_000; guard++) {
    const eol = buf.indexOf('\r\n', pos)
    if (eol === -1) return buf.length - pos > 20 ? 'chunk size line too long' : 'incomplete'
    const line = buf.subarray(pos, eol).toString('latin1')
    if (!/^[0-9a-f]+$/i.test(line)) return `bad chunk size line ${JSON.stringify(line)}`
    const size = parseInt(line, 16)
    const dataStart = eol + 2
    if (size === 0) {
      if (buf.length < dataStart + 2) return 'incomplete'
      if (buf.subarray(dataStart, dataStart + 2).toString('latin1') !== '\r\n') return 'trailers or garbage after the last chunk'
      return { end: dataStart + 2, body: Buffer.concat(parts) }
    }
    if (buf.length < dataStart + size + 2) return 'incomplete'
    parts.push(buf.subarray(dataStart, dataStart + size))
    if (buf.subarray(dataStart + size, dataStart + size + 2).toString('latin1') !== '\r\n') return 'chunk data not followed by CRLF'
    pos = dataStart + size + 2
  }
  return 'too many chunks'
}

/**
 * Parse one request from the front of `buf` the way undici frames requests (Content-Length
 * or chunked, never both, no obs-fold, no bare LF). Anything else is an error string.
 */
function parseRequest (buf: Buffer, conn: number): { req: StubRequest, rest: Buffer } | 'incomplete' | string {
  const headEnd = buf.indexOf('\r\n\r\n')
  if (headEnd === -1) return buf.length > 65536 ? 'head too long' : 'incomplete'
  const head = buf.subarray(0, headEnd).toString('latin1')
  const lines = head.split('\r\n')
  const requestLine = lines[0] as string
  const m = /^([A-Z]+) (\S+) HTTP\/1\.1$/.exec(requestLine)
  if (m === null) return `bad request line ${JSON.stringify(requestLine)}`
  if (head.includes('\n') && lines.some((l) => l.includes('\n') || l.includes('\r'))) return 'bare CR or LF in the head'
  const headers: Array<[string, string]> = []
  for (const l of lines.slice(1)) {
    const colon = l.indexOf(':')
    const name = colon === -1 ? '' : l.slice(0, colon)
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) return `bad header line ${JSON.stringify(l)}`
    headers.push([name, l.slice(colon + 1).trim()])
  }
  const cl = headers.filter(([n]) => n.toLowerCase() === 'content-length')
  const te = headers.filter(([n]) => n.toLowerCase() === 'transfer-encoding')
  if (cl.length > 1 || te.length > 1 || (cl.length === 1 && te.length === 1)) return 'ambiguous framing (CL and TE, or one of them twice)'
  const bodyStart = headEnd + 4
  let framing: StubRequest['framing'] = 'none'
  let end = bodyStart
  let body = Buffer.alloc(0)
  if (te.length === 1) {
    if ((te[0] as [string, string])[1] !== 'chunked') return `transfer-encoding ${(te[0] as [string, string])[1]}`
    const p = parseChunked(buf, bodyStart)
    if (typeof p === 'string') return p
    framing = 'chunked'
    end = p.end
    body = p.body
  } else if (cl.length === 1) {
    const v = (cl[0] as [string, string])[1]
    if (!/^[0-9]+$/.test(v)) return `bad content-length ${v}`
    const n = Number(v)
    if (buf.length < bodyStart + n) return 'incomplete'
    framing = 'length'
    end = bodyStart + n
    body = Buffer.from(buf.subarray(bodyStart, end))
  }
  const req: StubRequest = { conn, requestLine, method: m[1] as string, target: m[2] as string, headers, framing, body, bytes: Buffer.from(buf.subarray(0, end)) }
  return { req, rest: buf.subarray(end) }
}

/**
 * A raw TCP upstream on 127.0.0.1: records exactly what arrives, splits it into requests with
 * a strict reader of undici's framing, and answers each with STUB_RESPONSE (or `respond`'s
 * bytes; `respond` may also write and close the socket itself and return null).
 */
export async function startRawUpstream (t: Tap, opts: { respond?: (req: StubRequest, socket: Socket) => string | Buffer | null } = {}): Promise<RawUpstream> {
  const requests: StubRequest[] = []
  const partial: Buffer[] = []
  const errors: string[] = []
  const sockets = new Set<Socket>()
  let connections = 0
  let closed = 0
  let total = 0
  const waiters: Array<() => void> = []
  const server = createServer((socket) => {
    const conn = ++connections
    sockets.add(socket)
    let buf = Buffer.alloc(0)
    let broken = false
    socket.on('data', (d: Buffer) => {
      total += d.length
      if (broken) return
      buf = buf.length === 0 ? d : Buffer.concat([buf, d])
      for (let i = 0; i < 1000 && buf.length > 0; i++) {
        const p = parseRequest(buf, conn)
        if (p === 'incomplete') break
        if (typeof p === 'string') {
          errors.push(`connection ${conn}: ${p}: ${JSON.stringify(buf.subarray(0, 300).toString('latin1'))}`)
          broken = true
          socket.destroy()
          return
        }
        requests.push(p.req)
        buf = p.rest
        const answer = opts.respond === undefined ? STUB_RESPONSE : opts.respond(p.req, socket)
        if (answer !== null && !socket.destroyed) socket.write(answer)
        for (const w of waiters.splice(0)) w()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      closed++
      sockets.delete(socket)
      if (buf.length > 0 && !broken) partial.push(buf)
      for (const w of waiters.splice(0)) w()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  }))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    partial,
    errors,
    connections: () => connections,
    closed: () => closed,
    total: () => total,
    mark: () => ({ requests: requests.length, bytes: total, partial: partial.length }),
    since: (m) => ({ requests: requests.slice(m.requests), bytes: total - m.bytes, partial: partial.slice(m.partial) }),
    waitFor: async (n, ms = 5000) => {
      const until = Date.now() + ms
      while (requests.length < n && Date.now() < until) {
        await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), sleep(50)])
      }
    }
  }
}

/** A response as the client read it. */
export interface ClientResponse { status: number, reason: string, headers: Record<string, string>, rawHead: string, body: string }

export interface Exchange {
  /** Everything the client received, latin1. */
  raw: string
  /** Complete responses, in order (1xx included). */
  responses: ClientResponse[]
  /** Final (non-1xx) responses only. */
  finals: ClientResponse[]
  /** The server closed the connection (FIN or reset) before we gave up waiting. */
  closed: boolean
  /** Milliseconds from the first write to the close (or to giving up). */
  ms: number
  reset: boolean
}

/** Complete responses at the front of `raw` (Content-Length, chunked, or no body). */
export function parseResponses (raw: string): ClientResponse[] {
  const out: ClientResponse[] = []
  let pos = 0
  for (let guard = 0; guard < 1000; guard++) {
    const headEnd = raw.indexOf('\r\n\r\n', pos)
    if (headEnd === -1) break
    const rawHead = raw.slice(pos, headEnd)
    const [statusLine, ...lines] = rawHead.split('\r\n')
    const m = /^HTTP\/1\.1 (\d{3}) ?(.*)$/.exec(statusLine ?? '')
    if (m === null) break
    const status = Number(m[1])
    const headers: Record<string, string> = {}
    for (const l of lines) {
      const c = l.indexOf(':')
      const k = l.slice(0, c).toLowerCase()
      headers[k] = headers[k] === undefined ? l.slice(c + 1).trim() : `${headers[k]}, ${l.slice(c + 1).trim()}`
    }
    let end = headEnd + 4
    let body = ''
    if (status >= 200 && status !== 204 && status !== 304) {
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length'])
        if (raw.length < end + n) break
        body = raw.slice(end, end + n)
        end += n
      } else if (headers['transfer-encoding'] === 'chunked') {
        let p = end
        let done = false
        while (true) {
          const eol = raw.indexOf('\r\n', p)
          if (eol === -1) break
          const size = parseInt(raw.slice(p, eol), 16)
          if (size === 0) {
            const fin = raw.indexOf('\r\n', eol + 2)
            if (fin === -1) break
            end = fin + 2
            done = true
            break
          }
          if (raw.length < eol + 2 + size + 2) break
          body += raw.slice(eol + 2, eol + 2 + size)
          p = eol + 2 + size + 2
        }
        if (!done) break
      } else {
        // Read to the close: only complete when the caller knows the connection ended.
        body = raw.slice(end)
        end = raw.length
      }
    }
    out.push({ status, reason: m[2] ?? '', headers, rawHead, body })
    pos = end
  }
  return out
}

/**
 * Send raw bytes over one TCP connection and read what comes back. `parts` are written in
 * order, `gapMs` apart. Resolves when the server closes the connection, when `finals` final
 * responses have arrived (and `waitClose` is not set), or after `ms`; the socket is then
 * destroyed. `end` half-closes our side after the last part.
 */
export function exchange (port: number, parts: string | Buffer | Array<string | Buffer>, opts: { finals?: number, ms?: number, gapMs?: number, waitClose?: boolean, end?: boolean } = {}): Promise<Exchange> {
  const list = Array.isArray(parts) ? parts : [parts]
  const ms = opts.ms ?? 3000
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    let raw = ''
    let settled = false
    let reset = false
    const start = Date.now()
    const finish = (closed: boolean): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      s.destroy()
      const responses = parseResponses(raw)
      resolve({ raw, responses, finals: responses.filter((r) => r.status >= 200), closed, ms: Date.now() - start, reset })
    }
    const timer = setTimeout(() => finish(false), ms)
    s.on('data', (d: Buffer) => {
      raw += d.toString('latin1')
      if (opts.finals !== undefined && opts.waitClose !== true && parseResponses(raw).filter((r) => r.status >= 200).length >= opts.finals) finish(false)
    })
    s.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'ECONNRESET') reset = true })
    s.on('close', () => finish(true))
    s.on('end', () => finish(true))
    s.once('connect', () => {
      void (async () => {
        for (let i = 0; i < list.length; i++) {
          if (s.destroyed) return
          s.write(list[i] as string | Buffer)
          if (opts.gapMs !== undefined && i < list.length - 1) await sleep(opts.gapMs)
        }
        if (opts.end === true && !s.destroyed) s.end()
      })()
    })
  })
}

/** The fixed headers the gateway adds, in the order it sends them (after the client's). */
export function gatewayHeaders (gatewayPort: number, clientHost: string | undefined): string {
  return 'x-forwarded-for: 127.0.0.1\r\n' +
    'x-real-ip: 127.0.0.1\r\n' +
    'x-forwarded-proto: http\r\n' +
    `x-forwarded-port: ${gatewayPort}\r\n` +
    (clientHost === undefined ? '' : `x-forwarded-host: ${clientHost}\r\n`)
}

/**
 * The exact bytes the gateway sends upstream for an accepted request: undici's request line,
 * Host and Connection first, then the client's end-to-end headers in order, then the
 * gateway's own, then the framing the gateway chose (Content-Length for a body it knows the
 * length of) and the body.
 */
export function forwarded (o: { method: string, target: string, upstreamPort: number, gatewayPort: number, host?: string, headers?: Array<[string, string]>, body?: string }): string {
  const lines = (o.headers ?? []).map(([n, v]) => `${n}: ${v}\r\n`).join('')
  const framing = o.body === undefined ? '' : `content-length: ${Buffer.byteLength(o.body, 'latin1')}\r\n`
  return `${o.method} ${o.target} HTTP/1.1\r\n` +
    `host: 127.0.0.1:${o.upstreamPort}\r\n` +
    'connection: keep-alive\r\n' +
    lines + gatewayHeaders(o.gatewayPort, o.host === undefined ? 'a' : o.host) + framing + '\r\n' + (o.body ?? '')
}

/** A gateway (its own process, 1 worker) in front of `up`, with extra config merged in. */
export async function gatewayFor (t: Tap, up: RawUpstream, extra: Record<string, unknown> = {}): Promise<RunningGateway> {
  return await startGateway(t, {
    config: {
      workers: 1,
      logLevel: 'warn',
      // These tests compare the upstream's bytes exactly; a propagated trace adds a random
      // traceparent line (trace propagation has its own tests: test/tracing.test.ts).
      tracing: { propagate: false },
      routes: [{ name: 'all', match: { path: '/' }, upstream: up.url }],
      ...extra
    }
  })
}

/** The request line + head of a StubRequest without its framing header, and its body. */
export function withoutFraming (r: StubRequest): { head: string, body: string } {
  const keep = r.headers.filter(([n]) => n !== 'content-length' && n !== 'transfer-encoding')
  return { head: r.requestLine + '\r\n' + keep.map(([n, v]) => `${n}: ${v}\r\n`).join(''), body: r.body.toString('latin1') }
}

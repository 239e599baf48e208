// Upstreams that misbehave on purpose, for the upstream-traffic tests (CHECKLIST G): named
// HTTP targets that say who answered and count concurrency, and raw TCP targets that reset
// or close. Every server binds 127.0.0.1 and is closed in t.teardown.
import { createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Agent, request } from 'undici'
import { startUpstream } from './gateway.js'
import type { Upstream } from './gateway.js'

interface Tap {
  teardown: (fn: () => void | Promise<void>) => void
  testdir: (fixture?: Record<string, string>) => string
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export interface NamedUpstream extends Upstream {
  name: string
  /** Requests answered, and the most seen at once. */
  hits: () => number
  maxConcurrent: () => number
}

/** An HTTP upstream answering its name (or what `handler` does), counting requests in flight. */
export async function named (t: Tap, name: string, handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): Promise<NamedUpstream> {
  let hits = 0
  let inFlight = 0
  let max = 0
  const up = await startUpstream(t, (req, res, body) => {
    hits++
    inFlight++
    max = Math.max(max, inFlight)
    res.once('close', () => { inFlight-- })
    if (handler !== undefined) return handler(req, res, body)
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name })
    res.end(name)
  })
  return { ...up, name, hits: () => hits, maxConcurrent: () => max }
}

export interface RawTarget {
  port: number
  url: string
  /** Complete request heads received (and bodies, as far as Content-Length says). */
  requests: () => Array<{ method: string, conn: number, body: number }>
}

/**
 * A raw TCP upstream: `onRequest(socket, n, method)` is called for each complete request
 * (head, plus a Content-Length body) with its index on the connection (1, 2, ...).
 */
export async function rawTarget (t: Tap, onRequest: (socket: Socket, n: number, method: string) => void): Promise<RawTarget> {
  const seen: Array<{ method: string, conn: number, body: number }> = []
  const sockets = new Set<Socket>()
  let conns = 0
  const server = createServer((socket) => {
    const conn = ++conns
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buf = Buffer.alloc(0)
    let n = 0
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      for (;;) {
        const end = buf.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = buf.subarray(0, end).toString('latin1')
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head)
        const len = cl === null ? 0 : Number(cl[1])
        if (buf.length < end + 4 + len) return
        buf = buf.subarray(end + 4 + len)
        const method = head.slice(0, head.indexOf(' '))
        seen.push({ method, conn, body: len })
        onRequest(socket, ++n, method)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }))
  const port = (server.address() as AddressInfo).port
  return { port, url: `http://127.0.0.1:${port}`, requests: () => seen }
}

/** A client with its own connections, so tests do not share the global pool's sockets. */
export function client (t: Tap, connections = 128): Agent {
  const agent = new Agent({ connections, keepAliveTimeout: 1000 })
  t.teardown(() => agent.close())
  return agent
}

export interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

export async function get (agent: Agent, url: string, opts: { method?: string, body?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await request(url, { dispatcher: agent, method: (opts.method ?? 'GET') as 'GET', body: opts.body, headers: opts.headers })
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

/** `n` requests, `concurrency` at a time; answers in request order. */
export async function many (n: number, concurrency: number, one: (i: number) => Promise<Answer>): Promise<Answer[]> {
  const out: Answer[] = new Array(n)
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++
      out[i] = await one(i)
    }
  }))
  return out
}

export function tally (answers: readonly Answer[], key: (a: Answer) => string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const a of answers) { const k = key(a); out[k] = (out[k] ?? 0) + 1 }
  return out
}

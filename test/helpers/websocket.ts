// A WebSocket echo upstream and client helpers for the websocket tests (the `ws` package).
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'

export interface Tap { teardown: (fn: () => void | Promise<void>) => void }

export interface WsUpstream {
  url: string
  /** Handshakes that reached the upstream (its 'upgrade' event). */
  upgrades: Array<{ url: string, headers: IncomingHttpHeaders }>
  /** Plain requests (no upgrade) that reached it. */
  plain: Array<{ url: string, headers: IncomingHttpHeaders }>
  /** Server-side sockets, in the order they opened. */
  sockets: WebSocket[]
  server: Server
}

/** An echo WebSocket server on 127.0.0.1 that also answers plain requests with 200. */
export async function startWsUpstream (t: Tap): Promise<WsUpstream> {
  const upgrades: WsUpstream['upgrades'] = []
  const plain: WsUpstream['plain'] = []
  const sockets: WebSocket[] = []
  const server = createServer((req, res) => {
    plain.push({ url: req.url ?? '', headers: req.headers })
    res.end('plain')
  })
  server.on('upgrade', (req: IncomingMessage) => { upgrades.push({ url: req.url ?? '', headers: req.headers }) })
  const port = await serveEcho(t, server, sockets)
  return { url: `http://127.0.0.1:${port}`, upgrades, plain, sockets, server }
}

/**
 * Make `server` (http or https) a WebSocket echo server on a free 127.0.0.1 port, its
 * server-side sockets pushed to `sockets`; closed (sockets, server) at teardown.
 */
export async function serveEcho (t: Tap, server: Server | HttpsServer, sockets: WebSocket[]): Promise<number> {
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws) => {
    sockets.push(ws)
    ws.on('message', (data, binary) => ws.send(data, { binary }))
    ws.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const s of sockets) s.terminate()
    wss.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return (server.address() as AddressInfo).port
}

/** Open a client WebSocket; resolves with it once open, or with the refusal's status and body. */
export function open (url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket, status: 101, headers: IncomingHttpHeaders } | { ws: undefined, status: number, headers: IncomingHttpHeaders, body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    let upgradeHeaders: IncomingHttpHeaders = {}
    ws.on('upgrade', (res) => { upgradeHeaders = res.headers })
    ws.once('open', () => resolve({ ws, status: 101, headers: upgradeHeaders }))
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => { ws.terminate(); resolve({ ws: undefined, status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    ws.once('error', reject)
  })
}

/** Wait for an event, failing after `ms` (a bound on the wait, not a speed assertion). */
export async function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms) })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export const closed = (ws: WebSocket): Promise<unknown> => ws.readyState === WebSocket.CLOSED ? Promise.resolve() : once(ws, 'close')
export const KEY = 'ws-test-key-0123456789abcdef'
export const digest = (k: string): string => 'sha256:' + createHash('sha256').update(k).digest('hex')
export const wsUrl = (httpUrl: string, path: string): string => httpUrl.replace(/^http/, 'ws') + path


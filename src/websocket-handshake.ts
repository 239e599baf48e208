import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { hasToken } from './headers.js'

/** RFC 6455 §1.3: appended to the client's key before hashing. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

// Sec-WebSocket-Key: base64 of 16 random bytes, always 24 characters ending in `==`.
const KEY = /^[A-Za-z0-9+/]{22}==$/

/** True when the request asks to become a WebSocket (`Upgrade: websocket`). */
export function wantsWebSocket (req: IncomingMessage): boolean {
  return hasToken(req.headers.upgrade, 'websocket')
}

/** Why a WebSocket opening handshake is refused: the detail, and whether the version was the fault. */
export interface HandshakeProblem { detail: string, version: boolean }

/**
 * The client's opening handshake, as RFC 6455 §4.2.1 requires it: GET over HTTP/1.1,
 * Connection naming `upgrade`, one Sec-WebSocket-Key of 16 bytes, Sec-WebSocket-Version 13.
 * Checked at the gateway so the upstream is never asked to upgrade a request it would refuse.
 */
export function checkHandshake (req: IncomingMessage): HandshakeProblem | undefined {
  if (req.method !== 'GET') return { detail: `a WebSocket handshake must be a GET, not ${req.method ?? '?'}`, version: false }
  if (req.httpVersionMinor < 1) return { detail: 'a WebSocket handshake needs HTTP/1.1', version: false }
  if (!hasToken(req.headers.connection, 'upgrade')) return { detail: 'a WebSocket handshake needs Connection: Upgrade', version: false }
  let keys = 0
  let versions = 0
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase()
    if (name === 'sec-websocket-key') keys++
    else if (name === 'sec-websocket-version') versions++
  }
  const key = req.headers['sec-websocket-key']
  if (keys !== 1 || typeof key !== 'string' || !KEY.test(key.trim())) return { detail: 'a WebSocket handshake needs one Sec-WebSocket-Key of 16 base64 bytes', version: false }
  if (versions !== 1 || req.headers['sec-websocket-version']?.trim() !== '13') return { detail: 'the WebSocket version must be 13', version: true }
  return undefined
}

/** The Sec-WebSocket-Accept an upstream must answer to `key` (RFC 6455 §4.2.2). */
export function acceptFor (key: string): string {
  return createHash('sha1').update(key.trim() + GUID).digest('base64')
}

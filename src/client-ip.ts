import type { IncomingMessage } from 'node:http'
import { CidrList } from './ip/cidr-list.js'
import { formatIp, INVALID, parseIp } from './ip/parse.js'
import type { ClientInfo } from './types.js'

/** How the client address is found (config `clientIp`, global or per route). */
export interface ClientIpConfig {
  /** Peers whose forwarded headers are believed. Empty: the socket peer is the client. */
  trustedProxies: string[]
  /** Which header a trusted peer's claim is read from. */
  header: 'x-forwarded-for' | 'forwarded' | 'x-real-ip'
  /** 0: walk from the right past trusted addresses (nginx real_ip_recursive). N > 0: take
   *  the Nth address from the right (Envoy xff_num_trusted_hops). */
  hops: number
}

/** The client as resolved, plus the clean chain to send upstream. */
export interface ResolvedClient extends ClientInfo {
  /** `X-Forwarded-For` for the upstream: the resolved client, the trusted hops after it, the peer. */
  forwardedFor: string
}

/** A forwarded header is read from the right, never more than this many entries. */
export const MAX_HOPS = 32

const w = new Uint32Array(4)

/** `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]`, `[2001:db8::1]:443`, `2001:db8::1` -> canonical text, or undefined. */
function canonical (entry: string): string | undefined {
  let s = entry
  if (s.startsWith('[')) {
    const end = s.indexOf(']')
    if (end === -1) return undefined
    const rest = s.slice(end + 1)
    if (rest !== '' && !/^:[0-9]{1,5}$/.test(rest)) return undefined
    s = s.slice(1, end)
  } else if (s.indexOf(':') !== -1 && s.indexOf(':') === s.lastIndexOf(':')) {
    // One colon: IPv4 with a port. (IPv6 has two or more.)
    const [host, port] = s.split(':') as [string, string]
    if (!/^[0-9]{1,5}$/.test(port)) return undefined
    s = host
  }
  const family = parseIp(s, w)
  return family === INVALID ? undefined : formatIp(family, w)
}

/** The socket peer, canonical: IPv4-mapped IPv6 as IPv4, zone dropped. */
function peerOf (req: IncomingMessage): string {
  const raw = req.socket.remoteAddress ?? ''
  // The kernel's text is canonical already, save IPv4-mapped IPv6 and zones: skip the parse
  // for the common forms.
  if (raw.indexOf(':') === -1) return raw
  if (raw.startsWith('::ffff:') && raw.indexOf('.') !== -1) return raw.slice(7)
  const family = parseIp(raw, w, true)
  return family === INVALID ? raw : formatIp(family, w)
}

/** `for=` values of a Forwarded header (RFC 7239), in order; invalid ones as ''. */
function forwardedFor (value: string): string[] {
  const out: string[] = []
  for (const element of value.split(',', MAX_HOPS * 4)) {
    let found = ''
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=')
      if (eq === -1) continue
      if (pair.slice(0, eq).trim().toLowerCase() !== 'for') continue
      let v = pair.slice(eq + 1).trim()
      if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1)
      found = v
    }
    out.push(found)
  }
  return out
}

/**
 * Build the resolver for one config: a function from a request to its client. Without
 * trusted proxies it is the socket peer, and any forwarded header the client sent is
 * replaced upstream by the peer alone (CHECKLIST E7). From a trusted peer, the header is
 * read from the right (CHECKLIST E8): past trusted addresses, or exactly `hops` entries; an
 * entry that is not a valid address stops the walk at the last address known good (E9).
 * Bounded: at most MAX_HOPS entries are looked at, whatever the header holds.
 */
export function createClientIpResolver (cfg: ClientIpConfig): (req: IncomingMessage) => ResolvedClient {
  const trusted = new CidrList(cfg.trustedProxies)
  if (trusted.size === 0) {
    return (req) => {
      const peer = peerOf(req)
      return { ip: peer, peerIp: peer, port: req.socket.remotePort ?? 0, forwardedFor: peer }
    }
  }
  const { header, hops } = cfg
  return (req) => {
    const peer = peerOf(req)
    const port = req.socket.remotePort ?? 0
    if (!trusted.contains(peer)) return { ip: peer, peerIp: peer, port, forwardedFor: peer }
    const value = req.headers[header]
    const raw = typeof value === 'string' ? value : Array.isArray(value) ? value.join(', ') : ''
    if (raw === '') return { ip: peer, peerIp: peer, port, forwardedFor: peer }

    let entries: string[]
    if (header === 'x-real-ip') {
      entries = [raw]
    } else if (header === 'forwarded') {
      entries = forwardedFor(raw).slice(-MAX_HOPS)
    } else {
      // Only the rightmost MAX_HOPS entries are split off; the rest is never scanned.
      let start = raw.length
      for (let i = 0; i < MAX_HOPS && start > 0; i++) start = raw.lastIndexOf(',', start - 1)
      entries = raw.slice(start + 1).split(',')
    }

    const walked: string[] = [] // canonical, right to left
    let client = peer
    for (let i = entries.length - 1, n = 1; i >= 0; i--, n++) {
      const ip = canonical((entries[i] as string).trim())
      if (ip === undefined) break // invalid: stop at the last good address
      walked.push(ip)
      client = ip
      if (hops > 0) {
        if (n === hops) break
      } else if (!trusted.contains(ip)) {
        break
      }
    }
    if (hops > 0 && walked.length < hops) {
      // Fewer entries than trusted hops: the header cannot be believed; use the peer.
      return { ip: peer, peerIp: peer, port, forwardedFor: peer }
    }
    walked.reverse()
    walked.push(peer)
    return { ip: client, peerIp: peer, port, forwardedFor: walked.join(', ') }
  }
}

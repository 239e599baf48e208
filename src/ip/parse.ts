/**
 * Strict IP address and CIDR parsing, used for config (refused at load) and at request time
 * (socket peers, X-Forwarded-For entries). One parser, so a policy and its config can never
 * read the same text two ways (CHECKLIST E1-E6):
 *
 *   IPv4      exactly four decimal parts 0-255, no leading zeros: `10.0.0.1`. Refused:
 *             `010.0.0.1` (octal to some parsers), `0x7f.1`, `127.1`, `1234`, `1.2.3.4.`.
 *   IPv6      RFC 4291 text: 1-4 hex digits per group, at most one `::`, an optional dotted
 *             IPv4 tail (strict as above). No brackets, no zone (`%eth0`) unless allowed.
 *   mapped    `::ffff:a.b.c.d` and `::ffff:7b7b:7b7b` are IPv4 (a.b.c.d / 123.123.123.123):
 *             every policy matches them as IPv4 (Node's BlockList does the same).
 *   compat    `::a.b.c.d` (deprecated IPv4-compatible, dotted form only) is IPv4 too, so it
 *             cannot slip past an IPv4 deny list. `::1` and other hex forms stay IPv6.
 *
 * Results go into a caller's Uint32Array (no allocation on the request path): IPv4 in
 * word 0; IPv6 as four big-endian 32-bit words.
 */

export const INVALID = 0
export const V4 = 4
export const V6 = 6
export type Family = typeof INVALID | typeof V4 | typeof V6

const CH_0 = 48
const CH_9 = 57
const CH_DOT = 46
const CH_COLON = 58

/** Parse strict dotted-quad IPv4 in s[from, to); the value as an unsigned 32-bit number, or -1. */
function parse4 (s: string, from: number, to: number): number {
  let value = 0
  let part = 0
  let digits = 0
  let parts = 0
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i)
    if (c >= CH_0 && c <= CH_9) {
      if (digits === 1 && part === 0) return -1 // leading zero
      part = part * 10 + (c - CH_0)
      if (++digits > 3 || part > 255) return -1
    } else if (c === CH_DOT) {
      if (digits === 0 || ++parts > 3) return -1
      value = value * 256 + part
      part = 0
      digits = 0
    } else {
      return -1
    }
  }
  if (digits === 0 || parts !== 3) return -1
  return value * 256 + part
}

// A table beats three range compares: IPv6 parsing is hex digits, mostly (290 -> 140 ns
// for a full 8-group address, measured by bench/wasm-ip.bench.ts).
const HEX = new Int8Array(128).fill(-1)
for (let i = 0; i < 10; i++) HEX[CH_0 + i] = i
for (let i = 0; i < 6; i++) { HEX[97 + i] = 10 + i; HEX[65 + i] = 10 + i }

function hexValue (c: number): number {
  return c < 128 ? HEX[c] as number : -1
}

const groups = new Uint16Array(8)

/** Parse IPv6 text in s[from, to) into `groups`; false when invalid. */
function parse6 (s: string, from: number, to: number): boolean {
  let n = 0 // groups written
  let gap = -1 // index in groups where `::` stands
  let i = from
  if (to - from < 2) return false
  if (s.charCodeAt(i) === CH_COLON) {
    if (s.charCodeAt(i + 1) !== CH_COLON) return false
    gap = 0
    i += 2
    if (i === to) { groups.fill(0); return true }
  }
  while (i < to) {
    // One group, or a dotted IPv4 tail.
    let j = i
    let v = 0
    while (j < to && j - i < 5) {
      const h = hexValue(s.charCodeAt(j))
      if (h < 0) break
      v = v * 16 + h
      j++
    }
    if (j < to && s.charCodeAt(j) === CH_DOT) {
      if (n > 6) return false
      const v4 = parse4(s, i, to)
      if (v4 < 0) return false
      groups[n++] = v4 >>> 16
      groups[n++] = v4 & 0xffff
      i = to
      break
    }
    if (j === i || j - i > 4) return false
    if (n === 8) return false
    groups[n++] = v
    if (j === to) { i = j; break }
    if (s.charCodeAt(j) !== CH_COLON) return false
    if (j + 1 < to && s.charCodeAt(j + 1) === CH_COLON) {
      if (gap >= 0) return false
      gap = n
      i = j + 2
      if (i === to) break
    } else {
      i = j + 1
      if (i === to) return false // trailing single colon
    }
  }
  if (gap < 0) return n === 8
  if (n > 7) return false
  // Move the groups after the gap to the end and zero the gap.
  const tail = n - gap
  for (let k = 0; k < tail; k++) groups[7 - k] = groups[n - 1 - k] as number
  for (let k = gap; k < 8 - tail; k++) groups[k] = 0
  return true
}

/**
 * Parse an address into `out`. Returns V4, V6 or INVALID. With `allowZone`, a `%zone`
 * suffix on IPv6 is dropped (socket peers of link-local addresses carry one); otherwise it
 * makes the address invalid.
 */
export function parseIp (s: string, out: Uint32Array, allowZone = false): Family {
  const len = s.length
  if (len === 0 || len > 45 + (allowZone ? 20 : 0)) return INVALID
  if (s.indexOf(':') === -1) {
    const v = parse4(s, 0, len)
    if (v < 0) return INVALID
    out[0] = v
    return V4
  }
  let end = len
  const pct = s.indexOf('%')
  if (pct !== -1) {
    if (!allowZone || pct === len - 1) return INVALID
    end = pct
  }
  if (!parse6(s, 0, end)) return INVALID
  const g = groups
  // ::ffff:a.b.c.d / ::ffff:7b7b:7b7b (mapped) and ::a.b.c.d (compatible, dotted only) -> IPv4
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0) {
    const mapped = g[5] === 0xffff
    // Dotted only (`::a.b.c.d`), and the dot must be in the address, not in a zone.
    const dot = s.indexOf('.')
    const compat = g[5] === 0 && dot !== -1 && dot < end
    if (mapped || compat) {
      out[0] = ((g[6] as number) << 16 | (g[7] as number)) >>> 0
      return V4
    }
  }
  out[0] = ((g[0] as number) << 16 | (g[1] as number)) >>> 0
  out[1] = ((g[2] as number) << 16 | (g[3] as number)) >>> 0
  out[2] = ((g[4] as number) << 16 | (g[5] as number)) >>> 0
  out[3] = ((g[6] as number) << 16 | (g[7] as number)) >>> 0
  return V6
}

/** A parsed CIDR: IPv4 `words[0]`, or IPv6 in four words; `prefix` counts bits of its family. */
export interface Cidr {
  family: typeof V4 | typeof V6
  words: Uint32Array
  prefix: number
}

export class CidrError extends Error {
  override name = 'CidrError'
}

/**
 * Parse `addr` or `addr/len` for config. Refuses what the address parser refuses, a prefix
 * with a sign or leading zeros or out of range (`/33`, `/-1`, `/129`), and host bits set
 * past the prefix (`1.2.3.4/24`: the author meant `1.2.3.0/24` or `1.2.3.4/32`, and a
 * silent mask would hide the mistake). A mapped IPv6 prefix of 96 bits or more is IPv4.
 */
export function parseCidr (text: string): Cidr {
  const s = text.trim()
  const slash = s.indexOf('/')
  const addr = slash === -1 ? s : s.slice(0, slash)
  const words = new Uint32Array(4)
  let family: Family = parseIp(addr, words)
  if (family === INVALID) throw new CidrError(`'${text}' is not a valid IP address (IPv4 must be four decimal parts without leading zeros)`)
  // A bare address is one host: /32, or /128 when written in IPv6 form (mapped ones too).
  let prefix = addr.includes(':') ? 128 : 32
  if (slash !== -1) {
    const p = s.slice(slash + 1)
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > (addr.includes(':') ? 128 : 32)) {
      throw new CidrError(`'${text}' has an invalid prefix length (0-${addr.includes(':') ? 128 : 32})`)
    }
    prefix = Number(p)
  }
  // A mapped/compatible address written in IPv6 form: its prefix counts from bit 96.
  if (family === V4 && addr.includes(':')) {
    if (prefix < 96) throw new CidrError(`'${text}': an IPv4-mapped prefix must be /96 or longer`)
    prefix -= 96
  }
  if (!hostBitsClear(words, family, prefix)) {
    throw new CidrError(`'${text}' has host bits set past /${slash === -1 ? prefix : s.slice(slash + 1)}; write the network address`)
  }
  return { family, words: family === V4 ? words.subarray(0, 1) : words, prefix }
}

function hostBitsClear (w: Uint32Array, family: Family, prefix: number): boolean {
  const count = family === V4 ? 1 : 4
  for (let i = 0; i < count; i++) {
    const bitsHere = Math.max(0, Math.min(32, prefix - i * 32))
    const mask = bitsHere === 0 ? 0 : (0xffffffff << (32 - bitsHere)) >>> 0
    if (((w[i] as number) & ~mask) >>> 0 !== 0) return false
  }
  return true
}

/** Canonical text of a parsed address, for logs (IPv4 dotted, IPv6 compressed lower-case). */
export function formatIp (family: Family, w: Uint32Array): string {
  if (family === V4) {
    const v = w[0] as number
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
  }
  const g: number[] = []
  for (let i = 0; i < 4; i++) g.push((w[i] as number) >>> 16, (w[i] as number) & 0xffff)
  // Longest run of zero groups (length >= 2) becomes `::`.
  let best = -1
  let bestLen = 0
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i }
    i = j
  }
  const hex = g.map((x) => x.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

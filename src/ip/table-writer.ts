/// <reference lib="dom" />
// The acceptor's side of the IP tables: compiles lists of CIDRs into the shared-memory
// format of wasm/layout.ts ("IP tables"), writes one region, and switches the live one.
// Workers look addresses up with src/ip/matcher.ts (WASM binary search, ipContains4/6).
import { CidrError, parseCidr, parseIp, V4, V6 } from './parse.js'
import type { Cidr } from './parse.js'
import {
  HDR_IP_LIVE,
  HDR_MAGIC,
  IP_BLOCK_ALIGN,
  IP_DATA_BYTES,
  IP_DATA_END_FIELD,
  IP_DATA_OFFSET,
  IP_DIR_ENTRY_BYTES,
  IP_DIR_OFFSET,
  IP_DIR_V4_AT_FIELD,
  IP_DIR_V4_BITS_FIELD,
  IP_DIR_V4_COUNT_FIELD,
  IP_DIR_V4_MIN_FIELD,
  IP_DIR_V4_SHIFT_FIELD,
  IP_DIR_V6_AT_FIELD,
  IP_DIR_V6_BITS_FIELD,
  IP_DIR_V6_COUNT_FIELD,
  IP_DIR_V6_MIN_FIELD,
  IP_DIR_V6_SHIFT_FIELD,
  IP_INDEX_BITS_MAX,
  IP_INDEX_ENTRY_BYTES,
  IP_SET_COUNT_FIELD,
  IP_SETS_MAX,
  IP_TABLE_A_OFFSET,
  IP_TABLE_B_OFFSET,
  IP_TABLE_BYTES,
  IP_TABLE_LIVE_A,
  IP_TABLE_LIVE_B,
  IP_V4_RANGE_BYTES,
  IP_V4_TOTAL_FIELD,
  IP_V6_RANGE_BYTES,
  IP_V6_TOTAL_FIELD,
  MAGIC,
  MEMORY_BYTES
} from '../../wasm/layout.js'

/** An IP table region: 0 = A, 1 = B (the values HDR_IP_LIVE holds). */
export type IpRegion = typeof IP_TABLE_LIVE_A | typeof IP_TABLE_LIVE_B

/** One entry of an IP set: CIDR or address text (`10.0.0.0/8`, `2001:db8::1`), or a parsed Cidr. */
export type IpSetEntry = string | Cidr

/** One IP set: a list of CIDRs, e.g. one ip-filter's allow list. */
export type IpSetInput = readonly IpSetEntry[]

/** Thrown for an invalid CIDR (naming the set, the entry's index and its text) or a table that does not fit. */
export class IpTableError extends Error {
  override name = 'IpTableError'
  /** Index of the set in the list given, for an invalid entry. */
  readonly setIndex: number | undefined
  /** Index of the entry in its set, for an invalid entry. */
  readonly entryIndex: number | undefined
  /** The entry's text, for an invalid entry. */
  readonly text: string | undefined

  constructor (message: string, where?: { setIndex: number, entryIndex: number, text: string }, options?: { cause?: unknown }) {
    super(message, options)
    this.setIndex = where?.setIndex
    this.entryIndex = where?.entryIndex
    this.text = where?.text
  }
}

// One family of one compiled set: its merged ranges and their index, already in the word
// order of a data block, so that writing it is one typed-array copy (layout.ts: v4 =
// starts, ends, index; v6 = 16-byte starts, 16-byte ends, each as u64 hi, u64 lo
// little-endian = u32 words w1, w0, w3, w2, then the index), and the directory fields.
interface CompiledBlock {
  readonly block: Uint32Array
  /** Ranges. */
  readonly n: number
  readonly bits: number
  readonly shift: number
  /** start[0]: one u32 for v4; for v6 the four words as in the block (w1 w0 w3 w2). */
  readonly min: Uint32Array
}

interface CompiledSet {
  readonly v4: CompiledBlock
  readonly v6: CompiledBlock
}

const kCompiled = Symbol('tollgate.ipTable.compiled')

/** IP sets compiled and checked, ready to write into a region (compileIpSets()). */
export interface CompiledIpTable {
  readonly [kCompiled]: readonly CompiledSet[]
  /** Number of sets; set ids are 0 .. sets - 1, in the order given. */
  readonly sets: number
  /** IPv4 ranges in all sets, after merging. */
  readonly v4Ranges: number
  /** IPv6 ranges in all sets, after merging. */
  readonly v6Ranges: number
  /** Bytes of the data area used (at most IP_DATA_BYTES). */
  readonly bytes: number
}

/** What writeIpTable() wrote. */
export interface IpTableInfo {
  readonly region: IpRegion
  /** Set id of each set given, in order: what a matcher's contains() takes. */
  readonly setIds: readonly number[]
  readonly v4Ranges: number
  readonly v6Ranges: number
  readonly bytes: number
}

/* ---------------- parsing: a fast path in front of parseCidr ---------------- */

// parseCidr allocates (trim, two slices, a Uint32Array, a regex test, the result object):
// ~1 µs a CIDR. The fast path below handles the common forms with parseIp alone, into a
// scratch array, and leaves everything unusual to parseCidr, so the two cannot disagree on
// what is valid: the fast path only accepts text that parseCidr accepts with the same
// result (test/ip-table.test.ts checks a corpus of tricky forms both ways), and any text
// it does not accept goes to parseCidr, which returns the Cidr or throws its CidrError.
//   - an address containing ':' that parseIp calls IPv4 (mapped, compatible) -> parseCidr,
//     which owns the rule that its prefix counts from bit 96;
//   - surrounding whitespace (parseCidr trims) -> parseIp refuses it -> parseCidr;
//   - a prefix with a sign, leading zero, or out of range, or host bits set -> parseCidr,
//     for its error message.

const fw = new Uint32Array(4) // fast-path words

/** Parses `text` into `fw`; returns family << 8 | prefix, or -1 to leave it to parseCidr. */
function fastCidr (text: string): number {
  const slash = text.indexOf('/')
  const family = parseIp(slash === -1 ? text : text.slice(0, slash), fw)
  if (family === V4) {
    // IPv4 from text with a colon: mapped or compatible, whose prefix parseCidr rebases.
    const colon = text.indexOf(':')
    if (colon !== -1 && (slash === -1 || colon < slash)) return -1
  } else if (family !== V6) {
    return -1
  }
  const max = family === V4 ? 32 : 128
  let prefix = max
  if (slash !== -1) {
    const digits = text.length - slash - 1
    if (digits < 1 || digits > 3) return -1
    prefix = 0
    for (let i = slash + 1; i < text.length; i++) {
      const c = text.charCodeAt(i) - 48
      if (c < 0 || c > 9) return -1
      prefix = prefix * 10 + c
    }
    if ((digits > 1 && text.charCodeAt(slash + 1) === 48) || prefix > max) return -1
  }
  const count = family === V4 ? 1 : 4
  for (let i = 0; i < count; i++) {
    const bits = prefix - i * 32
    if (bits >= 32) continue
    const host = bits <= 0 ? 0xffffffff : 0xffffffff >>> bits
    if (((fw[i] as number) & host) !== 0) return -1
  }
  return family << 8 | prefix
}

/** Parses one entry into `fw`; returns family << 8 | prefix, or throws IpTableError. */
function parseEntry (entry: IpSetEntry, setIndex: number, entryIndex: number): number {
  if (typeof entry === 'string') {
    const r = fastCidr(entry)
    if (r !== -1) return r
    let c: Cidr
    try {
      c = parseCidr(entry)
    } catch (err) {
      const reason = err instanceof CidrError ? err.message : String(err)
      throw new IpTableError(`IP set ${setIndex}, entry ${entryIndex}: ${reason}`, { setIndex, entryIndex, text: entry }, { cause: err })
    }
    return fromCidr(c, setIndex, entryIndex, entry)
  }
  return fromCidr(entry, setIndex, entryIndex, undefined)
}

// A Cidr made by parseCidr is valid; one built by hand is checked the same way.
function fromCidr (c: Cidr, setIndex: number, entryIndex: number, text: string | undefined): number {
  const shown = text ?? describeCidr(c)
  const bad = (why: string): IpTableError =>
    new IpTableError(`IP set ${setIndex}, entry ${entryIndex}: '${shown}' ${why}`, { setIndex, entryIndex, text: shown })
  if (c === null || typeof c !== 'object' || (c.family !== V4 && c.family !== V6)) throw bad('is not a CIDR')
  const max = c.family === V4 ? 32 : 128
  const count = c.family === V4 ? 1 : 4
  if (!Number.isInteger(c.prefix) || c.prefix < 0 || c.prefix > max) throw bad(`has an invalid prefix length (0-${max})`)
  if (!(c.words instanceof Uint32Array) || c.words.length < count) throw bad('has too few address words')
  for (let i = 0; i < count; i++) {
    const bits = c.prefix - i * 32
    const w = c.words[i] as number
    fw[i] = w
    if (bits < 32 && (w & (bits <= 0 ? 0xffffffff : 0xffffffff >>> bits)) !== 0) throw bad(`has host bits set past /${c.prefix}; write the network address`)
  }
  return c.family << 8 | c.prefix
}

function describeCidr (c: Cidr): string {
  try {
    return `${Array.from(c.words, (w) => (w >>> 0).toString(16)).join(':')}/${c.prefix} (family ${c.family})`
  } catch {
    return String(c)
  }
}

/* ---------------- sorting and merging ---------------- */

const TWO32 = 2 ** 32

// IPv4: sort keys `start * 64 + prefix` (38 bits, exact in a double) with the native
// Float64Array sort, then merge in one pass: a range joins the current one when it starts
// at or before current end + 1 (overlapping or adjacent).
function compileV4 (keys: Float64Array): CompiledBlock {
  keys.sort()
  const n = keys.length
  const starts = new Uint32Array(n)
  const ends = new Uint32Array(n)
  let m = 0
  let curStart = -1
  let curEnd = -2
  for (let i = 0; i < n; i++) {
    const k = keys[i] as number
    const start = Math.floor(k / 64)
    const end = start + 2 ** (32 - (k - start * 64)) - 1
    if (start <= curEnd + 1) {
      if (end > curEnd) curEnd = end
    } else {
      if (curStart >= 0) { starts[m] = curStart; ends[m] = curEnd; m++ }
      curStart = start
      curEnd = end
    }
  }
  if (curStart >= 0) { starts[m] = curStart; ends[m] = curEnd; m++ }
  if (m === 0) return EMPTY
  const bits = indexBits(m)
  const min = starts[0] as number
  const shift = Math.max(0, bitLength32(((ends[m - 1] as number) - min) >>> 0) - bits)
  const block = new Uint32Array(2 * m + (1 << bits) + 1)
  block.set(starts.subarray(0, m))
  block.set(ends.subarray(0, m), m)
  // index[k] = ranges whose bucket (start - min) >> shift is below k (layout.ts).
  const index = block.subarray(2 * m)
  let k = 0
  for (let i = 0; i < m; i++) {
    const bucket = Math.floor(((starts[i] as number) - min) / 2 ** shift)
    while (k <= bucket) index[k++] = i
  }
  while (k < index.length) index[k++] = m
  return { block, n: m, bits, shift, min: Uint32Array.of(min) }
}

const EMPTY: CompiledBlock = Object.freeze({ block: new Uint32Array(0), n: 0, bits: 0, shift: 0, min: new Uint32Array(4) })

// ~4 ranges a bucket; one bucket (a plain binary search) for sets that fit a few lines.
function indexBits (n: number): number {
  return n <= 16 ? 0 : Math.min(IP_INDEX_BITS_MAX, Math.ceil(Math.log2(n / 4)))
}

function bitLength32 (v: number): number {
  return 32 - Math.clz32(v)
}

// IPv6: 128-bit starts in `w` (4 big-endian words per entry) with `prefix` beside them.
// Sorted by an LSD radix sort on an index permutation, 8 bits at a time from the low end,
// skipping digits that are the same in every key (host bits of short prefixes are zero, so
// /48s sort in 6 passes, not 16); tiny sets use insertion sort.
function sortV6 (w: Uint32Array, n: number): Uint32Array {
  let order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  if (n <= 32) {
    for (let i = 1; i < n; i++) {
      const x = order[i] as number
      let j = i - 1
      while (j >= 0 && less128(w, x, order[j] as number)) { order[j + 1] = order[j] as number; j-- }
      order[j + 1] = x
    }
    return order
  }
  let tmp = new Uint32Array(n)
  const counts = new Uint32Array(256)
  for (let word = 3; word >= 0; word--) {
    let or = 0
    let and = 0xffffffff
    for (let i = 0; i < n; i++) { const v = w[i * 4 + word] as number; or |= v; and &= v }
    const varying = (or ^ and) >>> 0
    for (let shift = 0; shift < 32; shift += 8) {
      if (((varying >>> shift) & 255) === 0) continue
      counts.fill(0)
      for (let i = 0; i < n; i++) counts[((w[(order[i] as number) * 4 + word] as number) >>> shift) & 255]++
      let sum = 0
      for (let d = 0; d < 256; d++) { const c = counts[d] as number; counts[d] = sum; sum += c }
      for (let i = 0; i < n; i++) {
        const idx = order[i] as number
        const d = ((w[idx * 4 + word] as number) >>> shift) & 255
        tmp[counts[d]++] = idx
      }
      const t = order; order = tmp; tmp = t
    }
  }
  return order
}

function less128 (w: Uint32Array, a: number, b: number): boolean {
  for (let k = 0; k < 4; k++) {
    const x = w[a * 4 + k] as number
    const y = w[b * 4 + k] as number
    if (x !== y) return x < y
  }
  return false
}

// Merge scratch: the current range's start (words 0-3) and end (4-7), and the next range's
// end (8-11), all big-endian.
const cur = new Uint32Array(12)

function compileV6 (w: Uint32Array, prefix: Uint8Array, n: number): CompiledBlock {
  const order = sortV6(w, n)
  const out = new Uint32Array(8 * n) // starts at 4i, ends at 4 * (n + i) for now
  let m = 0
  let open = false
  for (let i = 0; i < n; i++) {
    const idx = order[i] as number
    const p = prefix[idx] as number
    for (let k = 0; k < 4; k++) {
      const bits = p - k * 32
      const host = bits >= 32 ? 0 : bits <= 0 ? 0xffffffff : 0xffffffff >>> bits
      cur[8 + k] = ((w[idx * 4 + k] as number) | host) >>> 0
    }
    if (open && touches(w, idx)) {
      if (greater(8, 4)) cur.copyWithin(4, 8, 12)
      continue
    }
    if (open) emit(out, n, m++)
    for (let k = 0; k < 4; k++) cur[k] = w[idx * 4 + k] as number
    cur.copyWithin(4, 8, 12)
    open = true
  }
  if (open) emit(out, n, m++)
  if (m === 0) return EMPTY
  // The index: buckets of (start - min) >> shift over the 128-bit values.
  const bits = indexBits(m)
  const d = new Uint32Array(4)
  sub128(out, 4 * (n + m - 1), out, 0, d)
  const shift = Math.max(0, bitLength128(d) - bits)
  // Lay out as the data block: m starts, then m ends, each as words w1 w0 w3 w2, then the index.
  const block = new Uint32Array(8 * m + (1 << bits) + 1)
  for (let i = 0; i < m; i++) {
    toBlock(out, 4 * i, block, 4 * i)
    toBlock(out, 4 * (n + i), block, 4 * (m + i))
  }
  const index = block.subarray(8 * m)
  let k = 0
  for (let i = 0; i < m; i++) {
    sub128(out, 4 * i, out, 0, d)
    const bucket = low32After(d, shift)
    while (k <= bucket) index[k++] = i
  }
  while (k < index.length) index[k++] = m
  return { block, n: m, bits, shift, min: block.slice(0, 4) }
}

// d = a[i..i+3] - b[j..j+3], 128-bit big-endian words (a >= b here).
function sub128 (a: Uint32Array, i: number, b: Uint32Array, j: number, d: Uint32Array): void {
  let borrow = 0
  for (let k = 3; k >= 0; k--) {
    const x = (a[i + k] as number) - (b[j + k] as number) - borrow
    borrow = x < 0 ? 1 : 0
    d[k] = x < 0 ? x + TWO32 : x
  }
}

function bitLength128 (d: Uint32Array): number {
  for (let k = 0; k < 4; k++) if (d[k] !== 0) return (4 - k) * 32 - Math.clz32(d[k] as number)
  return 0
}

// Bits shift .. shift + 31 of the 128-bit d: (d >> shift) when that is below 2^32.
function low32After (d: Uint32Array, shift: number): number {
  const j = shift >>> 5 // word from the low end
  const r = shift & 31
  const at = (x: number): number => x > 3 ? 0 : d[3 - x] as number
  return r === 0 ? at(j) : ((at(j) >>> r) | (at(j + 1) << (32 - r))) >>> 0
}

// Big-endian words w0 w1 w2 w3 -> the block's (u64 hi, u64 lo) little-endian: w1 w0 w3 w2.
function toBlock (from: Uint32Array, i: number, to: Uint32Array, j: number): void {
  to[j] = from[i + 1] as number
  to[j + 1] = from[i] as number
  to[j + 2] = from[i + 3] as number
  to[j + 3] = from[i + 2] as number
}

function emit (out: Uint32Array, n: number, i: number): void {
  for (let k = 0; k < 4; k++) {
    out[4 * i + k] = cur[k] as number
    out[4 * (n + i) + k] = cur[4 + k] as number
  }
}

// Whether the entry's start (sorted, so >= the current start) is <= current end + 1.
function touches (w: Uint32Array, idx: number): boolean {
  // start <= end: overlap.
  for (let k = 0; k < 4; k++) {
    const s = w[idx * 4 + k] as number
    const e = cur[4 + k] as number
    if (s !== e) {
      if (s < e) return true
      break
    }
    if (k === 3) return true
  }
  // start == end + 1: adjacent. end + 1 carries through the trailing all-ones words.
  let carry = 1
  for (let k = 3; k >= 0; k--) {
    const sum = (cur[4 + k] as number) + carry
    carry = sum >= TWO32 ? 1 : 0
    if ((w[idx * 4 + k] as number) !== sum % TWO32) return false
  }
  return carry === 0
}

// Whether the 128-bit value at cur[a..a+3] is greater than the one at cur[b..b+3].
function greater (a: number, b: number): boolean {
  for (let k = 0; k < 4; k++) {
    const x = cur[a + k] as number
    const y = cur[b + k] as number
    if (x !== y) return x > y
  }
  return false
}

/* ---------------- compile, write, switch ---------------- */

function alignUp (n: number): number {
  return Math.ceil(n / IP_BLOCK_ALIGN) * IP_BLOCK_ALIGN
}

// Data bytes a set takes (each non-empty block on its own line boundary).
function setBytes (c: CompiledSet): number {
  return alignUp(c.v4.block.byteLength) + alignUp(c.v6.block.byteLength)
}

/**
 * Parses, sorts and merges IP sets into the table format, without touching any memory:
 * use it to check a config before a policy update, then pass the result to writeIpTable().
 * Throws IpTableError for an invalid CIDR (naming the set, the entry's index and its text),
 * for more than IP_SETS_MAX sets, and for sets that do not fit a region.
 */
export function compileIpSets (sets: readonly IpSetInput[]): CompiledIpTable {
  if (!Array.isArray(sets)) throw new TypeError('IP sets must be an array of arrays of CIDRs')
  if (sets.length > IP_SETS_MAX) throw new IpTableError(`${sets.length} IP sets given; a table holds at most ${IP_SETS_MAX}`)
  const compiled: CompiledSet[] = []
  let v4Ranges = 0
  let v6Ranges = 0
  let bytes = 0
  for (let s = 0; s < sets.length; s++) {
    const set = sets[s]
    if (!Array.isArray(set)) throw new TypeError(`IP set ${s} must be an array of CIDRs`)
    // Two passes over the set: parse into exact-size arrays without growing anything.
    const len = set.length
    const keys4 = new Float64Array(len)
    const words6 = new Uint32Array(4 * len)
    const prefix6 = new Uint8Array(len)
    let n4 = 0
    let n6 = 0
    for (let i = 0; i < len; i++) {
      const r = parseEntry(set[i] as IpSetEntry, s, i)
      const prefix = r & 255
      if (r >>> 8 === V4) {
        keys4[n4++] = (fw[0] as number) * 64 + prefix
      } else {
        words6.set(fw, 4 * n6)
        prefix6[n6++] = prefix
      }
    }
    const c: CompiledSet = { v4: compileV4(keys4.subarray(0, n4)), v6: compileV6(words6, prefix6, n6) }
    compiled.push(c)
    v4Ranges += c.v4.n
    v6Ranges += c.v6.n
    bytes += setBytes(c)
  }
  if (bytes > IP_DATA_BYTES) {
    // One big set of one family: ranges + a full index.
    const fits = (rangeBytes: number): number =>
      Math.floor((IP_DATA_BYTES - 2 * IP_BLOCK_ALIGN - ((1 << IP_INDEX_BITS_MAX) + 1) * IP_INDEX_ENTRY_BYTES) / rangeBytes)
    const mib = (b: number): string => (b / 2 ** 20).toFixed(1)
    throw new IpTableError(
      `IP sets do not fit a table region: after merging they hold ${v4Ranges} IPv4 ranges (${IP_V4_RANGE_BYTES} bytes each) ` +
      `and ${v6Ranges} IPv6 ranges (${IP_V6_RANGE_BYTES} bytes each), ${mib(bytes)} MiB with their indexes; a region ` +
      `holds ${mib(IP_DATA_BYTES)} MiB: about ${fits(IP_V4_RANGE_BYTES)} IPv4 ranges, or ${fits(IP_V6_RANGE_BYTES)} IPv6 ` +
      `ranges, or a mix (${IP_V4_RANGE_BYTES} bytes per IPv4 range, ${IP_V6_RANGE_BYTES} per IPv6 range, ~1 byte per range of index)`)
  }
  return Object.freeze({ [kCompiled]: compiled, sets: compiled.length, v4Ranges, v6Ranges, bytes })
}

// The memory never grows (layout.ts), so one view per memory stays valid.
const views = new WeakMap<WebAssembly.Memory, Uint32Array>()

function wordsOf (memory: WebAssembly.Memory): Uint32Array {
  let view = views.get(memory)
  if (view === undefined) {
    const buffer = memory.buffer as ArrayBufferLike
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength !== MEMORY_BYTES) {
      throw new TypeError(`expected the shared memory of ${MEMORY_BYTES} bytes made by createSharedMemory()`)
    }
    view = new Uint32Array(buffer)
    if (Atomics.load(view, HDR_MAGIC >>> 2) !== MAGIC) throw new TypeError('the memory has no tollgate header; use createSharedMemory()')
    views.set(memory, view)
  }
  return view
}

function checkRegion (region: number): asserts region is IpRegion {
  if (region !== IP_TABLE_LIVE_A && region !== IP_TABLE_LIVE_B) throw new RangeError(`IP table region must be 0 (A) or 1 (B), got ${String(region)}`)
}

/** Byte offset of a region in the memory. */
export function ipRegionOffset (region: IpRegion): number {
  checkRegion(region)
  return region === IP_TABLE_LIVE_A ? IP_TABLE_A_OFFSET : IP_TABLE_B_OFFSET
}

/**
 * Writes IP sets (or a table from compileIpSets()) into `region` of the shared memory, the
 * whole region's table at once, and returns the set ids (index i -> id i). Touches only
 * bytes of that region. Refuses the live region: write the other one, then switchIpRegion().
 * The caller must also know that no reader is still pinned to `region` (layout.ts, "IP
 * tables", protocol step 1): requests of the generation that used it have finished.
 */
export function writeIpTable (memory: WebAssembly.Memory, region: IpRegion, sets: CompiledIpTable | readonly IpSetInput[]): IpTableInfo {
  checkRegion(region)
  const u32 = wordsOf(memory)
  if (readLiveIpRegion(memory) === region) {
    throw new IpTableError(`IP table region ${region === IP_TABLE_LIVE_A ? 'A' : 'B'} is live; write the other region, then switch to it`)
  }
  // Everything that can throw (parsing, capacity) happens before the first store.
  const table = Array.isArray(sets) ? compileIpSets(sets) : sets as CompiledIpTable
  const compiled = table[kCompiled]
  if (compiled === undefined) throw new TypeError('expected IP sets or the result of compileIpSets()')
  const base = ipRegionOffset(region)
  const w = (offset: number): number => (base + offset) >>> 2
  // An empty directory first: a reader that was wrongly pinned here traps (unknown set)
  // rather than finding a directory that points into blocks being overwritten.
  u32[w(IP_SET_COUNT_FIELD)] = 0
  u32.fill(0, w(IP_DIR_OFFSET), w(IP_DIR_OFFSET + IP_SETS_MAX * IP_DIR_ENTRY_BYTES))
  let at = IP_DATA_OFFSET
  for (let s = 0; s < compiled.length; s++) {
    const c = compiled[s] as CompiledSet
    const entry = IP_DIR_OFFSET + s * IP_DIR_ENTRY_BYTES
    if (c.v4.n > 0) {
      at = alignUp(at)
      u32.set(c.v4.block, w(at))
      u32[w(entry + IP_DIR_V4_AT_FIELD)] = at
      u32[w(entry + IP_DIR_V4_COUNT_FIELD)] = c.v4.n
      u32[w(entry + IP_DIR_V4_BITS_FIELD)] = c.v4.bits
      u32[w(entry + IP_DIR_V4_SHIFT_FIELD)] = c.v4.shift
      u32[w(entry + IP_DIR_V4_MIN_FIELD)] = c.v4.min[0] as number
      at += c.v4.block.byteLength
    }
    if (c.v6.n > 0) {
      at = alignUp(at)
      u32.set(c.v6.block, w(at))
      u32[w(entry + IP_DIR_V6_AT_FIELD)] = at
      u32[w(entry + IP_DIR_V6_COUNT_FIELD)] = c.v6.n
      u32[w(entry + IP_DIR_V6_BITS_FIELD)] = c.v6.bits
      u32[w(entry + IP_DIR_V6_SHIFT_FIELD)] = c.v6.shift
      u32.set(c.v6.min, w(entry + IP_DIR_V6_MIN_FIELD))
      at += c.v6.block.byteLength
    }
  }
  // compileIpSets() checked the total; this guards the promise not to touch the other region.
  if (at > IP_TABLE_BYTES) throw new Error(`IP table overran its region (${at} > ${IP_TABLE_BYTES})`)
  u32[w(IP_V4_TOTAL_FIELD)] = table.v4Ranges
  u32[w(IP_V6_TOTAL_FIELD)] = table.v6Ranges
  u32[w(IP_DATA_END_FIELD)] = at
  u32[w(IP_SET_COUNT_FIELD)] = compiled.length
  return Object.freeze({
    region,
    setIds: Object.freeze(Array.from({ length: compiled.length }, (_, i) => i)),
    v4Ranges: table.v4Ranges,
    v6Ranges: table.v6Ranges,
    bytes: at - IP_DATA_OFFSET
  })
}

/** Which IP table region is live (HDR_IP_LIVE, atomic load). */
export function readLiveIpRegion (memory: WebAssembly.Memory): IpRegion {
  const live = Atomics.load(wordsOf(memory), HDR_IP_LIVE >>> 2)
  return live === IP_TABLE_LIVE_B ? IP_TABLE_LIVE_B : IP_TABLE_LIVE_A
}

/**
 * Makes `region` the live IP table with one Atomics.store to HDR_IP_LIVE.
 *
 * Why this is race-free for readers: a reader never follows HDR_IP_LIVE per lookup. It pins
 * a region once per request (from its generation, or one Atomics.load of HDR_IP_LIVE when
 * the generation starts) and answers the whole request from it; the switch only says which
 * region the next generation uses. A request pinned to the old region keeps reading it,
 * unchanged: the writer does not touch a region while anyone may be pinned to it (it waits
 * for the old generation to drain, and writeIpTable() refuses the live region outright).
 * A reader that loads the new value sees a complete table: the table was written before
 * this store, and Atomics.store/Atomics.load are sequentially consistent, so the writes
 * happen-before the reader's plain loads (the same edge carries the generation publish).
 * One aligned u32 word cannot be seen half-written, so each reader gets A or B, never a mix.
 */
export function switchIpRegion (memory: WebAssembly.Memory, region: IpRegion): void {
  checkRegion(region)
  Atomics.store(wordsOf(memory), HDR_IP_LIVE >>> 2, region)
}

/** The region that is not live: where the next table is written. */
export function nextIpRegion (memory: WebAssembly.Memory): IpRegion {
  return readLiveIpRegion(memory) === IP_TABLE_LIVE_A ? IP_TABLE_LIVE_B : IP_TABLE_LIVE_A
}

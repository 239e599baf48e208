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
// (start, end) u32 pairs, then the index; v6 = (start, end) pairs of 16 bytes, each as
// u64 hi, u64 lo little-endian = u32 words w1, w0, w3, w2, then the index), and the
// directory fields.
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
// 1-2 µs a CIDR here, 1-2 s for a million. The fast path below handles the common forms with parseIp alone, into a
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
  // Merged ranges, interleaved as in the block: start, end, start, end, ...
  const ranges = new Uint32Array(2 * n)
  let m = 0
  let curStart = -1
  let curEnd = -2
  for (let i = 0; i < n; i++) {
    const k = keys[i] as number
    const start = Math.floor(k / 64)
    const end = start + (SIZE4[k - start * 64] as number) - 1
    if (start <= curEnd + 1) {
      if (end > curEnd) curEnd = end
    } else {
      if (curStart >= 0) { ranges[2 * m] = curStart; ranges[2 * m + 1] = curEnd; m++ }
      curStart = start
      curEnd = end
    }
  }
  if (curStart >= 0) { ranges[2 * m] = curStart; ranges[2 * m + 1] = curEnd; m++ }
  if (m === 0) return EMPTY
  const bits = indexBits(m)
  const min = ranges[0] as number
  // With one bucket the shift is moot; 0 keeps it below 32 (a u32 shift count).
  const shift = bits === 0 ? 0 : Math.max(0, bitLength32(((ranges[2 * m - 1] as number) - min) >>> 0) - bits)
  const kmax = (1 << bits) - 1
  const block = new Uint32Array(2 * m + (1 << bits) + 1)
  block.set(ranges.subarray(0, 2 * m))
  // index[k] = ranges whose bucket (start - min) >> shift is below k (layout.ts).
  const index = block.subarray(2 * m)
  let k = 0
  for (let i = 0; i < m; i++) {
    const bucket = Math.min((((ranges[2 * i] as number) - min) >>> 0) >>> shift, kmax)
    while (k <= bucket) index[k++] = i
  }
  index.fill(m, k)
  return { block, n: m, bits, shift, min: Uint32Array.of(min) }
}

// Addresses in an IPv4 CIDR, by prefix length.
const SIZE4 = Float64Array.from({ length: 33 }, (_, p) => 2 ** (32 - p))

const EMPTY: CompiledBlock = Object.freeze({ block: new Uint32Array(0), n: 0, bits: 0, shift: 0, min: new Uint32Array(4) })

// ~2 ranges a bucket (so a window is ~3 ranges: one or two cache lines); one bucket for
// sets that fit a line or two anyway.
function indexBits (n: number): number {
  return n <= 8 ? 0 : Math.min(IP_INDEX_BITS_MAX, Math.ceil(Math.log2(n / 2)))
}

function bitLength32 (v: number): number {
  return 32 - Math.clz32(v)
}

// IPv6 entries are records of 5 u32: the start's four big-endian words, then the prefix.
const REC = 5

// Sorts `n` records by start: an LSD radix sort, 8 bits at a time from the low end, that
// moves whole records (sequential reads, 256 write streams; gathering through a
// permutation instead was 3x slower at 1M, every read a cache miss). Digits that are the
// same in every record are skipped: host bits of short prefixes are zero, so a set of /48s
// sorts in 6 passes, not 16. Tiny sets use insertion sort. Returns the array holding the
// result (`recs` or `tmp`).
function sortV6 (recs: Uint32Array, tmp: Uint32Array, n: number): Uint32Array {
  if (n <= 32) {
    const r = new Uint32Array(REC)
    for (let i = 1; i < n; i++) {
      r.set(recs.subarray(REC * i, REC * i + REC))
      let j = i - 1
      while (j >= 0 && lessRec(r, recs, j)) { recs.copyWithin(REC * (j + 1), REC * j, REC * j + REC); j-- }
      recs.set(r, REC * (j + 1))
    }
    return recs
  }
  // Every digit's histogram in one pass: counts[(word * 4 + byte) * 256 + value].
  const counts = new Uint32Array(16 * 256)
  for (let i = 0; i < n; i++) {
    for (let word = 0; word < 4; word++) {
      const v = recs[REC * i + word] as number
      const c = word * 1024
      counts[c + (v & 255)]++
      counts[c + 256 + ((v >>> 8) & 255)]++
      counts[c + 512 + ((v >>> 16) & 255)]++
      counts[c + 768 + (v >>> 24)]++
    }
  }
  let src = recs
  let dst = tmp
  for (let word = 3; word >= 0; word--) {
    for (let byte = 0; byte < 4; byte++) {
      const c = (word * 4 + byte) * 256
      // One value holds every record: this digit orders nothing.
      if (counts[c + (((src[word] as number) >>> (8 * byte)) & 255)] === n) continue
      let sum = 0
      for (let d = 0; d < 256; d++) { const x = counts[c + d] as number; counts[c + d] = sum; sum += x }
      const shift = 8 * byte
      for (let i = 0; i < n; i++) {
        const at = REC * i
        const d = ((src[at + word] as number) >>> shift) & 255
        const to = REC * counts[c + d]!++
        dst[to] = src[at] as number
        dst[to + 1] = src[at + 1] as number
        dst[to + 2] = src[at + 2] as number
        dst[to + 3] = src[at + 3] as number
        dst[to + 4] = src[at + 4] as number
      }
      const t = src; src = dst; dst = t
    }
  }
  return src
}

// Whether record `r` (REC words) has a smaller start than record `j` of `recs`.
function lessRec (r: Uint32Array, recs: Uint32Array, j: number): boolean {
  for (let k = 0; k < 4; k++) {
    const x = r[k] as number
    const y = recs[REC * j + k] as number
    if (x !== y) return x < y
  }
  return false
}

// Merge scratch, big-endian words: the current range's start (0-3) and end (4-7), and the
// next record's end (8-11).
const cur = new Uint32Array(12)

function compileV6 (recs: Uint32Array, n: number): CompiledBlock {
  if (n === 0) return EMPTY
  const sorted = sortV6(recs, new Uint32Array(REC * n), n)
  // Merged ranges, big-endian, 8 words each (start, end) for now.
  const out = new Uint32Array(8 * n)
  let m = 0
  for (let i = 0; i < n; i++) {
    const at = REC * i
    const p = sorted[at + 4] as number
    for (let k = 0; k < 4; k++) {
      const bits = p - k * 32
      const host = bits >= 32 ? 0 : bits <= 0 ? 0xffffffff : 0xffffffff >>> bits
      cur[8 + k] = ((sorted[at + k] as number) | host) >>> 0
    }
    if (i > 0 && touches(sorted, at)) {
      if (greater(8, 4)) cur.copyWithin(4, 8, 12)
      continue
    }
    if (i > 0) emit(out, m++)
    for (let k = 0; k < 4; k++) {
      cur[k] = sorted[at + k] as number
      cur[4 + k] = cur[8 + k] as number
    }
  }
  emit(out, m++)
  // The index: buckets of (start - min) >> shift over the 128-bit values.
  const bits = indexBits(m)
  const d = new Uint32Array(4)
  sub128(out, 8 * (m - 1) + 4, out, 0, d)
  const shift = bits === 0 ? 0 : Math.max(0, bitLength128(d) - bits)
  const kmax = (1 << bits) - 1
  // The block: m ranges of 8 words (start, end as w1 w0 w3 w2 each), then the index.
  const block = new Uint32Array(8 * m + (1 << bits) + 1)
  for (let i = 0; i < 2 * m; i++) {
    const j = 4 * i
    block[j] = out[j + 1] as number
    block[j + 1] = out[j] as number
    block[j + 2] = out[j + 3] as number
    block[j + 3] = out[j + 2] as number
  }
  const index = block.subarray(8 * m)
  let k = 0
  for (let i = 0; i < m; i++) {
    sub128(out, 8 * i, out, 0, d)
    const bucket = Math.min(low32After(d, shift), kmax)
    while (k <= bucket) index[k++] = i
  }
  index.fill(m, k)
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
  const j = 3 - (shift >>> 5) // big-endian word holding bit `shift`
  const r = shift & 31
  const low = d[j] as number
  if (r === 0) return low
  const high = j > 0 ? d[j - 1] as number : 0
  return ((low >>> r) | (high << (32 - r))) >>> 0
}

function emit (out: Uint32Array, m: number): void {
  for (let k = 0; k < 8; k++) out[8 * m + k] = cur[k] as number
}

// Whether the record at recs[at] starts (sorted, so >= the current start) at or before
// the current end + 1.
function touches (recs: Uint32Array, at: number): boolean {
  // start <= end: overlap.
  for (let k = 0; k < 4; k++) {
    const s = recs[at + k] as number
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
    if ((recs[at + k] as number) !== sum % TWO32) return false
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
/**
 * Compiled forms of frozen lists (a CIDR file left as it was comes back as the same frozen
 * array: plugins/ip-filter/list-file.ts), so an update that keeps a 100k list skips its
 * parse, sort and merge. Weak: a list nobody holds any more takes its compiled form along.
 */
const compiledSets = new WeakMap<object, CompiledSet>()

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
    const known = compiledSets.get(set)
    if (known !== undefined) {
      compiled.push(known)
      v4Ranges += known.v4.n
      v6Ranges += known.v6.n
      bytes += setBytes(known)
      continue
    }
    // One pass: parse into arrays sized for the whole set (no growing, no object per CIDR).
    const len = set.length
    const keys4 = new Float64Array(len)
    const recs6 = new Uint32Array(REC * len)
    let n4 = 0
    let n6 = 0
    for (let i = 0; i < len; i++) {
      const r = parseEntry(set[i] as IpSetEntry, s, i)
      const prefix = r & 255
      if (r >>> 8 === V4) {
        keys4[n4++] = (fw[0] as number) * 64 + prefix
      } else {
        const at = REC * n6++
        recs6[at] = fw[0] as number
        recs6[at + 1] = fw[1] as number
        recs6[at + 2] = fw[2] as number
        recs6[at + 3] = fw[3] as number
        recs6[at + 4] = prefix
      }
    }
    const c: CompiledSet = { v4: compileV4(keys4.subarray(0, n4)), v6: compileV6(recs6, n6) }
    // Only a frozen list can be known by identity: nobody can change it after this.
    if (Object.isFrozen(set)) compiledSets.set(set, c)
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
      `ranges in one set, or a mix (${IP_V4_RANGE_BYTES} bytes per IPv4 range, ${IP_V6_RANGE_BYTES} per IPv6 range, 2-4 per range of index)`)
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
  // Set count 0 and an empty directory first, the count last: the protocol keeps readers
  // off this region anyway; this only makes a half-done write look empty, not half-valid.
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

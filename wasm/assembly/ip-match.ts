// IP set lookups over the double-buffered IP tables (format and protocol: ../layout.ts,
// "IP tables"). The tables are written by the acceptor in JS (src/ip/table-writer.ts); this
// side only reads them.
//
// Plain loads, not atomics, for the table data: a caller pins one region per request and
// the writer never writes a region anyone is pinned to, so the bytes read here do not
// change while they are read. The happens-before edge from the writer's stores to these
// loads is the Atomics.store/Atomics.load pair on HDR_IP_LIVE (or the generation word)
// that told the caller which region to use.
//
// Bounds: every load is inside [base, base + IP_TABLE_BYTES), whatever the arguments:
//   - region must be 0 or 1, and set below both the region's set count and IP_SETS_MAX;
//     anything else traps (abort -> a JS Error). Trapping, not answering false, because
//     false on a deny list means "allow": an unknown set id is a bug, and must fail closed.
//   - a block's extent (starts, ends, index) is checked against the region, and the window
//     read from the index against the block's range count, so even a corrupt directory or
//     index cannot send a read into another region (a valid table never fails these).
// No allocation (see layout.ts): arguments and locals only.
import {
  IP_TABLE_A_OFFSET,
  IP_TABLE_BYTES,
  IP_SET_COUNT_FIELD,
  IP_SETS_MAX,
  IP_DIR_OFFSET,
  IP_DIR_ENTRY_BYTES,
  IP_DIR_V4_AT_FIELD,
  IP_DIR_V4_COUNT_FIELD,
  IP_DIR_V4_BITS_FIELD,
  IP_DIR_V4_SHIFT_FIELD,
  IP_DIR_V4_MIN_FIELD,
  IP_DIR_V6_AT_FIELD,
  IP_DIR_V6_COUNT_FIELD,
  IP_DIR_V6_BITS_FIELD,
  IP_DIR_V6_SHIFT_FIELD,
  IP_DIR_V6_MIN_FIELD,
  IP_V4_RANGE_BYTES,
  IP_V6_RANGE_BYTES,
  IP_V4_END_FIELD,
  IP_V6_END_FIELD,
  IP_INDEX_BITS_MAX,
  IP_INDEX_ENTRY_BYTES
} from "../layout";

// @ts-ignore: decorator
@lazy @inline const E_IP_REGION: string = "ip table region out of range";
// @ts-ignore: decorator
@lazy @inline const E_IP_SET: string = "ip set out of range";
// @ts-ignore: decorator
@lazy @inline const E_IP_BLOCK: string = "ip table block out of range";

// @ts-ignore: decorator
@inline function regionBase(region: u32): usize {
  if (region > 1) throw new RangeError(E_IP_REGION);
  return <usize>IP_TABLE_A_OFFSET + <usize>region * IP_TABLE_BYTES;
}

/** Address of `set`'s directory entry; traps for a set the region does not have. */
// @ts-ignore: decorator
@inline function dirEntry(base: usize, set: u32): usize {
  const count = load<u32>(base + IP_SET_COUNT_FIELD);
  if (set >= count || set >= <u32>IP_SETS_MAX) throw new RangeError(E_IP_SET);
  return base + IP_DIR_OFFSET + <usize>set * IP_DIR_ENTRY_BYTES;
}

/**
 * Checks that a block of `n` ranges of `rangeBytes` plus a 2^bits + 1 entry index lies in
 * the region, and returns the index's address. Only a corrupt directory could fail this.
 */
// @ts-ignore: decorator
@inline function indexOf(base: usize, at: u32, n: u32, rangeBytes: u32, bits: u32): usize {
  if (bits > <u32>IP_INDEX_BITS_MAX) throw new RangeError(E_IP_BLOCK);
  const indexAt = <u64>at + <u64>n * rangeBytes;
  if (indexAt + ((<u64>1 << bits) + 1) * IP_INDEX_ENTRY_BYTES > <u64>IP_TABLE_BYTES) throw new RangeError(E_IP_BLOCK);
  return base + <usize>indexAt;
}

/**
 * The search window for bucket `k` (already clamped to 0 .. 2^bits - 1): ranges
 * index[k] - 1 .. index[k + 1] - 1, as (first << 32 | count). Traps unless
 * index[k] <= index[k + 1] <= n, so the window stays inside the block.
 */
// @ts-ignore: decorator
@inline function window(index: usize, k: u32, n: u32): u64 {
  const lo = load<u32>(index + (<usize>k << 2));
  const hi = load<u32>(index + (<usize>k << 2), IP_INDEX_ENTRY_BYTES);
  if (lo > hi || hi > n) throw new RangeError(E_IP_BLOCK);
  const first = lo - <u32>(lo != 0);
  return (<u64>first << 32) | <u64>(hi - first);
}

/**
 * Whether IPv4 address `ip` (a u32, a.b.c.d = a << 24 | ...) is in set `set` of table
 * region `region` (0 = A, 1 = B).
 */
export function ipContains4(region: u32, set: u32, ip: u32): bool {
  const base = regionBase(region);
  const entry = dirEntry(base, set);
  const n = load<u32>(entry, IP_DIR_V4_COUNT_FIELD);
  if (n == 0) return false;
  const at = load<u32>(entry, IP_DIR_V4_AT_FIELD);
  const bits = load<u32>(entry, IP_DIR_V4_BITS_FIELD);
  const index = indexOf(base, at, n, IP_V4_RANGE_BYTES, bits);
  // Bucket of ip: (ip - min) >> shift, clamped. Below min, the subtraction wraps to a
  // large value and clamps to the last bucket, whose ranges all start above ip: false.
  const kmax = (<u32>1 << bits) - 1;
  const k = min<u32>((ip - load<u32>(entry, IP_DIR_V4_MIN_FIELD)) >>> load<u32>(entry, IP_DIR_V4_SHIFT_FIELD), kmax);
  const win = window(index, k, n);
  let len = <u32>win;
  if (len == 0) return false;
  // Branchless lower-bound search: `p` ends on the last range with start <= ip in the
  // window, or on its first range when every start is > ip. `select` compiles to a
  // conditional move, so a random address costs no branch mispredictions, only the
  // ~log2(len) loads, which for a window of a few ranges share one or two cache lines.
  let p = base + at + (<usize>(win >>> 32) * IP_V4_RANGE_BYTES);
  while (len > 1) {
    const half = len >>> 1;
    const mid = p + <usize>half * IP_V4_RANGE_BYTES;
    p = select<usize>(mid, p, load<u32>(mid) <= ip);
    len -= half;
  }
  return load<u32>(p) <= ip && ip <= load<u32>(p, IP_V4_END_FIELD);
}

/**
 * Whether IPv6 address w0:w1:w2:w3 (four big-endian u32 words, w0 the most significant,
 * as src/ip/parse.ts writes them) is in set `set` of table region `region`.
 */
export function ipContains6(region: u32, set: u32, w0: u32, w1: u32, w2: u32, w3: u32): bool {
  const base = regionBase(region);
  const entry = dirEntry(base, set);
  const n = load<u32>(entry, IP_DIR_V6_COUNT_FIELD);
  if (n == 0) return false;
  const at = load<u32>(entry, IP_DIR_V6_AT_FIELD);
  const bits = load<u32>(entry, IP_DIR_V6_BITS_FIELD);
  const index = indexOf(base, at, n, IP_V6_RANGE_BYTES, bits);
  const hi = (<u64>w0 << 32) | <u64>w1;
  const lo = (<u64>w2 << 32) | <u64>w3;
  // Bucket: the 128-bit (ip - min) >> shift, saturated to the last bucket.
  const mlo = load<u64>(entry, IP_DIR_V6_MIN_FIELD + 8);
  const dlo = lo - mlo;
  const dhi = hi - load<u64>(entry, IP_DIR_V6_MIN_FIELD) - <u64>(lo < mlo);
  const shift = <u64>load<u32>(entry, IP_DIR_V6_SHIFT_FIELD);
  const kmax = (<u32>1 << bits) - 1;
  let k: u64;
  if (shift >= 64) k = dhi >>> (shift - 64);
  else if ((dhi >>> shift) != 0) k = kmax; // >= 2^64: beyond any bucket
  else k = (dlo >>> shift) | (shift == 0 ? 0 : dhi << (64 - shift));
  const win = window(index, <u32>min<u64>(k, kmax), n);
  let len = <u32>win;
  if (len == 0) return false;
  // The same search on 128-bit keys, compared as (hi, lo) pairs of u64.
  let p = base + at + (<usize>(win >>> 32) * IP_V6_RANGE_BYTES);
  while (len > 1) {
    const half = len >>> 1;
    const mid = p + <usize>half * IP_V6_RANGE_BYTES;
    const mh = load<u64>(mid);
    const le = <i32>(mh < hi) | (<i32>(mh == hi) & <i32>(load<u64>(mid, 8) <= lo));
    p = select<usize>(mid, p, le != 0);
    len -= half;
  }
  const sh = load<u64>(p);
  if (sh > hi || (sh == hi && load<u64>(p, 8) > lo)) return false;
  const eh = load<u64>(p, IP_V6_END_FIELD);
  return hi < eh || (hi == eh && lo <= load<u64>(p, IP_V6_END_FIELD + 8));
}

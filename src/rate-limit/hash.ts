// The 64-bit key of a rate-limit counter: HalfSipHash-1-3 with a 64-bit tag (Aumasson and
// Bernstein's SipHash on 32-bit words, the `hsiphash` the Linux kernel keys its hash tables
// with) over (policy id, algorithm, window, client key).
//
// Why a keyed hash and not murmur or FNV: clients choose their keys (API keys, header
// values). With a seed-independent collision (MurmurHash3 has those) an attacker could aim
// any number of keys at one probe range, filling it ("table full" for everyone homed there)
// or landing on a victim's counter. SipHash's key is the process's random seed, so
// collisions cannot be computed ahead. HalfSipHash keeps every value a 32-bit integer, which
// V8 runs without BigInt or allocation; 1 compression and 3 finalization rounds is the
// SipHash-1-3 trade-off Rust's HashMap also makes.
//
// The message, as little-endian 32-bit words: [policy id length in UTF-16 units, policy id
// units two per word (zero-padded), algorithm id, window ms], then the client key's UTF-16
// units two per word. The rule's part is absorbed once, when the rule is compiled
// (hashPrefix); a hit absorbs only the client key (hashKey). Hashing UTF-16 units rather
// than UTF-8 bytes saves encoding the string; the key need not match any other program's.
// The seed is one u32 (HDR_HASH_SEED, the header word the threads share), so the SipHash
// key has 32 bits of secret: k0 = seed, k1 = fmix32(seed ^ golden ratio).

const C2 = 0x6c796765 // "lyge"
const C3 = 0x74656462 // "tedb"

/**
 * The hash state after a rule's words: v0, v1, v2, v3, and the byte length so far. Made
 * once per rule by hashPrefix(); hashKey() only reads it.
 */
export type HashPrefix = Int32Array

/** The two halves of the SipHash key derived from the process's u32 seed. */
export function sipKeyFromSeed (seed: number): [number, number] {
  let h = (seed ^ 0x9e3779b9) >>> 0
  // murmur3's fmix32: every bit of the seed reaches every bit of k1.
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  h ^= h >>> 16
  return [seed >>> 0, h >>> 0]
}

/** Absorbs `words` (u32 each) into a fresh HalfSipHash-1-3-64 state keyed by k0, k1. */
export function hashPrefix (k0: number, k1: number, words: readonly number[]): HashPrefix {
  let v0 = k0 | 0
  let v1 = (k1 ^ 0xee) | 0 // the 64-bit-tag variant
  let v2 = (C2 ^ k0) | 0
  let v3 = (C3 ^ k1) | 0
  for (const word of words) {
    const m = word | 0
    v3 ^= m
    v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16)
    v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2
    v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0
    v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16)
    v0 ^= m
  }
  return Int32Array.of(v0, v1, v2, v3, words.length * 4)
}

/** The words a string contributes to a prefix: its length, then its UTF-16 units in pairs. */
export function stringWords (s: string): number[] {
  const words = [s.length]
  for (let i = 0; i < s.length; i += 2) {
    words.push((s.charCodeAt(i) | ((i + 1 < s.length ? s.charCodeAt(i + 1) : 0) << 16)) >>> 0)
  }
  return words
}

/**
 * Finishes the hash of `prefix` followed by `key`'s UTF-16 units, and writes the 64-bit tag
 * to out[0] (low word) and out[1] (high word). Allocates nothing.
 */
export function hashKey (prefix: HashPrefix, key: string, out: Uint32Array): void {
  let v0 = prefix[0]!
  let v1 = prefix[1]!
  let v2 = prefix[2]!
  let v3 = prefix[3]!
  const n = key.length
  const whole = n & ~1
  for (let i = 0; i < whole; i += 2) {
    const m = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16)
    v3 ^= m
    v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16)
    v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2
    v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0
    v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16)
    v0 ^= m
  }
  // Last block: the odd unit, if any, and the message length in bytes mod 256 at the top.
  const b = (((prefix[4]! + 2 * n) & 0xff) << 24) | (n !== whole ? key.charCodeAt(whole) : 0)
  v3 ^= b
  v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16)
  v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2
  v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0
  v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16)
  v0 ^= b
  v2 ^= 0xee
  for (let r = 0; r < 3; r++) {
    v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16)
    v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2
    v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0
    v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16)
  }
  out[0] = v1 ^ v3
  v1 ^= 0xdd
  for (let r = 0; r < 3; r++) {
    v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16)
    v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2
    v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0
    v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16)
  }
  out[1] = v1 ^ v3
}

/**
 * Plain HalfSipHash-c-d with a 64-bit tag over bytes, as the reference C code (and its
 * published test vectors, with c = 2, d = 4) defines it: [low word, high word] of the tag.
 * Slow; the tests check hashKey() against it.
 */
export function halfSipHash64 (bytes: Uint8Array, k0: number, k1: number, cRounds: number, dRounds: number): [number, number] {
  const v = Int32Array.of(k0, k1 ^ 0xee, C2 ^ k0, C3 ^ k1)
  const round = (): void => {
    v[0] = v[0]! + v[1]!; v[1] = (v[1]! << 5) | (v[1]! >>> 27); v[1] ^= v[0]!; v[0] = (v[0]! << 16) | (v[0]! >>> 16)
    v[2] = v[2]! + v[3]!; v[3] = (v[3]! << 8) | (v[3]! >>> 24); v[3] ^= v[2]!
    v[0] = v[0]! + v[3]!; v[3] = (v[3]! << 7) | (v[3]! >>> 25); v[3] ^= v[0]!
    v[2] = v[2]! + v[1]!; v[1] = (v[1]! << 13) | (v[1]! >>> 19); v[1] ^= v[2]!; v[2] = (v[2]! << 16) | (v[2]! >>> 16)
  }
  const absorb = (m: number): void => {
    v[3] ^= m
    for (let r = 0; r < cRounds; r++) round()
    v[0] ^= m
  }
  const whole = bytes.length & ~3
  for (let i = 0; i < whole; i += 4) {
    absorb(bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))
  }
  let b = (bytes.length & 0xff) << 24
  for (let i = whole; i < bytes.length; i++) b |= bytes[i]! << (8 * (i - whole))
  absorb(b)
  v[2] ^= 0xee
  for (let r = 0; r < dRounds; r++) round()
  const lo = (v[1]! ^ v[3]!) >>> 0
  v[1] ^= 0xdd
  for (let r = 0; r < dRounds; r++) round()
  return [lo, (v[1]! ^ v[3]!) >>> 0]
}

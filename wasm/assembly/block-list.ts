// The temporary deny list (threat-guard's auto-blocks): an open-addressed table of
// IP -> "blocked until", in the BLOCKS region of the shared memory (../layout.ts has the
// entry format). Every worker reads it on every request of a route with threat-guard; it is
// written only when a block is placed (a client crossed its threshold) or lifted (the admin
// API's DELETE /blocks/:ip), which are rare. So the protocol is asymmetric:
//
// WRITERS take one lock: the u64 word BLOCK_LOCK_FIELD of the region header, cmpxchg'd from
// 0 to the writer's Date.now(). Under it, finding the address's slot (or a free one) and
// writing it cannot race another writer, so an address never gets two slots. The critical
// section is straight-line code over at most BLOCK_PROBE_LIMIT slots (no call out of WASM,
// no allocation). A lock older than BLOCK_LOCK_STALE_MS was left by a thread that died in
// it (a terminated worker): the next writer whose clock shows that takes it over with one
// cmpxchg. A writer that cannot get the lock in SPIN_LIMIT loads gives up (BUSY), and its
// caller tries again on a later event; a writer never waits with a stale clock forever.
//
// READERS take no lock: each entry has a sequence word, made odd by the writer before it
// changes the entry and even again after (a seqlock). A reader loads the sequence, the
// fields, and the sequence again, all with atomic (sequentially consistent) loads; if the
// two sequence loads agree and are even, no write overlapped the field loads, so the fields
// are one consistent entry. Otherwise it retries, up to SPIN_LIMIT times; an entry whose
// writer died mid-write (sequence stuck odd) is skipped, never waited on: a missed block
// fails open for that one address, which is the lesser harm than a stuck request path. The
// next writer in that probe range repairs such an entry (makes it even, not blocked).
//
// Slots are never returned to "never used" (sequence 0, family 0), so a lookup may stop at
// the first never-used slot: nothing for its address lies beyond one. A slot whose block
// ended BLOCK_RECLAIM_GRACE_MS ago may be given to another address by a writer.
//
// The home slot is a hash of the address seeded with the process's random hash seed
// (HDR_HASH_SEED, set once by the rate-limit counters before any block can be written), so
// a client cannot aim many addresses at one probe range without knowing the seed.
//
// Nothing here allocates (see layout.ts): arguments, locals, and two instance globals.
import {
  BLOCK_REGION_OFFSET,
  BLOCK_LOCK_FIELD,
  BLOCK_PLACED_FIELD,
  BLOCK_FULL_FIELD,
  BLOCK_TABLE_OFFSET,
  BLOCK_ENTRY_BYTES,
  BLOCK_ENTRIES,
  BLOCK_SEQ_FIELD,
  BLOCK_FAMILY_FIELD,
  BLOCK_IP_FIELD,
  BLOCK_EPOCH_FIELD,
  BLOCK_COUNT_FIELD,
  BLOCK_UNTIL_FIELD,
  BLOCK_SINCE_FIELD,
  BLOCK_REASON_FIELD,
  BLOCK_PROBE_LIMIT,
  BLOCK_RECLAIM_GRACE_MS,
  BLOCK_LOCK_STALE_MS,
  HDR_HASH_SEED
} from "../layout";

// @ts-ignore: decorator
@lazy @inline const E_BLOCK_ARGS: string = "block list: bad family or time";

const SPIN_LIMIT: i32 = 1 << 16;
const LOCK_SPIN_LIMIT: i32 = 1 << 20;
const NOW_MAX: f64 = 4e12;
const MASK: u32 = <u32>BLOCK_ENTRIES - 1;
const PROBES: u32 = <u32>BLOCK_PROBE_LIMIT;
const LOCK_AT: usize = <usize>BLOCK_REGION_OFFSET + <usize>BLOCK_LOCK_FIELD;

// readEntry's results.
const OTHER: i32 = 0;
const MATCH: i32 = 1;
const NEVER_USED: i32 = 2;

/** blockPlace / blockLift results besides 0 and 1. */
const FULL: i32 = -1;
const BUSY: i32 = -2;

/** What readEntry last found for a matching entry (instance globals: per thread). */
let foundUntil: u64 = 0;
let foundEpoch: u32 = 0;

// @ts-ignore: decorator
@inline function entryAt(slot: u32): usize {
  return <usize>BLOCK_TABLE_OFFSET + <usize>slot * <usize>BLOCK_ENTRY_BYTES;
}

// @ts-ignore: decorator
@inline function checkArgs(family: u32, now: f64): void {
  if ((family != 4 && family != 6) || !(now >= 0 && now <= NOW_MAX)) throw new RangeError(E_BLOCK_ARGS);
}

// @ts-ignore: decorator
@inline function mix(h: u32, w: u32): u32 {
  h ^= w;
  h *= 0x9e3779b1;
  return h ^ (h >>> 15);
}

/** The home slot of an address (murmur3's fmix32 over the seeded words). */
function homeOf(family: u32, w0: u32, w1: u32, w2: u32, w3: u32): u32 {
  let h = mix(mix(mix(mix(atomic.load<u32>(HDR_HASH_SEED) ^ family, w0), w1), w2), w3);
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h & MASK;
}

/** One consistent read of the entry at `p` (READERS above): OTHER, MATCH or NEVER_USED. */
function readEntry(p: usize, family: u32, w0: u32, w1: u32, w2: u32, w3: u32): i32 {
  for (let spins = 0; spins < SPIN_LIMIT; spins++) {
    const s = atomic.load<u32>(p, BLOCK_SEQ_FIELD);
    if ((s & 1) != 0) continue;
    const f = atomic.load<u32>(p, BLOCK_FAMILY_FIELD);
    const same = f == family &&
      atomic.load<u32>(p, BLOCK_IP_FIELD) == w0 && atomic.load<u32>(p, BLOCK_IP_FIELD + 4) == w1 &&
      atomic.load<u32>(p, BLOCK_IP_FIELD + 8) == w2 && atomic.load<u32>(p, BLOCK_IP_FIELD + 12) == w3;
    const until = atomic.load<u64>(p, BLOCK_UNTIL_FIELD);
    const epoch = atomic.load<u32>(p, BLOCK_EPOCH_FIELD);
    if (atomic.load<u32>(p, BLOCK_SEQ_FIELD) != s) continue;
    if (f == 0) return s == 0 ? NEVER_USED : OTHER;
    if (!same) return OTHER;
    foundUntil = until;
    foundEpoch = epoch;
    return MATCH;
  }
  return OTHER;
}

/**
 * Whether the address is blocked at `now` (ms): the time it is blocked until (> now), or,
 * when it is not blocked, -(epoch + 1), where epoch counts the blocks of this address that
 * were placed or lifted (0 for an address never blocked, or whose slot was reclaimed).
 * family is 4 (w0 holds the address) or 6 (four big-endian words), as parseIp gives them.
 */
export function blockLookup(family: u32, w0: u32, w1: u32, w2: u32, w3: u32, now: f64): f64 {
  checkArgs(family, now);
  const home = homeOf(family, w0, w1, w2, w3);
  const n = <u64>now;
  for (let i: u32 = 0; i < PROBES; i++) {
    const r = readEntry(entryAt((home + i) & MASK), family, w0, w1, w2, w3);
    if (r == NEVER_USED) return -1;
    if (r == MATCH) return foundUntil > n ? <f64>foundUntil : -(<f64>foundEpoch + 1);
  }
  return -1;
}

/** Takes the writers' lock (WRITERS above); false when it stayed busy. */
function lock(nowMs: u64): bool {
  for (let spins = 0; spins < LOCK_SPIN_LIMIT; spins++) {
    const held = atomic.load<u64>(LOCK_AT);
    if (held == 0) {
      if (atomic.cmpxchg<u64>(LOCK_AT, 0, nowMs) == 0) return true;
    } else if (nowMs > held + <u64>BLOCK_LOCK_STALE_MS) {
      if (atomic.cmpxchg<u64>(LOCK_AT, held, nowMs) == held) return true;
    }
  }
  return false;
}

// @ts-ignore: decorator
@inline function unlock(): void {
  atomic.store<u64>(LOCK_AT, 0);
}

/**
 * Under the lock: the slot holding the address (>= 0), or -(free slot + 1) for the first
 * slot it may take, or FREE_NONE. An entry left odd by a dead writer is repaired on the way
 * (made even and not blocked), so it becomes free.
 */
const FREE_NONE: i32 = -0x7fffffff;
function findSlot(family: u32, w0: u32, w1: u32, w2: u32, w3: u32, n: u64): i32 {
  const home = homeOf(family, w0, w1, w2, w3);
  let free: i32 = FREE_NONE;
  for (let i: u32 = 0; i < PROBES; i++) {
    const slot = (home + i) & MASK;
    const p = entryAt(slot);
    const s = atomic.load<u32>(p, BLOCK_SEQ_FIELD);
    if ((s & 1) != 0) {
      // Writers hold the lock, so nobody is writing this: its writer died mid-write.
      atomic.store<u64>(p, 0, BLOCK_UNTIL_FIELD);
      atomic.store<u32>(p, s + 1, BLOCK_SEQ_FIELD);
    }
    const f = atomic.load<u32>(p, BLOCK_FAMILY_FIELD);
    if (f == 0) {
      if (free == FREE_NONE) free = -(<i32>slot + 1);
      if (atomic.load<u32>(p, BLOCK_SEQ_FIELD) == 0) break; // never used: nothing beyond
      continue;
    }
    if (f == family && atomic.load<u32>(p, BLOCK_IP_FIELD) == w0 && atomic.load<u32>(p, BLOCK_IP_FIELD + 4) == w1 &&
        atomic.load<u32>(p, BLOCK_IP_FIELD + 8) == w2 && atomic.load<u32>(p, BLOCK_IP_FIELD + 12) == w3) {
      return <i32>slot;
    }
    if (free == FREE_NONE && atomic.load<u64>(p, BLOCK_UNTIL_FIELD) + <u64>BLOCK_RECLAIM_GRACE_MS < n) free = -(<i32>slot + 1);
  }
  return free;
}

/**
 * Blocks the address from `now` until `until` (ms), recording the bad-response count and
 * four reason words (status << 16 | count) for the admin API. Returns 1 when it placed the
 * block, 0 when the address was already blocked (the running block is left as it is),
 * -1 when its probe range has no free slot (counted in BLOCK_FULL_FIELD), -2 when the
 * writers' lock stayed busy.
 */
export function blockPlace(family: u32, w0: u32, w1: u32, w2: u32, w3: u32, now: f64, until: f64,
  count: u32, r0: u32, r1: u32, r2: u32, r3: u32): i32 {
  checkArgs(family, now);
  if (!(until > now && until <= NOW_MAX)) throw new RangeError(E_BLOCK_ARGS);
  const n = <u64>now;
  if (!lock(n)) return BUSY;
  const found = findSlot(family, w0, w1, w2, w3, n);
  if (found == FREE_NONE) {
    atomic.add<u32>(<usize>BLOCK_REGION_OFFSET + <usize>BLOCK_FULL_FIELD, 1);
    unlock();
    return FULL;
  }
  const slot = <u32>(found >= 0 ? found : -found - 1);
  const p = entryAt(slot);
  let epoch: u32 = 1;
  if (found >= 0) {
    if (atomic.load<u64>(p, BLOCK_UNTIL_FIELD) > n) {
      unlock();
      return 0;
    }
    epoch = atomic.load<u32>(p, BLOCK_EPOCH_FIELD) + 1;
  }
  const s = atomic.load<u32>(p, BLOCK_SEQ_FIELD);
  atomic.store<u32>(p, s + 1, BLOCK_SEQ_FIELD);
  atomic.store<u32>(p, family, BLOCK_FAMILY_FIELD);
  atomic.store<u32>(p, w0, BLOCK_IP_FIELD);
  atomic.store<u32>(p, w1, BLOCK_IP_FIELD + 4);
  atomic.store<u32>(p, w2, BLOCK_IP_FIELD + 8);
  atomic.store<u32>(p, w3, BLOCK_IP_FIELD + 12);
  atomic.store<u32>(p, epoch, BLOCK_EPOCH_FIELD);
  atomic.store<u32>(p, count, BLOCK_COUNT_FIELD);
  atomic.store<u64>(p, <u64>until, BLOCK_UNTIL_FIELD);
  atomic.store<u64>(p, n, BLOCK_SINCE_FIELD);
  atomic.store<u32>(p, r0, BLOCK_REASON_FIELD);
  atomic.store<u32>(p, r1, BLOCK_REASON_FIELD + 4);
  atomic.store<u32>(p, r2, BLOCK_REASON_FIELD + 8);
  atomic.store<u32>(p, r3, BLOCK_REASON_FIELD + 12);
  atomic.store<u32>(p, s + 2, BLOCK_SEQ_FIELD);
  atomic.add<u32>(<usize>BLOCK_REGION_OFFSET + <usize>BLOCK_PLACED_FIELD, 1);
  unlock();
  return 1;
}

/**
 * Lifts the address's block, if it is blocked at `now`: until becomes 0 and the epoch moves
 * on (so its strike counters start afresh). Returns 1 if it was blocked, 0 if not, -2 when
 * the writers' lock stayed busy.
 */
export function blockLift(family: u32, w0: u32, w1: u32, w2: u32, w3: u32, now: f64): i32 {
  checkArgs(family, now);
  const n = <u64>now;
  if (!lock(n)) return BUSY;
  const found = findSlot(family, w0, w1, w2, w3, n);
  if (found < 0) {
    unlock();
    return 0;
  }
  const p = entryAt(<u32>found);
  if (atomic.load<u64>(p, BLOCK_UNTIL_FIELD) <= n) {
    unlock();
    return 0;
  }
  const s = atomic.load<u32>(p, BLOCK_SEQ_FIELD);
  atomic.store<u32>(p, s + 1, BLOCK_SEQ_FIELD);
  atomic.store<u64>(p, 0, BLOCK_UNTIL_FIELD);
  atomic.store<u32>(p, atomic.load<u32>(p, BLOCK_EPOCH_FIELD) + 1, BLOCK_EPOCH_FIELD);
  atomic.store<u32>(p, s + 2, BLOCK_SEQ_FIELD);
  unlock();
  return 1;
}

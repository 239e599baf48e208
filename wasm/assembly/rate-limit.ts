// Rate-limit counters: an open-addressed hash table in the shared memory (layout.ts,
// COUNTER section), used by every worker thread at once, with no lock on the hit path.
//
// ENTRY: two u64 words, key at +COUNTER_KEY_FIELD and state at +COUNTER_STATE_FIELD.
//   key    0 = never used, 1 = tombstone (a claim that stepped back), else a 64-bit hash of
//          (policy, rule, client key) made by src/rate-limit/hash.ts. makeKey() forces the
//          high word non-zero, so a real key is never 0 or 1.
//   state  the counter. Every real state is a TIME, in ticks of 2^-22 ms, at or after which
//          the counter means nothing any more (its "expiry"):
//            fixed window     (end of the window, in ms) << 22 | count
//            sliding window   (end of the window after it, ms) << 22 | count    (see below)
//            GCRA             TAT, the theoretical arrival time, in ticks
//          A count has 22 bits (limits up to 4,194,303 per window) and lives in the sub-ms
//          bits, so one unsigned compare, `state < now in ticks`, says "expired" for any
//          algorithm: a thread can judge a slot it does not own without knowing its rule.
//          Times reach 2^42 ms (year 2109); the two top values are sentinels, never times:
//            LOCKED = 2^64 - 1   a thread has claimed the slot and is (re)keying it
//            KILLED = 2^64 - 2   a claim that took too long was cancelled; its owner cleans up
//
// SLIDING WINDOW takes two entries per client, one per window parity: key ^ (w & 1) holds
// window w's count, key ^ ((w & 1) ^ 1) holds w - 1's (the keys differ in bit 0, so their
// home slots are neighbours, in one cache line). Each is a fixed-window counter kept one
// window longer. The estimate is prev * (W - elapsed) / W + cur; a hit is admitted while
// the estimate before it is below the limit. Only `cur` is updated (by cmpxchg, so cur is
// exact across threads); `prev` is a consistent snapshot of a finished window.
// Over-admission (CHECKLIST F9): the estimate assumes the previous window's hits were spread
// evenly. If they all came at its very end, a rolling window of length W that straddles the
// boundary can hold up to 2 * limit admits (limit at the very end of w - 1, then, as its
// weight fades, limit more before the end of w: test/rate-limit-counters.test.ts shows it);
// with evenly spread traffic the error is small. Never more than that, however many threads.
//
// Every state change is a 64-bit cmpxchg, and wasm atomics are sequentially consistent (one
// total order over all of them, in all threads). A slot's life is a sequence of TENURES,
// one per key that owns it, separated by LOCKED/KILLED spells. The protocol rests on:
//
//   (M) Every state value of a tenure is above every state value of all earlier tenures of
//       the same slot. Within a tenure, a value depends only on the owner's hits and refunds.
//
// Why it holds: a claim takes a state s that is expired for the grace period,
// s < now - grace, and the new owner's first state is after its now (a window end in the
// future, or now + T); a claim that steps back leaves s + 1 <= now. Within a tenure, a hit
// moves a state up (a later window end or a larger count, max(TAT, now) + T > TAT), never
// back, even with a `now` older than another thread's (a stored window end later than ours
// is counted in, not reset); a refund (rateLimitRefund) takes one hit back down, but stays
// in the same window (so >= its end << 22, above the tenure's first state) or, for GCRA, at
// or above the refunder's now (above every earlier tenure, which expired a grace period
// before the claimer's now; see WHY COUNTER_RECLAIM_GRACE_MS).
// So a cmpxchg(s -> s') that succeeds ran in the same tenure as the load that returned s:
// no ABA across owners. Within a tenure an equal value means an equal counter, and the
// cmpxchg computes s' from s alone, so a repeated value is harmless there.
//
// HITTING key K (lookup, snapshot): scan from K's home slot. At a slot whose key is K:
//   s = load state; (LOCKED: spin; KILLED: not ours, go on)
//   k = load key;   (not K any more: the slot was re-keyed, go on)
//   load state again, == s.
// The key word is only written while the state is LOCKED or KILLED (by the claimer). By (M),
// state == s at both loads means both loads fell in one tenure, with no LOCKED spell in
// between, so the key did not change in between: (K, s) held at the same instant.
// That snapshot justifies a rejection. An admission is cmpxchg(s -> s'), which by (M)
// succeeds only in the snapshot's tenure, so s' is counted in K's counter and nowhere
// else, and the key cannot have changed either. A failed cmpxchg just
// takes a new snapshot. This also covers the races the two-read check alone would miss:
// the key going K -> K2 -> K between two loads (the state load in between would have seen
// K2's state; the second state load or the cmpxchg then fails), and a claimer taking the
// slot between a hitter's loads and its cmpxchg (the claimer's cmpxchg to LOCKED changes
// the state, so the hitter's fails). A rejected hit writes nothing: it consumes no quota.
//
// INSERTING K when no counter for it was found (insert, onlyOne):
//   1. claim: the first slot in K's probe range whose state s is claimable (0 = never used,
//      or expired for at least COUNTER_RECLAIM_GRACE_MS), by cmpxchg(s -> LOCKED);
//   2. store key K;
//   3. scan K's probe range for any other slot with key K:
//        a published state (not LOCKED/KILLED)   -> step back (K has a counter already)
//        LOCKED, nearer K's home than ours       -> step back
//        LOCKED, further than ours               -> cancel it: cmpxchg(LOCKED -> KILLED)
//   4. publish: cmpxchg(LOCKED -> K's first state); it fails only if we were KILLED.
//   Stepping back (or finding ourselves KILLED): store key TOMBSTONE, store state s + 1, and
//   start the hit again. Apart from a cancel (LOCKED -> KILLED), only the claimer writes
//   the words of a LOCKED or KILLED slot.
// Why K never gets two counters (which would let it through twice): two claimers A and B of
// K each store K (2) before scanning (3). In the total order one of them, say B, scans A's
// slot after A stored K there, so B sees K at A's slot: published -> B steps back; LOCKED
// and nearer -> B steps back; LOCKED and further -> B kills A, whose publish (4) then fails.
// So of any two, at most one publishes while the other's counter could still be found.
// And a counter published before the scan is always seen (step back), so a hitter that
// found K's counter and one that inserts never end up counting in different slots.
// Lookups stop at a never-used slot (key 0, state not LOCKED): slots never go back to key
// 0, so K's counter is never beyond one; a missed race only costs a step back.
//
// WHY COUNTER_RECLAIM_GRACE_MS: "expired" is judged with the claimer's `now`. A hitter whose
// `now` lags (read, then the thread was descheduled) may still be counting in the window
// that just ended; were the slot taken and the hitter to start K afresh, that window's hits
// would be forgotten. Claiming only states expired for a second leaves that to hitters more
// than a second late.
//
// DEAD OR STALLED CLAIMERS: a hitter that finds K's slot LOCKED spins up to SPIN_LIMIT loads,
// then kills the claim (cmpxchg LOCKED -> KILLED) and goes on; if the claimer was only
// descheduled, its publish fails and it cleans up and retries; if its thread was terminated
// mid-claim, the slot stays KILLED: one slot lost, nobody waits on it again. Claim steps
// 1 -> 2 and 4 -> cleanup are straight-line code (no loop or call for V8 to interrupt at).
//
// TABLE FULL: no claimable slot in the probe range, or RESTART_LIMIT restarts. The caller
// gets NO_COUNTER and applies the configured behaviour (deny, or allow and count a metric).
//
// Nothing here allocates (layout.ts): the only module state is `snapState`, a global of
// this instance (so of this thread), not of the shared memory.
import {
  COUNTER_TABLE_OFFSET,
  COUNTER_ENTRY_BYTES,
  COUNTER_ENTRIES,
  HDR_COUNTER_MASK,
  COUNTER_KEY_FIELD,
  COUNTER_STATE_FIELD,
  COUNTER_PROBE_LIMIT,
  COUNTER_RECLAIM_GRACE_MS,
  HDR_HASH_SEED
} from "../layout";

// @ts-ignore: decorator
@lazy @inline const E_RATE_LIMIT_NOW: string = "rate limit: now must be ms from 0 to 4e12";
// @ts-ignore: decorator
@lazy @inline const E_RATE_LIMIT_RULE: string = "rate limit: bad window, limit, interval or burst";

/** Bits of a tick below the millisecond: a state's time is in 2^-22 ms. */
const TICK_BITS: u64 = 22;
const TICKS_PER_MS: f64 = 4194304;
/** The count bits of a window state; also the largest window limit. */
const COUNT_MASK: u64 = 0x3fffff;
const STATE_LOCKED: u64 = 0xffffffffffffffff;
const STATE_KILLED: u64 = 0xfffffffffffffffe;
const KEY_EMPTY: u64 = 0;
const KEY_TOMBSTONE: u64 = 1;
/** Largest `now` (ms): year 2096, leaving room below 2^42 ms for window ends and TATs. */
const NOW_MAX: f64 = 4e12;
/** Largest GCRA interval and burst * interval, in ticks (2^53: exact in an f64; 2^60). */
const INTERVAL_MAX: f64 = 9007199254740992;
const TAU_MAX: f64 = 1152921504606846976;
const GRACE_TICKS: u64 = <u64>COUNTER_RECLAIM_GRACE_MS << TICK_BITS;
const SPIN_LIMIT: i32 = 1 << 16;
const RESTART_LIMIT: i32 = 64;
// The table may be configured smaller than its region (config `counters.entries`): the mask
// is a header word, written before any counter is used and constant after that.
// @ts-ignore: decorator
@inline function slotMask(): u32 {
  return load<u32>(HDR_COUNTER_MASK);
}
const PROBES: u32 = <u32>COUNTER_PROBE_LIMIT;

/** What a hit returns when no counter can be had for the key: see rateLimitFixedWindow. */
const NO_COUNTER: f64 = -Infinity;

// insert()'s results besides a slot number.
const FULL: i32 = -1;
const RETRY: i32 = -2;

/** The state of the slot lookup() last returned (an instance global: per thread). */
let snapState: u64 = 0;

// @ts-ignore: decorator
@inline function entryAt(slot: u32): usize {
  return <usize>COUNTER_TABLE_OFFSET + <usize>slot * <usize>COUNTER_ENTRY_BYTES;
}

// @ts-ignore: decorator
@inline function makeKey(lo: u32, hi: u32): u64 {
  return (<u64>(hi == 0 ? 1 : hi) << 32) | <u64>lo;
}

// @ts-ignore: decorator
@inline function ticksOf(now: f64): u64 {
  const ms = Math.floor(now);
  return (<u64>ms << TICK_BITS) | <u64>((now - ms) * TICKS_PER_MS);
}

// @ts-ignore: decorator
@inline function checkNow(now: f64): void {
  // Written so that NaN fails too.
  if (!(now >= 0 && now <= NOW_MAX)) throw new RangeError(E_RATE_LIMIT_NOW);
}

// @ts-ignore: decorator
@inline function checkWindow(windowMs: u32, limit: u32): void {
  if (windowMs == 0 || limit == 0 || <u64>limit > COUNT_MASK) throw new RangeError(E_RATE_LIMIT_RULE);
}

/**
 * A consistent (key, state) snapshot of the slot at `p`, whose key word held `key`: the
 * state, or STATE_KILLED for "this slot is not key's counter (any more)". See HITTING above.
 */
function snapshot(p: usize, key: u64): u64 {
  let spins = 0;
  while (true) {
    const s = atomic.load<u64>(p, COUNTER_STATE_FIELD);
    if (s == STATE_LOCKED) {
      // Being claimed or re-keyed. Normally for a few dozen instructions; a claimer that
      // keeps it longer is cancelled (DEAD OR STALLED CLAIMERS above).
      if (++spins > SPIN_LIMIT) atomic.cmpxchg<u64>(p, STATE_LOCKED, STATE_KILLED, COUNTER_STATE_FIELD);
      continue;
    }
    if (s == STATE_KILLED) return STATE_KILLED;
    if (atomic.load<u64>(p, COUNTER_KEY_FIELD) != key) return STATE_KILLED;
    if (atomic.load<u64>(p, COUNTER_STATE_FIELD) == s) return s;
  }
}

/** The slot of key's counter, with its snapshot in snapState; or -1 if it has none. */
function lookup(key: u64): i32 {
  const home = <u32>key & slotMask();
  for (let i: u32 = 0; i < PROBES; i++) {
    const slot = (home + i) & slotMask();
    const p = entryAt(slot);
    const k = atomic.load<u64>(p, COUNTER_KEY_FIELD);
    if (k == key) {
      const s = snapshot(p, key);
      if (s != STATE_KILLED) {
        snapState = s;
        return <i32>slot;
      }
    } else if (k == KEY_EMPTY && atomic.load<u64>(p, COUNTER_STATE_FIELD) != STATE_LOCKED) {
      return -1; // never used: nothing is beyond it
    }
  }
  return -1;
}

/** Step 3 of INSERTING: whether the claimer of probe position `mine` may publish key. */
function onlyOne(key: u64, home: u32, mine: u32): bool {
  for (let j: u32 = 0; j < PROBES; j++) {
    if (j == mine) continue;
    const q = entryAt((home + j) & slotMask());
    while (atomic.load<u64>(q, COUNTER_KEY_FIELD) == key) {
      const t = atomic.load<u64>(q, COUNTER_STATE_FIELD);
      if (t == STATE_KILLED) break;
      if (t == STATE_LOCKED) {
        if (j < mine) return false;
        if (atomic.cmpxchg<u64>(q, STATE_LOCKED, STATE_KILLED, COUNTER_STATE_FIELD) == STATE_LOCKED) break;
        continue; // it changed meanwhile: look again
      }
      // A published counter for key (or a slot re-keyed between the two loads: stepping
      // back then is merely unnecessary).
      return false;
    }
  }
  return true;
}

/**
 * Claims a slot for key and publishes `first` (key's state after this hit) in it: the slot
 * number, or FULL (nothing claimable in key's probe range), or RETRY (stepped back, or key
 * turned out to have a counter: look it up again).
 */
function insert(key: u64, nowT: u64, first: u64): i32 {
  const home = <u32>key & slotMask();
  const reclaimBefore: u64 = nowT > GRACE_TICKS ? nowT - GRACE_TICKS : 0;
  for (let i: u32 = 0; i < PROBES; i++) {
    const slot = (home + i) & slotMask();
    const p = entryAt(slot);
    let s = atomic.load<u64>(p, COUNTER_STATE_FIELD);
    // Claimable: never used (0), or expired for the grace period. LOCKED and KILLED are
    // above any time, so never claimable.
    while (s == 0 || s < reclaimBefore) {
      if (atomic.load<u64>(p, COUNTER_KEY_FIELD) == key) return RETRY; // key's own old counter
      const seen = atomic.cmpxchg<u64>(p, s, STATE_LOCKED, COUNTER_STATE_FIELD);
      if (seen != s) {
        s = seen;
        continue;
      }
      atomic.store<u64>(p, key, COUNTER_KEY_FIELD);
      if (onlyOne(key, home, i) &&
          atomic.cmpxchg<u64>(p, STATE_LOCKED, first, COUNTER_STATE_FIELD) == STATE_LOCKED) {
        return <i32>slot;
      }
      // Step back. The slot is still ours (LOCKED, or KILLED, which only its claimer moves
      // on from): make it a claimable tombstone, above s as (M) wants.
      atomic.store<u64>(p, KEY_TOMBSTONE, COUNTER_KEY_FIELD);
      atomic.store<u64>(p, s + 1, COUNTER_STATE_FIELD);
      return RETRY;
    }
  }
  return FULL;
}

/**
 * One hit on a fixed-window counter: the key is the 64-bit hash keyHi:keyLo, `now` the
 * caller's clock in ms (Date.now(): the same clock in every thread; its fraction is
 * ignored), the window [k * windowMs, (k + 1) * windowMs) holds `limit` hits (1 to 2^22 - 1).
 *
 * RETURN ENCODING (the same for all three algorithms), one f64 so JS reads it with no
 * BigInt and no second call:
 *   >= 0        admitted; the value is how many more hits would be admitted now (remaining)
 *   < 0, finite rejected, consuming nothing; -value is the retry-after in ms (> 0): the
 *               time until a hit would be admitted if no other hits come
 *   -Infinity   no counter for this key (the table has no room in its probe range): apply
 *               the configured table-full behaviour. A caller that only tests `< 0`
 *               denies, so forgetting the case fails closed.
 * `now` is an f64 rather than two u32s: Date.now() is an integer below 2^53, exact in an
 * f64, and passes to WASM with no splitting or BigInt.
 */
export function rateLimitFixedWindow(keyLo: u32, keyHi: u32, now: f64, windowMs: u32, limit: u32): f64 {
  checkNow(now);
  checkWindow(windowMs, limit);
  const key = makeKey(keyLo, keyHi);
  const nowT = ticksOf(now);
  const window = <u64>windowMs;
  const max = <u64>limit;
  const end = ((nowT >> TICK_BITS) / window + 1) * window;
  for (let restart = 0; restart < RESTART_LIMIT; restart++) {
    const slot = lookup(key);
    if (slot < 0) {
      const got = insert(key, nowT, (end << TICK_BITS) | 1);
      if (got >= 0) return <f64>(max - 1);
      if (got == FULL) return NO_COUNTER;
      continue;
    }
    const p = entryAt(<u32>slot);
    let s = snapState;
    while (true) {
      // A stored window end before ours: an old window, count 0. The same: count on. A
      // later one: another thread's clock is ahead of ours; count in its window, never back.
      let e = end;
      let count: u64 = 0;
      if (s >> TICK_BITS >= end) {
        e = s >> TICK_BITS;
        count = s & COUNT_MASK;
      }
      if (count >= max) return -(<f64>e - now);
      if (atomic.cmpxchg<u64>(p, s, (e << TICK_BITS) | (count + 1), COUNTER_STATE_FIELD) == s) {
        return <f64>(max - count - 1);
      }
      s = snapshot(p, key);
      if (s == STATE_KILLED) break;
    }
  }
  return NO_COUNTER;
}

/**
 * One hit on a sliding-window counter (the two-window estimate described at the top of this
 * file). Arguments and return encoding as rateLimitFixedWindow. The retry-after is when the
 * estimate, with no further hits, drops below the limit, to the ms.
 */
export function rateLimitSlidingWindow(keyLo: u32, keyHi: u32, now: f64, windowMs: u32, limit: u32): f64 {
  checkNow(now);
  checkWindow(windowMs, limit);
  const key = makeKey(keyLo, keyHi);
  const nowT = ticksOf(now);
  const W = <u64>windowMs;
  const max = <u64>limit;
  let w = (nowT >> TICK_BITS) / W;
  let elapsed = (nowT >> TICK_BITS) - w * W;
  for (let restart = 0; restart < RESTART_LIMIT; restart++) {
    const curKey = key ^ (w & 1);
    const slot = lookup(curKey);
    const sc: u64 = slot >= 0 ? snapState : 0;
    const sp: u64 = lookup(curKey ^ 1) >= 0 ? snapState : 0;
    // A sub-counter's state holds ((its window + 2) * W) << 22 | count; 0 (none) gives -2.
    const wc = <i64>((sc >> TICK_BITS) / W) - 2;
    const wp = <i64>((sp >> TICK_BITS) / W) - 2;
    const latest = wc > wp ? wc : wp;
    if (latest > <i64>w) {
      // Another thread already counts in a later window (our `now` lags): join it, at its
      // start, where the previous window weighs most.
      w = <u64>latest;
      elapsed = 0;
      continue;
    }
    const cur: u64 = wc == <i64>w ? sc & COUNT_MASK : 0;
    const prev: u64 = wp == <i64>w - 1 ? sp & COUNT_MASK : 0;
    // All terms are below 2^22 * 2^32: exact in i64.
    const weighted = <i64>(prev * (W - elapsed));
    const cap = <i64>(max * W);
    if (weighted + <i64>(cur * W) < cap) {
      const next = (((w + 2) * W) << TICK_BITS) | (cur + 1);
      if (slot >= 0) {
        if (atomic.cmpxchg<u64>(entryAt(<u32>slot), sc, next, COUNTER_STATE_FIELD) != sc) {
          restart--; // another hit got in first (progress): not a restart that counts
          continue;
        }
      } else {
        const got = insert(curKey, nowT, next);
        if (got == FULL) return NO_COUNTER;
        if (got < 0) continue;
      }
      // Further hits admitted at this instant: j >= 0 with weighted + (cur + 1 + j) * W < cap.
      const room = cap - weighted - <i64>((cur + 1) * W);
      return room > 0 ? <f64>((room + <i64>W - 1) / <i64>W) : 0;
    }
    // Rejected. The estimate only falls with time (until the next window starts counting).
    let target: u64;
    if (cur < max) {
      // The previous window's weight blocks: the first ms e' with prev * (W - e') <
      // (max - cur) * W. Here prev >= max - cur > 0, and e' <= W (at W, cur alone counts).
      target = w * W + (prev - (max - cur)) * W / prev + 1;
    } else {
      // This window is full: in the next one it weighs cur * (W - e'') / W.
      target = (w + 1) * W + (cur - max) * W / cur + 1;
    }
    return -(<f64>target - now);
  }
  return NO_COUNTER;
}

/**
 * One hit on a GCRA counter (a token bucket of `burst` tokens refilled one per
 * `intervalTicks`, i.e. windowMs / limit expressed in ticks of 2^-22 ms, an integer from 1
 * to 2^53; burst * intervalTicks at most 2^60). TAT' = max(TAT, now) + T; admitted if
 * TAT' - now <= burst * T. Arguments and return encoding as rateLimitFixedWindow, except
 * that `now` keeps its fraction here. The retry-after is exact: TAT' - burst * T - now.
 */
export function rateLimitGcra(keyLo: u32, keyHi: u32, now: f64, intervalTicks: f64, burst: u32): f64 {
  checkNow(now);
  if (!(intervalTicks >= 1 && intervalTicks <= INTERVAL_MAX) || burst == 0 ||
      intervalTicks * <f64>burst > TAU_MAX) {
    throw new RangeError(E_RATE_LIMIT_RULE);
  }
  const key = makeKey(keyLo, keyHi);
  const nowT = ticksOf(now);
  const T = <u64>intervalTicks;
  const tau = T * <u64>burst;
  for (let restart = 0; restart < RESTART_LIMIT; restart++) {
    const slot = lookup(key);
    if (slot < 0) {
      const got = insert(key, nowT, nowT + T);
      if (got >= 0) return <f64>(burst - 1);
      if (got == FULL) return NO_COUNTER;
      continue;
    }
    const p = entryAt(<u32>slot);
    let s = snapState;
    while (true) {
      const next = (s > nowT ? s : nowT) + T;
      if (next - nowT > tau) return -(<f64>(next - tau - nowT) / TICKS_PER_MS);
      if (atomic.cmpxchg<u64>(p, s, next, COUNTER_STATE_FIELD) == s) {
        return <f64>((tau - (next - nowT)) / T);
      }
      s = snapshot(p, key);
      if (s == STATE_KILLED) break;
    }
  }
  return NO_COUNTER;
}

/**
 * The process's rate-limit hash seed (header word HDR_HASH_SEED): sets it to `candidate`
 * (a random non-zero u32) if it is still 0, with one cmpxchg, and returns the seed in
 * force, so every thread of the process hashes keys alike.
 */
export function rateLimitSeed(candidate: u32): u32 {
  const seed = atomic.load<u32>(HDR_HASH_SEED);
  if (seed != 0) return seed;
  const old = atomic.cmpxchg<u32>(HDR_HASH_SEED, 0, candidate == 0 ? 1 : candidate);
  return old != 0 ? old : (candidate == 0 ? 1 : candidate);
}

/**
 * Gives back one hit that `rateLimitFixedWindow`, `rateLimitSlidingWindow` or
 * `rateLimitGcra` (algorithm 1, 2, 3) admitted for this key at this same `now`: for a
 * request admitted by one limit and then rejected by another, so that it consumes no quota
 * anywhere. `param` is windowMs (1, 2) or intervalTicks (3). Returns 1 if a hit was given
 * back, 0 if there was nothing to give back: no counter, or the window has moved on (the
 * count is gone anyway), or another thread's later clock moved the counter to a later
 * window than `now`'s (the hit may have been counted in either: give back nothing rather
 * than what another window admitted). For GCRA: TAT - T, but not below now (a full bucket).
 */
export function rateLimitRefund(algorithm: u32, keyLo: u32, keyHi: u32, now: f64, param: f64): u32 {
  checkNow(now);
  if (algorithm < 1 || algorithm > 3 || !(param >= 1 && param <= INTERVAL_MAX)) throw new RangeError(E_RATE_LIMIT_RULE);
  let key = makeKey(keyLo, keyHi);
  const nowT = ticksOf(now);
  const n = nowT >> TICK_BITS;
  const P = <u64>param;
  // Fixed: the state of `now`'s window has end E; sliding: the sub-counter of now's window
  // w holds (w + 2) * W. Both are expected exactly, with a count above 0.
  let expect: u64 = 0;
  if (algorithm == 1) {
    expect = (n / P + 1) * P;
  } else if (algorithm == 2) {
    key ^= (n / P) & 1;
    expect = (n / P + 2) * P;
  }
  const slot = lookup(key);
  if (slot < 0) return 0;
  const p = entryAt(<u32>slot);
  let s = snapState;
  while (true) {
    let next: u64;
    if (algorithm == 3) {
      if (s <= nowT) return 0;
      next = s - P > nowT ? s - P : nowT;
    } else {
      if (s >> TICK_BITS != expect || (s & COUNT_MASK) == 0) return 0;
      next = s - 1;
    }
    if (atomic.cmpxchg<u64>(p, s, next, COUNTER_STATE_FIELD) == s) return 1;
    s = snapshot(p, key);
    if (s == STATE_KILLED) return 0;
  }
}

/**
 * The sliding-window estimate prev * (W - elapsed) / W + cur of a key at `now`, without
 * counting a hit: for a caller that counts with rateLimitSlidingWindow and wants to report
 * a count (threat-guard's block reasons). A snapshot, not a decision: nothing is written.
 */
export function rateLimitSlidingCount(keyLo: u32, keyHi: u32, now: f64, windowMs: u32): f64 {
  checkNow(now);
  if (windowMs == 0) throw new RangeError(E_RATE_LIMIT_RULE);
  const key = makeKey(keyLo, keyHi);
  const W = <u64>windowMs;
  const n = <u64>Math.floor(now);
  const w = n / W;
  const elapsed = n - w * W;
  const curKey = key ^ (w & 1);
  const sc: u64 = lookup(curKey) >= 0 ? snapState : 0;
  const sp: u64 = lookup(curKey ^ 1) >= 0 ? snapState : 0;
  const wc = <i64>((sc >> TICK_BITS) / W) - 2;
  const wp = <i64>((sp >> TICK_BITS) / W) - 2;
  const cur: u64 = wc == <i64>w ? sc & COUNT_MASK : 0;
  const prev: u64 = wp == <i64>w - 1 ? sp & COUNT_MASK : 0;
  return <f64>prev * <f64>(W - elapsed) / <f64>W + <f64>cur;
}

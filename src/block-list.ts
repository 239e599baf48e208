// The temporary deny list (threat-guard's auto-blocks) from JS. Per-request lookups and the
// writes go through the WASM exports (wasm/assembly/block-list.ts: table format, writers'
// lock, readers' seqlock); this file parses addresses for them, and lists the table for the
// admin API and the metrics by reading the entries itself with the same seqlock protocol.
import type { HotPath } from './shared-memory.js'
import { formatIp, parseIp, V4, V6 } from './ip/parse.js'
import type { Family } from './ip/parse.js'
import {
  BLOCK_COUNT_FIELD, BLOCK_ENTRIES, BLOCK_ENTRY_BYTES, BLOCK_FAMILY_FIELD, BLOCK_FULL_FIELD, BLOCK_IP_FIELD,
  BLOCK_PLACED_FIELD, BLOCK_REASON_FIELD, BLOCK_REASONS, BLOCK_REGION_OFFSET, BLOCK_SEQ_FIELD, BLOCK_SINCE_FIELD,
  BLOCK_TABLE_OFFSET, BLOCK_UNTIL_FIELD
} from '../wasm/layout.js'

/** What placing a block did. */
export type PlaceResult = 'placed' | 'already-blocked' | 'table-full' | 'busy'

/** One bad-response count of a block's reason. */
export interface ReasonCount { status: number, count: number }

/** A block as the admin API shows it. */
export interface BlockEntry {
  ip: string
  /** ISO time the block ends. */
  until: string
  /** ISO time it was placed. */
  since: string
  reason: { count: number, statuses: ReasonCount[] }
}

/** The figures the metrics need (tollgate_autoblocks_total, tollgate_blocked_ips). */
export interface BlockStats {
  /** Blocks placed since the process started (a counter; wraps at 2^32). */
  autoblocksTotal: number
  /** Addresses blocked now (a gauge). */
  blockedIps: number
  /** Blocks that found no room in their probe range since start. */
  tableFull: number
}

/** Tries of a write whose lock stays busy (see placeParsed). */
const PLACE_TRIES = 3

const PLACE: Readonly<Record<number, PlaceResult>> = { 1: 'placed', 0: 'already-blocked', [-1]: 'table-full', [-2]: 'busy' }

/**
 * The block list as one thread uses it: one per thread, over that thread's HotPath. The
 * address is parsed into a scratch array owned by this object, then one WASM call.
 */
export class BlockList {
  readonly #hot: HotPath
  readonly #w = new Uint32Array(4)

  constructor (hot: HotPath) {
    this.#hot = hot
  }

  /**
   * For an address already parsed by parseIp into `w`: the time (ms) it is blocked until if
   * blocked at `now`, else -(epoch + 1) (see blockLookup in WASM).
   */
  lookupParsed (family: typeof V4 | typeof V6, w: Uint32Array, now: number): number {
    // parseIp writes only word 0 for IPv4: the others may hold an earlier IPv6 address.
    if (family === V4) return this.#hot.blockLookup(family, w[0] as number, 0, 0, 0, now)
    return this.#hot.blockLookup(family, w[0] as number, w[1] as number, w[2] as number, w[3] as number, now)
  }

  /** Blocks a parsed address from `now` to `until`; `reasons` are at most 4 (status, count). */
  placeParsed (family: typeof V4 | typeof V6, w: Uint32Array, now: number, until: number, count: number, reasons: readonly ReasonCount[]): PlaceResult {
    const r = (i: number): number => {
      const x = reasons[i]
      return x === undefined ? 0 : ((x.status << 16) | Math.min(0xffff, Math.max(0, Math.round(x.count)))) >>> 0
    }
    const v6 = family === V6
    // Busy: another thread held the writers' lock through a million loads, i.e. it was
    // descheduled inside it. Each try is ~1 ms of spinning; after a few the caller gets
    // 'busy' and tries again on its next event rather than stall a request longer.
    let code = -2
    for (let tries = 0; tries < PLACE_TRIES && code === -2; tries++) {
      code = this.#hot.blockPlace(family, w[0] as number, v6 ? w[1] as number : 0, v6 ? w[2] as number : 0, v6 ? w[3] as number : 0, now, until,
        Math.min(0xffffffff, count) >>> 0, r(0), r(1), r(2), r(3))
    }
    return PLACE[code] ?? 'busy'
  }

  /**
   * Lifts the block of `ip` (text); true if it was blocked. Throws a RangeError for text
   * that is not an address, and an Error if the writers' lock stayed busy.
   */
  lift (ip: string, now = Date.now()): boolean {
    const w = this.#w
    const family = parseIp(ip, w)
    if (family === 0) throw new RangeError(`'${ip.slice(0, 60)}' is not an IP address`)
    const v6 = family === V6
    let code = -2
    for (let tries = 0; tries < PLACE_TRIES && code === -2; tries++) {
      code = this.#hot.blockLift(family, w[0] as number, v6 ? w[1] as number : 0, v6 ? w[2] as number : 0, v6 ? w[3] as number : 0, now)
    }
    if (code === -2) throw new Error('the block list is busy; try again')
    return code === 1
  }

  /** Whether `ip` (text) is blocked at `now`. */
  isBlocked (ip: string, now = Date.now()): boolean {
    const w = this.#w
    const family = parseIp(ip, w)
    if (family === 0) return false
    return this.lookupParsed(family, w, now) > now
  }
}

// The memory never grows, so one view per memory object stays valid for good.
const views = new WeakMap<WebAssembly.Memory, { u32: Uint32Array, u64: BigUint64Array }>()

function viewsOf (memory: WebAssembly.Memory): { u32: Uint32Array, u64: BigUint64Array } {
  let v = views.get(memory)
  if (v === undefined) {
    v = { u32: new Uint32Array(memory.buffer), u64: new BigUint64Array(memory.buffer) }
    views.set(memory, v)
  }
  return v
}

/** Spins per entry before an entry whose writer died (sequence stuck odd) is skipped. */
const READ_TRIES = 1000

/**
 * Every address blocked at `now`, read from the shared table without the writers' lock
 * (the seqlock protocol of wasm/assembly/block-list.ts, with JS Atomics, which are as
 * sequentially consistent as WASM's). Longest-blocked first.
 */
export function listBlocks (memory: WebAssembly.Memory, now = Date.now()): BlockEntry[] {
  const { u32, u64 } = viewsOf(memory)
  const out: Array<BlockEntry & { untilMs: number }> = []
  const w = new Uint32Array(4)
  const n = BigInt(Math.floor(now))
  for (let slot = 0; slot < BLOCK_ENTRIES; slot++) {
    const p = BLOCK_TABLE_OFFSET + slot * BLOCK_ENTRY_BYTES
    // Most slots were never used: one load tells.
    if (Atomics.load(u32, (p + BLOCK_FAMILY_FIELD) >>> 2) === 0) continue
    for (let tries = 0; tries < READ_TRIES; tries++) {
      const s = Atomics.load(u32, (p + BLOCK_SEQ_FIELD) >>> 2)
      if ((s & 1) !== 0) continue
      const family = Atomics.load(u32, (p + BLOCK_FAMILY_FIELD) >>> 2)
      for (let i = 0; i < 4; i++) w[i] = Atomics.load(u32, (p + BLOCK_IP_FIELD + 4 * i) >>> 2)
      const until = Atomics.load(u64, (p + BLOCK_UNTIL_FIELD) / 8)
      const since = Atomics.load(u64, (p + BLOCK_SINCE_FIELD) / 8)
      const count = Atomics.load(u32, (p + BLOCK_COUNT_FIELD) >>> 2)
      const reasons: ReasonCount[] = []
      for (let i = 0; i < BLOCK_REASONS; i++) {
        const r = Atomics.load(u32, (p + BLOCK_REASON_FIELD + 4 * i) >>> 2)
        if (r !== 0) reasons.push({ status: r >>> 16, count: r & 0xffff })
      }
      if (Atomics.load(u32, (p + BLOCK_SEQ_FIELD) >>> 2) !== s) continue
      if (until > n && (family === V4 || family === V6)) {
        out.push({
          ip: formatIp(family as Family, w),
          until: new Date(Number(until)).toISOString(),
          since: new Date(Number(since)).toISOString(),
          reason: { count, statuses: reasons },
          untilMs: Number(until)
        })
      }
      break
    }
  }
  out.sort((a, b) => b.untilMs - a.untilMs || (a.ip < b.ip ? -1 : 1))
  return out.map(({ untilMs: _, ...e }) => e)
}

/**
 * The block-list figures for the metrics (tollgate_autoblocks_total counter,
 * tollgate_blocked_ips gauge), read from the shared memory: callable from the acceptor at
 * scrape time, asking no worker anything.
 */
export function blockStats (memory: WebAssembly.Memory, now = Date.now()): BlockStats {
  const { u32 } = viewsOf(memory)
  return {
    autoblocksTotal: Atomics.load(u32, (BLOCK_REGION_OFFSET + BLOCK_PLACED_FIELD) >>> 2),
    blockedIps: listBlocks(memory, now).length,
    tableFull: Atomics.load(u32, (BLOCK_REGION_OFFSET + BLOCK_FULL_FIELD) >>> 2)
  }
}

/**
 * In the acceptor, in cluster mode: a block another instance placed (or this one, echoed
 * back) goes into this process's shared table, so every worker refuses the address at its
 * next lookup. One writer per process for the fleet's blocks; a block already in force is
 * left as it is.
 */
export function fleetBlockPlacer (hot: HotPath): (ip: string, until: number) => PlaceResult | 'invalid' | 'expired' {
  const blocks = new BlockList(hot)
  const w = new Uint32Array(4)
  return (ip, until) => {
    const now = Date.now()
    if (!(until > now)) return 'expired'
    const family = parseIp(ip, w)
    if (family !== V4 && family !== V6) return 'invalid'
    return blocks.placeParsed(family, w, now, until, 0, [])
  }
}

/** An address in the form blocks are stored and announced in (formatIp), or undefined for text that is not one. */
export function canonicalIp (text: string): string | undefined {
  const w = new Uint32Array(4)
  const family = parseIp(text, w)
  return family === V4 || family === V6 ? formatIp(family, w) : undefined
}

/**
 * The block list for the admin API, in the acceptor: listing reads the shared table; a lift
 * goes through the acceptor's own WASM instance, so every worker sees it at its next lookup.
 */
export function blockAdmin (memory: WebAssembly.Memory, hot: HotPath): { list: () => BlockEntry[], lift: (ip: string) => boolean, stats: () => BlockStats } {
  const blocks = new BlockList(hot)
  return {
    list: () => listBlocks(memory),
    lift: (ip: string) => blocks.lift(ip),
    stats: () => blockStats(memory)
  }
}

import {
  BUCKETS_MS, DENIAL_SLOTS, ENTRY_OFFSET, FIXED, HDR_DENIALS, HDR_HEAP, HDR_ROUTES, HEAP_BYTES, HEAP_OFFSET, HIST_SUM,
  MAX_DENIALS, MAX_ROUTES, METHOD_OTHER, NO_ROUTE, OVERFLOW, REGION_BYTES, ROUTE_BLOCK_SLOTS, ROUTE_DURATION, ROUTE_SLOTS,
  ROUTE_UPSTREAM, SLOTS_OFFSET, TOTAL_SLOTS, UPSTREAM_ERROR_KINDS
} from './layout.js'
import type { UpstreamErrorKind } from './layout.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const NB = BUCKETS_MS.length

/** Index into METHOD_NAMES without building a string (a switch on the few real methods). */
export function methodIndex (m: string): number {
  switch (m) {
    case 'GET': return 0
    case 'HEAD': return 1
    case 'POST': return 2
    case 'PUT': return 3
    case 'PATCH': return 4
    case 'DELETE': return 5
    case 'OPTIONS': return 6
    default: return METHOD_OTHER
  }
}

/** A fresh region for one worker slot (the acceptor makes these). */
export function createMetricsRegion (): SharedArrayBuffer {
  return new SharedArrayBuffer(REGION_BYTES)
}

/**
 * A worker's writer on its own metrics region (layout.ts). Label sets are interned once:
 * a route's block when a generation is built, a (plugin, code) denial key the first time it
 * is seen; the request path then only adds to slots by index, with no string built.
 */
export class MetricsWriter {
  readonly #hdr: Int32Array
  readonly #entries: Uint32Array
  readonly #heap: Uint8Array
  readonly #slots: BigInt64Array
  readonly #routes = new Map<string, number>()
  readonly #denials = new Map<string, Map<string, number>>()
  /** The block of requests no route matched. */
  readonly noRoute: number

  constructor (region: SharedArrayBuffer) {
    this.#hdr = new Int32Array(region, 0, 16)
    this.#entries = new Uint32Array(region, ENTRY_OFFSET, (HEAP_OFFSET - ENTRY_OFFSET) / 4)
    this.#heap = new Uint8Array(region, HEAP_OFFSET, HEAP_BYTES)
    this.#slots = new BigInt64Array(region, SLOTS_OFFSET, TOTAL_SLOTS)
    // A thread replacing a dead one in the same slot picks up the names it published, so
    // the same label sets keep their slots and their counts.
    const routes = Atomics.load(this.#hdr, HDR_ROUTES)
    for (let i = 0; i < routes; i++) this.#routes.set(this.#name(i), ROUTE_SLOTS + i * ROUTE_BLOCK_SLOTS)
    const denials = Atomics.load(this.#hdr, HDR_DENIALS)
    for (let i = 0; i < denials; i++) {
      const [plugin = '', code = ''] = this.#name(MAX_ROUTES + i).split('\n')
      let byCode = this.#denials.get(plugin)
      if (byCode === undefined) this.#denials.set(plugin, byCode = new Map())
      byCode.set(code, DENIAL_SLOTS + i)
    }
    this.noRoute = this.routeBlock(NO_ROUTE)
  }

  #name (entry: number): string {
    const at = this.#entries[entry * 2] as number
    const len = this.#entries[entry * 2 + 1] as number
    return decoder.decode(this.#heap.subarray(at, at + len))
  }

  /** Publish a name as `entry`; false when the heap is full. */
  #publish (entry: number, name: string, countField: number, count: number): boolean {
    const bytes = encoder.encode(name)
    const used = Atomics.load(this.#hdr, HDR_HEAP)
    if (used + bytes.length > HEAP_BYTES) return false
    this.#heap.set(bytes, used)
    this.#entries[entry * 2] = used
    this.#entries[entry * 2 + 1] = bytes.length
    Atomics.store(this.#hdr, HDR_HEAP, used + bytes.length)
    // Last: the reader sees the count only after the name and the entry are written.
    Atomics.store(this.#hdr, countField, count + 1)
    return true
  }

  /** The first slot of route `name`'s block (interned at generation build). */
  routeBlock (name: string): number {
    const known = this.#routes.get(name)
    if (known !== undefined) return known
    const n = Atomics.load(this.#hdr, HDR_ROUTES)
    // The last block is kept for the overflow label.
    if (n >= MAX_ROUTES - 1 && name !== OVERFLOW) return this.routeBlock(OVERFLOW)
    if (!this.#publish(n, name, HDR_ROUTES, n)) return name === OVERFLOW ? ROUTE_SLOTS : this.routeBlock(OVERFLOW)
    const base = ROUTE_SLOTS + n * ROUTE_BLOCK_SLOTS
    this.#routes.set(name, base)
    return base
  }

  #denialSlot (plugin: string, code: string): number {
    let byCode = this.#denials.get(plugin)
    const known = byCode?.get(code)
    if (known !== undefined) return known
    const n = Atomics.load(this.#hdr, HDR_DENIALS)
    const overflow = plugin === OVERFLOW && code === OVERFLOW
    if (n >= MAX_DENIALS - 1 && !overflow) return this.#denialSlot(OVERFLOW, OVERFLOW)
    if (!this.#publish(MAX_ROUTES + n, `${plugin}\n${code}`, HDR_DENIALS, n)) return overflow ? DENIAL_SLOTS : this.#denialSlot(OVERFLOW, OVERFLOW)
    if (byCode === undefined) this.#denials.set(plugin, byCode = new Map())
    byCode.set(code, DENIAL_SLOTS + n)
    return DENIAL_SLOTS + n
  }

  /** One finished request: its route block, method, status and timings (ms). */
  request (block: number, method: number, status: number, durationMs: number, upstreamMs: number | undefined): void {
    const s = this.#slots
    let cls = ((status / 100) | 0) - 1
    if (cls < 0 || cls > 4) cls = 4
    Atomics.add(s, block + method * 5 + cls, 1n)
    this.#observe(block + ROUTE_DURATION, durationMs)
    if (upstreamMs !== undefined) this.#observe(block + ROUTE_UPSTREAM, upstreamMs)
  }

  #observe (base: number, ms: number): void {
    let i = 0
    while (i < NB && ms > (BUCKETS_MS[i] as number)) i++
    Atomics.add(this.#slots, base + i, 1n)
    Atomics.add(this.#slots, base + HIST_SUM, BigInt(Math.round(ms * 1000)))
  }

  /** A request refused (by a plugin, or by the gateway with a 4xx). */
  denial (plugin: string, code: string): void {
    Atomics.add(this.#slots, this.#denialSlot(plugin, code), 1n)
  }

  upstreamError (kind: UpstreamErrorKind): void {
    Atomics.add(this.#slots, FIXED.upstreamErrors + UPSTREAM_ERROR_KINDS.indexOf(kind), 1n)
  }

  /** Add to a fixed slot (FIXED.* + label index). */
  add (slot: number, n = 1n): void {
    Atomics.add(this.#slots, slot, n)
  }

  /** A thread starting in a slot: the connections the dead one had are gone with it. */
  resetGauges (): void { Atomics.store(this.#slots, FIXED.activeConnections, 0n) }

  connectionOpened (): void { Atomics.add(this.#slots, FIXED.activeConnections, 1n) }
  connectionClosed (): void { Atomics.sub(this.#slots, FIXED.activeConnections, 1n) }
}

/** Where a thread's counts go: the worker's region, or a scratch one (acceptor dry runs, tests). */
let current: MetricsWriter | undefined

export function setThreadMetrics (w: MetricsWriter): void { current = w }

/** This thread's writer (a scratch region until the worker sets its own). */
export function threadMetrics (): MetricsWriter {
  current ??= new MetricsWriter(createMetricsRegion())
  return current
}

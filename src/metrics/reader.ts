import {
  ENTRY_OFFSET, HDR_DENIALS, HDR_ROUTES, HEAP_BYTES, HEAP_OFFSET, MAX_ROUTES, ROUTE_BLOCK_SLOTS, ROUTE_SLOTS, DENIAL_SLOTS,
  SLOTS_OFFSET, TOTAL_SLOTS
} from './layout.js'

const decoder = new TextDecoder()

/** One worker region as the acceptor reads it: names decoded once, counters loaded atomically. */
export class RegionReader {
  readonly #hdr: Int32Array
  readonly #entries: Uint32Array
  readonly #heap: Uint8Array
  readonly #slots: BigInt64Array
  /** Names are immutable once published: decoded once, kept. */
  readonly #routeNames: string[] = []
  readonly #denialKeys: Array<{ plugin: string, code: string }> = []

  constructor (region: SharedArrayBuffer) {
    this.#hdr = new Int32Array(region, 0, 16)
    this.#entries = new Uint32Array(region, ENTRY_OFFSET, (HEAP_OFFSET - ENTRY_OFFSET) / 4)
    this.#heap = new Uint8Array(region, HEAP_OFFSET, HEAP_BYTES)
    this.#slots = new BigInt64Array(region, SLOTS_OFFSET, TOTAL_SLOTS)
  }

  #name (entry: number): string {
    const at = this.#entries[entry * 2] as number
    const len = this.#entries[entry * 2 + 1] as number
    return decoder.decode(this.#heap.subarray(at, at + len))
  }

  /** Route names published so far, by block index. */
  routes (): readonly string[] {
    const n = Atomics.load(this.#hdr, HDR_ROUTES)
    for (let i = this.#routeNames.length; i < n; i++) this.#routeNames.push(this.#name(i))
    return this.#routeNames
  }

  denials (): ReadonlyArray<{ plugin: string, code: string }> {
    const n = Atomics.load(this.#hdr, HDR_DENIALS)
    for (let i = this.#denialKeys.length; i < n; i++) {
      const [plugin = '', code = ''] = this.#name(MAX_ROUTES + i).split('\n')
      this.#denialKeys.push({ plugin, code })
    }
    return this.#denialKeys
  }

  /** A slot's value (as a Number: exact up to 2^53). */
  slot (i: number): number { return Number(Atomics.load(this.#slots, i)) }

  routeSlot (route: number, offset: number): number { return this.slot(ROUTE_SLOTS + route * ROUTE_BLOCK_SLOTS + offset) }

  denialSlot (d: number): number { return this.slot(DENIAL_SLOTS + d) }
}

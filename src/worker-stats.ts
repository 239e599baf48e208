import {
  WORKER_STAT_GENERATION, WORKER_STAT_IN_FLIGHT, WORKER_STAT_SERVED, WORKER_STATS_BYTES, WORKER_STATS_MAX, WORKER_STATS_OFFSET
} from '../wasm/layout.js'

/**
 * A worker's own stats line in the shared memory (wasm/layout.ts, "Per-worker stats"): the
 * worker writes it with Atomics on every request, the acceptor reads it for /status without
 * asking the worker anything, so a busy or stuck worker still shows its numbers.
 */
export class WorkerStats {
  readonly #w: Int32Array
  readonly #gen: number
  readonly #inFlight: number
  readonly #served: number

  constructor (memory: WebAssembly.Memory, slot: number) {
    if (!Number.isInteger(slot) || slot < 0 || slot >= WORKER_STATS_MAX) throw new RangeError(`worker slot ${slot} out of range`)
    this.#w = new Int32Array(memory.buffer)
    const base = (WORKER_STATS_OFFSET + slot * WORKER_STATS_BYTES) >>> 2
    this.#gen = base + (WORKER_STAT_GENERATION >>> 2)
    this.#inFlight = base + (WORKER_STAT_IN_FLIGHT >>> 2)
    this.#served = base + (WORKER_STAT_SERVED >>> 2)
  }

  start (): void {
    Atomics.add(this.#w, this.#inFlight, 1)
    Atomics.add(this.#w, this.#served, 1)
  }

  end (): void { Atomics.sub(this.#w, this.#inFlight, 1) }

  setGeneration (n: number): void { Atomics.store(this.#w, this.#gen, n) }

  /** A fresh thread in a slot starts from zero. */
  reset (): void {
    Atomics.store(this.#w, this.#gen, 0)
    Atomics.store(this.#w, this.#inFlight, 0)
  }

  read (): { generation: number, inFlight: number, served: number } {
    return {
      generation: Atomics.load(this.#w, this.#gen) >>> 0,
      inFlight: Atomics.load(this.#w, this.#inFlight),
      served: Atomics.load(this.#w, this.#served) >>> 0
    }
  }
}

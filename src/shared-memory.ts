// WebAssembly's types ship only in TypeScript's DOM lib (@types/node 20 has none), and the
// tsconfig's lib is ES2023 alone. This reference adds the DOM lib to the whole program; it
// can go once the tsconfig lists "DOM" itself.
/// <reference lib="dom" />
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { codes } from './errors.js'
import {
  COUNTER_ENTRIES,
  HDR_COUNTER_MASK,
  HDR_GENERATION,
  HDR_FLAGS,
  HDR_IP_LIVE,
  HDR_LAYOUT_VERSION,
  HDR_MAGIC,
  HEADER_OFFSET,
  IP_TABLE_LIVE_A,
  LAYOUT_VERSION,
  MAGIC,
  MEMORY_BYTES,
  MEMORY_PAGES
} from '../wasm/layout.js'

/** The WASM hot path on the shared memory, as one thread sees it. */
export interface HotPath {
  /** The config generation in the header (atomic load, in WASM). */
  generation(): number
  /** Publishes a config generation (atomic store, in WASM); `n` is a u32. */
  setGeneration(n: number): void
  /** The header's flag bits (atomic load, in WASM). */
  flags(): number
  /**
   * One rate-limit hit on the fixed-window counter of the 64-bit key hash keyHi:keyLo (u32s)
   * at `now` (ms). Result: >= 0 admitted (that many remaining), < 0 rejected (-result is the
   * retry-after in ms), -Infinity no room in the table. Use src/rate-limit/counters.ts;
   * wasm/assembly/rate-limit.ts has the details.
   */
  rateLimitFixedWindow(keyLo: number, keyHi: number, now: number, windowMs: number, limit: number): number
  /** As rateLimitFixedWindow, for the sliding-window (two-window estimate) counter. */
  rateLimitSlidingWindow(keyLo: number, keyHi: number, now: number, windowMs: number, limit: number): number
  /** As rateLimitFixedWindow, for a GCRA counter: emission interval in ticks of 2^-22 ms, and burst. */
  rateLimitGcra(keyLo: number, keyHi: number, now: number, intervalTicks: number, burst: number): number
  /** Gives back one hit admitted at this `now` (algorithm 1 fixed, 2 sliding, 3 gcra; param: windowMs or interval ticks): 1 if it did, else 0. */
  rateLimitRefund(algorithm: number, keyLo: number, keyHi: number, now: number, param: number): number
  /** The process's rate-limit hash seed: sets it to `candidate` (a random u32) if still unset; returns it. */
  rateLimitSeed(candidate: number): number
  /** The sliding-window estimate of a key at `now` without counting a hit (windowMs as the hits used). */
  rateLimitSlidingCount(keyLo: number, keyHi: number, now: number, windowMs: number): number
  /**
   * The block list (wasm/assembly/block-list.ts; use src/block-list.ts): the time (ms) the
   * address (family 4 or 6, words as parseIp gives them) is blocked until, if > now; else
   * -(epoch + 1).
   */
  blockLookup(family: number, w0: number, w1: number, w2: number, w3: number, now: number): number
  /** Blocks an address until `until`: 1 placed, 0 already blocked, -1 no slot, -2 lock busy. */
  blockPlace(family: number, w0: number, w1: number, w2: number, w3: number, now: number, until: number,
    count: number, r0: number, r1: number, r2: number, r3: number): number
  /** Lifts an address's block: 1 lifted, 0 was not blocked, -2 lock busy. */
  blockLift(family: number, w0: number, w1: number, w2: number, w3: number, now: number): number
  /** Whether IPv4 `ip` (u32) is in IP set `set` of table `region` (0 = A, 1 = B); throws for an unknown region or set. Use src/ip/matcher.ts. */
  ipContains4(region: number, set: number, ip: number): boolean
  /** Whether IPv6 w0:w1:w2:w3 (big-endian u32 words) is in IP set `set` of table `region`; throws for an unknown region or set. */
  ipContains6(region: number, set: number, w0: number, w1: number, w2: number, w3: number): boolean
}

// What tollgate.wasm exports (wasm/assembly/index.ts). u32 results arrive as signed i32.
interface HotPathExports {
  layoutVersion(): number
  staticDataEnd(): number
  generation(): number
  setGeneration(g: number): void
  flags(): number
  rateLimitFixedWindow(keyLo: number, keyHi: number, now: number, windowMs: number, limit: number): number
  rateLimitSlidingWindow(keyLo: number, keyHi: number, now: number, windowMs: number, limit: number): number
  rateLimitGcra(keyLo: number, keyHi: number, now: number, intervalTicks: number, burst: number): number
  rateLimitRefund(algorithm: number, keyLo: number, keyHi: number, now: number, param: number): number
  rateLimitSeed(candidate: number): number
  rateLimitSlidingCount(keyLo: number, keyHi: number, now: number, windowMs: number): number
  blockLookup(family: number, w0: number, w1: number, w2: number, w3: number, now: number): number
  blockPlace(family: number, w0: number, w1: number, w2: number, w3: number, now: number, until: number,
    count: number, r0: number, r1: number, r2: number, r3: number): number
  blockLift(family: number, w0: number, w1: number, w2: number, w3: number, now: number): number
  ipContains4(region: number, set: number, ip: number): number
  ipContains6(region: number, set: number, w0: number, w1: number, w2: number, w3: number): number
}

// Compiled, this file is dist/src/shared-memory.js; under tap's TypeScript loader it runs
// from src/shared-memory.ts, one directory higher. The .wasm is at <repo>/wasm/build either way.
const wasmUrl = new URL(
  new URL(import.meta.url).pathname.endsWith('.ts') ? '../wasm/build/tollgate.wasm' : '../../wasm/build/tollgate.wasm',
  import.meta.url
)

// The memory never grows (layout.ts), so one view per memory object stays valid for good.
const views = new WeakMap<WebAssembly.Memory, Uint32Array>()

function words (memory: WebAssembly.Memory): Uint32Array {
  let view = views.get(memory)
  if (view === undefined) {
    view = new Uint32Array(memory.buffer)
    views.set(memory, view)
  }
  return view
}

function checkU32 (name: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`${name} must be an integer from 0 to 2^32-1, got ${String(n)}`)
  }
}

/**
 * Creates the process's one shared memory, sized and laid out by wasm/layout.ts, with its
 * header initialised: layout version, generation 0, IP table A live, then the magic.
 */
export function createSharedMemory (): WebAssembly.Memory {
  const memory = new WebAssembly.Memory({ initial: MEMORY_PAGES, maximum: MEMORY_PAGES, shared: true })
  const w = words(memory)
  Atomics.store(w, HDR_LAYOUT_VERSION >>> 2, LAYOUT_VERSION)
  Atomics.store(w, HDR_GENERATION >>> 2, 0)
  Atomics.store(w, HDR_FLAGS >>> 2, 0)
  Atomics.store(w, HDR_IP_LIVE >>> 2, IP_TABLE_LIVE_A)
  Atomics.store(w, HDR_COUNTER_MASK >>> 2, COUNTER_ENTRIES - 1)
  // Last, so that a memory carrying the magic has a complete header.
  Atomics.store(w, HDR_MAGIC >>> 2, MAGIC)
  return memory
}

/**
 * Uses only the first `entries` counter slots (a power of two, 1024 to COUNTER_ENTRIES).
 * Call before any counter is hit, i.e. before workers start: probing depends on the mask,
 * so it is fixed for the life of the process.
 */
export function setCounterEntries (memory: WebAssembly.Memory, entries: number): void {
  if (!Number.isInteger(entries) || entries < 1024 || entries > COUNTER_ENTRIES || (entries & (entries - 1)) !== 0) {
    throw new RangeError(`counter entries must be a power of two from 1024 to ${COUNTER_ENTRIES}, got ${String(entries)}`)
  }
  Atomics.store(words(memory), HDR_COUNTER_MASK >>> 2, entries - 1)
}

/** Publishes config generation `n` (a u32) in the header with one atomic store. */
export function setGeneration (memory: WebAssembly.Memory, n: number): void {
  checkU32('generation', n)
  Atomics.store(words(memory), HDR_GENERATION >>> 2, n)
}

/** Reads the config generation from the header (atomic load). */
export function readGeneration (memory: WebAssembly.Memory): number {
  return Atomics.load(words(memory), HDR_GENERATION >>> 2)
}

function checkMemory (memory: WebAssembly.Memory): void {
  const buffer = memory.buffer as ArrayBufferLike
  if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength !== MEMORY_BYTES) {
    throw codes.GW_ERR_WASM(`expected a shared memory of ${MEMORY_BYTES} bytes (${MEMORY_PAGES} pages); use createSharedMemory()`)
  }
  const w = words(memory)
  if (Atomics.load(w, HDR_MAGIC >>> 2) !== MAGIC) {
    throw codes.GW_ERR_WASM('the memory has no tollgate header; use createSharedMemory()')
  }
  const version = Atomics.load(w, HDR_LAYOUT_VERSION >>> 2)
  if (version !== LAYOUT_VERSION) {
    throw codes.GW_ERR_WASM(`the memory has layout version ${version}, this code expects ${LAYOUT_VERSION}`)
  }
}

let modulePromise: Promise<WebAssembly.Module> | undefined

async function compileHotPath (): Promise<WebAssembly.Module> {
  // readFile never returns a Buffer over a SharedArrayBuffer, as WebAssembly.compile's type wants.
  let bytes: Uint8Array<ArrayBuffer>
  try {
    bytes = await readFile(wasmUrl) as Uint8Array<ArrayBuffer>
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw codes.GW_ERR_WASM(`${fileURLToPath(wasmUrl)} is missing; run \`npm run build\``, { cause: err })
    }
    throw codes.GW_ERR_WASM((err as Error).message, { cause: err })
  }
  return await WebAssembly.compile(bytes)
}

// Compiled once per thread, on first use (undici's lazyllhttp does the same).
function hotPathModule (): Promise<WebAssembly.Module> {
  if (modulePromise === undefined) {
    const p = compileHotPath()
    modulePromise = p
    // Forget a failure, so that a call after `npm run build` tries again.
    p.catch(() => { if (modulePromise === p) modulePromise = undefined })
  }
  return modulePromise
}

// AssemblyScript's abort(message, fileName, line, column): message and fileName point at
// strings in the module's static data (UTF-16, byte length in the u32 before the first char).
function readAsString (buffer: ArrayBufferLike, ptr: number): string {
  if (ptr < 4 || ptr % 2 !== 0 || ptr > buffer.byteLength) return '?'
  const bytes = new DataView(buffer).getUint32(ptr - 4, true)
  if (bytes % 2 !== 0 || bytes > 512 || ptr + bytes > buffer.byteLength) return '?'
  return String.fromCharCode(...new Uint16Array(buffer, ptr, bytes / 2))
}

/**
 * Instantiates the WASM hot path (wasm/build/tollgate.wasm, compiled once per thread) on a
 * memory made by createSharedMemory(), in this thread or another. Rejects if the .wasm is
 * missing (run `npm run build`) or was built for another layout version.
 */
export async function loadHotPath (memory: WebAssembly.Memory): Promise<HotPath> {
  checkMemory(memory)
  const abort = (message: number, fileName: number, line: number, column: number): never => {
    const buffer = memory.buffer
    throw new Error(`WASM abort: ${readAsString(buffer, message >>> 0)} (${readAsString(buffer, fileName >>> 0)}:${line >>> 0}:${column >>> 0})`)
  }
  let instance: WebAssembly.Instance
  try {
    instance = await WebAssembly.instantiate(await hotPathModule(), { env: { memory, abort } })
  } catch (err) {
    // A module built from another layout declares another memory size, and fails to link.
    if (!(err instanceof WebAssembly.LinkError)) throw err
    throw codes.GW_ERR_WASM(`${fileURLToPath(wasmUrl)} does not fit this layout (${err.message}); run \`npm run build\``, { cause: err })
  }
  const ex = instance.exports as unknown as HotPathExports
  const built = typeof ex.layoutVersion === 'function' ? ex.layoutVersion() >>> 0 : 0
  if (built !== LAYOUT_VERSION) {
    throw codes.GW_ERR_WASM(`${fileURLToPath(wasmUrl)} was built for layout version ${built}, this code expects ${LAYOUT_VERSION}; run \`npm run build\``)
  }
  // Every instantiation, in every thread, rewrites the module's active data segments, so
  // they must stay in the static page below the header (layout.ts). This runs after the
  // first such write: it cannot undo a bad build, only refuse to run on it.
  if (ex.staticDataEnd() >>> 0 > HEADER_OFFSET) {
    throw codes.GW_ERR_WASM(`the module's static data ends at ${ex.staticDataEnd() >>> 0}, past the header at ${HEADER_OFFSET}`)
  }
  return Object.freeze({
    generation: () => ex.generation() >>> 0,
    setGeneration: (n: number) => {
      checkU32('generation', n)
      ex.setGeneration(n)
    },
    flags: () => ex.flags() >>> 0,
    // Called on every request: the exports themselves, no wrapper (they return f64s, and
    // take u32s, which JS numbers up to 2^32 - 1 pass as).
    rateLimitFixedWindow: ex.rateLimitFixedWindow,
    rateLimitSlidingWindow: ex.rateLimitSlidingWindow,
    rateLimitGcra: ex.rateLimitGcra,
    rateLimitRefund: ex.rateLimitRefund,
    rateLimitSeed: (candidate: number) => ex.rateLimitSeed(candidate) >>> 0,
    rateLimitSlidingCount: ex.rateLimitSlidingCount,
    blockLookup: ex.blockLookup,
    blockPlace: ex.blockPlace,
    blockLift: ex.blockLift,
    ipContains4: (region: number, set: number, ip: number) => ex.ipContains4(region, set, ip) !== 0,
    ipContains6: (region: number, set: number, w0: number, w1: number, w2: number, w3: number) =>
      ex.ipContains6(region, set, w0, w1, w2, w3) !== 0
  })
}

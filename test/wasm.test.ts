import t from 'tap'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createSharedMemory, loadHotPath, readGeneration, setGeneration } from '../src/shared-memory.js'
import * as layout from '../wasm/layout.js'

const {
  PAGE_BYTES, MEMORY_BYTES, MEMORY_PAGES, HEADER_OFFSET, HEADER_BYTES, HEADER_FIELD_BYTES,
  HDR_MAGIC, HDR_FLAGS, HDR_GENERATION, COUNTER_TABLE_OFFSET, COUNTER_ENTRY_BYTES,
  COUNTER_ENTRIES, COUNTER_KEY_FIELD, COUNTER_STATE_FIELD, LAYOUT_VERSION, MAGIC, STATIC_OFFSET
} = layout

const repo = (p: string): string => fileURLToPath(new URL(`../${p}`, import.meta.url))
const wasmPath = repo('wasm/build/tollgate.wasm')
const abort = (): never => { throw new Error('abort') }

function u32 (memory: WebAssembly.Memory, offset: number): number {
  return Atomics.load(new Uint32Array(memory.buffer), offset >>> 2)
}
function u64 (memory: WebAssembly.Memory, offset: number): bigint {
  return Atomics.load(new BigUint64Array(memory.buffer), offset / 8)
}

t.test('layout', async t => {
  // asc types each constant as i32 (layout.ts header), so each must be an integer below 2^31.
  const notI32 = Object.entries(layout).filter(([, v]) => !(Number.isInteger(v) && v >= 0 && v < 2 ** 31))
  t.same(notI32, [], 'every constant is a non-negative i32')
  const regions = [
    ['static', layout.STATIC_OFFSET, layout.STATIC_BYTES],
    ['header', HEADER_OFFSET, HEADER_BYTES],
    ['ip table A', layout.IP_TABLE_A_OFFSET, layout.IP_TABLE_BYTES],
    ['ip table B', layout.IP_TABLE_B_OFFSET, layout.IP_TABLE_BYTES],
    ['counters', COUNTER_TABLE_OFFSET, layout.COUNTER_TABLE_BYTES],
    ['blocks', layout.BLOCK_REGION_OFFSET, layout.BLOCK_REGION_BYTES]
  ] as const
  let end = 0
  for (const [name, offset, bytes] of [...regions].sort((a, b) => a[1] - b[1])) {
    t.equal(offset % PAGE_BYTES, 0, `${name} starts on a page`)
    t.ok(bytes > 0 && bytes % PAGE_BYTES === 0, `${name} is whole pages`)
    t.ok(offset >= end, `${name} does not overlap the region before it`)
    end = offset + bytes
  }
  t.ok(end <= MEMORY_BYTES, 'all regions fit in the memory')
  t.equal(MEMORY_BYTES % PAGE_BYTES, 0)
  t.equal(MEMORY_PAGES, MEMORY_BYTES / PAGE_BYTES)
  t.ok(MEMORY_BYTES <= 512 * 1024 * 1024, 'memory is at most 512 MiB')

  const header = [HDR_MAGIC, layout.HDR_LAYOUT_VERSION, HDR_GENERATION, HDR_FLAGS, layout.HDR_IP_LIVE, layout.HDR_HASH_SEED, layout.HDR_COUNTER_MASK, layout.HDR_RESERVED]
  t.equal(new Set(header).size, header.length, 'header fields are distinct')
  for (const f of header) t.ok(f % 4 === 0 && f >= HEADER_OFFSET && f + 4 <= HEADER_OFFSET + HEADER_FIELD_BYTES, `header field at ${f} is an aligned word inside the header`)
  t.ok(HEADER_FIELD_BYTES <= HEADER_BYTES)

  const fields = [COUNTER_KEY_FIELD, COUNTER_STATE_FIELD]
  t.equal(new Set(fields).size, fields.length, 'counter fields are distinct')
  // Both are u64s updated by i64 atomics, which must be 8-byte aligned.
  for (const f of fields) t.ok(f % 8 === 0 && f + 8 <= COUNTER_ENTRY_BYTES, `counter field at ${f} is an aligned u64 inside the entry`)
  t.equal(COUNTER_TABLE_OFFSET % 8, 0)
  t.equal(64 % COUNTER_ENTRY_BYTES, 0, 'entries do not straddle cache lines')
  t.equal(COUNTER_ENTRIES & (COUNTER_ENTRIES - 1), 0, 'entry count is a power of two')
  t.equal(layout.COUNTER_TABLE_BYTES, COUNTER_ENTRIES * COUNTER_ENTRY_BYTES)

  // Block entries: u32 words 4-aligned, u64 words 8-aligned, all inside one cache line.
  const u32s = [layout.BLOCK_SEQ_FIELD, layout.BLOCK_FAMILY_FIELD, layout.BLOCK_EPOCH_FIELD, layout.BLOCK_COUNT_FIELD]
  for (const f of u32s) t.ok(f % 4 === 0 && f + 4 <= layout.BLOCK_ENTRY_BYTES, `block u32 field at ${f}`)
  for (const f of [layout.BLOCK_UNTIL_FIELD, layout.BLOCK_SINCE_FIELD]) t.ok(f % 8 === 0 && f + 8 <= layout.BLOCK_ENTRY_BYTES, `block u64 field at ${f}`)
  t.ok(layout.BLOCK_IP_FIELD % 4 === 0 && layout.BLOCK_IP_FIELD + 16 <= layout.BLOCK_EPOCH_FIELD, 'the address words end before the epoch')
  t.equal(layout.BLOCK_REASON_FIELD + 4 * layout.BLOCK_REASONS, layout.BLOCK_ENTRY_BYTES, 'the reason words end the entry')
  t.equal(layout.BLOCK_ENTRY_BYTES, 64)
  t.equal(layout.BLOCK_TABLE_OFFSET % 64, 0)
  t.equal(layout.BLOCK_ENTRIES & (layout.BLOCK_ENTRIES - 1), 0, 'block entry count is a power of two')
  t.equal(layout.BLOCK_LOCK_FIELD % 8, 0, 'the writers\' lock is an aligned u64')
})

t.test('asconfig.json builds the layout', async t => {
  const { options } = JSON.parse(readFileSync(repo('wasm/asconfig.json'), 'utf8'))
  t.match(options, {
    runtime: 'stub',
    importMemory: true,
    sharedMemory: true,
    initialMemory: MEMORY_PAGES,
    maximumMemory: MEMORY_PAGES,
    memoryBase: STATIC_OFFSET
  })
  t.ok(options.enable.includes('threads'))
})

t.test('the built module', async t => {
  const module = await WebAssembly.compile(readFileSync(wasmPath))
  t.same(WebAssembly.Module.imports(module).sort((a, b) => a.name.localeCompare(b.name)), [
    { module: 'env', name: 'abort', kind: 'function' },
    { module: 'env', name: 'memory', kind: 'memory' }
  ])
  t.same(WebAssembly.Module.exports(module).map(e => e.name).sort(),
    ['blockLift', 'blockLookup', 'blockPlace', 'flags', 'generation', 'ipContains4', 'ipContains6', 'layoutVersion', 'rateLimitFixedWindow',
      'rateLimitGcra', 'rateLimitRefund', 'rateLimitSeed', 'rateLimitSlidingCount', 'rateLimitSlidingWindow', 'setGeneration', 'staticDataEnd'])

  const memory = createSharedMemory()
  setGeneration(memory, 42)
  const header = new Uint32Array(memory.buffer, HEADER_OFFSET, HEADER_FIELD_BYTES / 4).slice()
  const { exports } = await WebAssembly.instantiate(module, { env: { memory, abort } })
  t.equal((exports.layoutVersion as () => number)(), LAYOUT_VERSION)
  t.ok((exports.staticDataEnd as () => number)() <= HEADER_OFFSET, 'static data ends below the header')
  t.same(new Uint32Array(memory.buffer, HEADER_OFFSET, HEADER_FIELD_BYTES / 4), header, 'instantiating leaves the header alone')

  // The module declares a shared memory of exactly MEMORY_PAGES: anything else fails to link.
  const unshared = new WebAssembly.Memory({ initial: MEMORY_PAGES, maximum: MEMORY_PAGES })
  await t.rejects(WebAssembly.instantiate(module, { env: { memory: unshared, abort } }), WebAssembly.LinkError)
  const bigger = new WebAssembly.Memory({ initial: MEMORY_PAGES + 1, maximum: MEMORY_PAGES + 1, shared: true })
  await t.rejects(WebAssembly.instantiate(module, { env: { memory: bigger, abort } }), WebAssembly.LinkError)
})

t.test('createSharedMemory', async t => {
  const memory = createSharedMemory()
  t.ok(memory.buffer instanceof SharedArrayBuffer)
  t.equal(memory.buffer.byteLength, MEMORY_BYTES)
  t.equal(u32(memory, HDR_MAGIC), MAGIC)
  t.equal(u32(memory, layout.HDR_LAYOUT_VERSION), LAYOUT_VERSION)
  t.equal(readGeneration(memory), 0)
  t.throws(() => setGeneration(memory, -1), RangeError)
  t.throws(() => setGeneration(memory, 2 ** 32), RangeError)
  t.throws(() => setGeneration(memory, 1.5), RangeError)
  t.equal(readGeneration(memory), 0, 'a refused generation is not stored')
})

t.test('JS and WASM see the same header words', async t => {
  const memory = createSharedMemory()
  const hot = await loadHotPath(memory)
  t.equal(hot.generation(), 0)
  setGeneration(memory, 7)
  t.equal(hot.generation(), 7, 'JS store, WASM load')
  hot.setGeneration(0xfffffffe)
  t.equal(readGeneration(memory), 0xfffffffe, 'WASM store, JS load, as u32')
  t.equal(u32(memory, HDR_GENERATION), 0xfffffffe)
  t.throws(() => hot.setGeneration(-1), RangeError)
  t.equal(hot.flags(), 0)
  Atomics.store(new Uint32Array(memory.buffer), HDR_FLAGS >>> 2, 0x80000001)
  t.equal(hot.flags(), 0x80000001)
})

t.test('rate-limit counters live at the layout offsets', async t => {
  const memory = createSharedMemory()
  const hot = await loadHotPath(memory)
  // The home slot is the key's low bits; the last slot checks the table's end.
  for (const slot of [5, COUNTER_ENTRIES - 1]) {
    const now = 1_700_000_000_500
    t.equal(hot.rateLimitFixedWindow(slot, 0x1234, now, 1000, 3), 2, 'admitted, 2 remaining')
    const entry = COUNTER_TABLE_OFFSET + slot * COUNTER_ENTRY_BYTES
    t.equal(u64(memory, entry + COUNTER_KEY_FIELD), (0x1234n << 32n) | BigInt(slot), 'key word: hi:lo')
    t.equal(u64(memory, entry + COUNTER_STATE_FIELD), (1_700_000_001_000n << 22n) | 1n, 'state word: window end << 22 | count')
  }
  t.equal(u64(memory, COUNTER_TABLE_OFFSET + 4 * COUNTER_ENTRY_BYTES) + u64(memory, COUNTER_TABLE_OFFSET + 6 * COUNTER_ENTRY_BYTES), 0n, 'neighbours untouched')
  t.equal(hot.rateLimitSeed(0), 1, 'seed: an unset seed takes the candidate (0 becomes 1)')
  t.equal(hot.rateLimitSeed(99), 1, 'seed: then it stays')
  t.equal(u32(memory, layout.HDR_HASH_SEED), 1)
  t.throws(() => hot.rateLimitFixedWindow(1, 1, Number.NaN, 1000, 3), { message: /now must be ms from 0 to 4e12 \(wasm\/assembly\/rate-limit\.ts:\d+:\d+\)/ })
  t.throws(() => hot.rateLimitFixedWindow(1, 1, 0, 0, 3), { message: /bad window, limit, interval or burst/ })
})

t.test('loadHotPath refuses a memory it cannot use', async t => {
  const small = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true })
  await t.rejects(loadHotPath(small), { code: 'GW_ERR_WASM', message: /createSharedMemory/ })
  const memory = createSharedMemory()
  Atomics.store(new Uint32Array(memory.buffer), HDR_MAGIC >>> 2, 0)
  await t.rejects(loadHotPath(memory), { code: 'GW_ERR_WASM', message: /no tollgate header/ })
})

// Hand-assembled stand-in for a stale build: imports a shared memory of `pages` pages and
// exports layoutVersion() returning `version` (< 64, so its signed LEB128 is one byte).
function staleWasm (pages: number, version: number): Uint8Array {
  const leb = (n: number): number[] => n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...leb(n >>> 7)]
  const name = (s: string): number[] => [s.length, ...Buffer.from(s)]
  const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 0, 1, 0x7f]), // one type: () -> i32
    ...section(2, [1, ...name('env'), ...name('memory'), 2, 0x03, ...leb(pages), ...leb(pages)]), // shared, min = max
    ...section(3, [1, 0]), // one function, of that type
    ...section(7, [1, ...name('layoutVersion'), 0, 0]),
    ...section(10, [1, 4, 0, 0x41, version, 0x0b]) // no locals; i32.const version; end
  ])
}

t.test('compiled loader: missing or stale .wasm says to run npm run build', async t => {
  // A copy of the compiled tree, with a wasm/build of the test's making: this exercises the
  // path that dist/src/ resolves, and leaves the repo's wasm/build alone for other tests.
  const dir = t.testdir({
    'package.json': JSON.stringify({ type: 'module' }),
    node_modules: t.fixture('symlink', repo('node_modules')),
    wasm: { build: {} }
  })
  cpSync(repo('dist/src'), join(dir, 'dist/src'), { recursive: true })
  cpSync(repo('dist/wasm'), join(dir, 'dist/wasm'), { recursive: true })
  const builtWasm = join(dir, 'wasm/build/tollgate.wasm')
  // A query makes a fresh module instance, with its own compiled-module cache.
  const load = async (query: string): Promise<typeof import('../src/shared-memory.js')> =>
    await import(`${pathToFileURL(join(dir, 'dist/src/shared-memory.js')).href}?${query}`)
  const memory = createSharedMemory()

  const missing = await load('missing')
  await t.rejects(missing.loadHotPath(memory), { code: 'GW_ERR_WASM', message: /wasm\/build\/tollgate\.wasm is missing; run `npm run build`/ })
  // The failure is not cached: once the file is there, the next call loads it.
  cpSync(wasmPath, builtWasm)
  t.equal((await missing.loadHotPath(memory)).generation(), 0)

  writeFileSync(builtWasm, staleWasm(MEMORY_PAGES, LAYOUT_VERSION + 1))
  await t.rejects((await load('version')).loadHotPath(memory),
    { code: 'GW_ERR_WASM', message: new RegExp(`built for layout version ${LAYOUT_VERSION + 1}, this code expects ${LAYOUT_VERSION}; run \`npm run build\``) })

  writeFileSync(builtWasm, staleWasm(MEMORY_PAGES - 1, LAYOUT_VERSION))
  await t.rejects((await load('size')).loadHotPath(memory), { code: 'GW_ERR_WASM', message: /does not fit this layout .*; run `npm run build`/ })
})

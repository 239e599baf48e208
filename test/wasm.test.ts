import t from 'tap'
import { once } from 'node:events'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { createSharedMemory, loadHotPath, readGeneration, setGeneration } from '../src/shared-memory.js'
import * as layout from '../wasm/layout.js'

const {
  PAGE_BYTES, MEMORY_BYTES, MEMORY_PAGES, HEADER_OFFSET, HEADER_BYTES, HEADER_FIELD_BYTES,
  HDR_MAGIC, HDR_FLAGS, HDR_GENERATION, COUNTER_TABLE_OFFSET, COUNTER_ENTRY_BYTES,
  COUNTER_ENTRIES, COUNTER_COUNT_FIELD, LAYOUT_VERSION, MAGIC, STATIC_OFFSET
} = layout

const repo = (p: string): string => fileURLToPath(new URL(`../${p}`, import.meta.url))
const wasmPath = repo('wasm/build/tollgate.wasm')
const abort = (): never => { throw new Error('abort') }

function u32 (memory: WebAssembly.Memory, offset: number): number {
  return Atomics.load(new Uint32Array(memory.buffer), offset >>> 2)
}
function countOf (memory: WebAssembly.Memory, slot: number): number {
  return u32(memory, COUNTER_TABLE_OFFSET + slot * COUNTER_ENTRY_BYTES + COUNTER_COUNT_FIELD)
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
    ['counters', COUNTER_TABLE_OFFSET, layout.COUNTER_TABLE_BYTES]
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

  const header = [HDR_MAGIC, layout.HDR_LAYOUT_VERSION, HDR_GENERATION, HDR_FLAGS, layout.HDR_IP_LIVE, layout.HDR_RESERVED]
  t.equal(new Set(header).size, header.length, 'header fields are distinct')
  for (const f of header) t.ok(f % 4 === 0 && f >= HEADER_OFFSET && f + 4 <= HEADER_OFFSET + HEADER_FIELD_BYTES, `header field at ${f} is an aligned word inside the header`)
  t.ok(HEADER_FIELD_BYTES <= HEADER_BYTES)

  const fields = [layout.COUNTER_KEY_LO_FIELD, layout.COUNTER_KEY_HI_FIELD, layout.COUNTER_WINDOW_FIELD, COUNTER_COUNT_FIELD,
    layout.COUNTER_PREV_COUNT_FIELD, layout.COUNTER_STATE_FIELD, layout.COUNTER_POLICY_FIELD]
  t.equal(new Set(fields).size, fields.length, 'counter fields are distinct')
  for (const f of fields) t.ok(f % 4 === 0 && f + 4 <= COUNTER_ENTRY_BYTES, `counter field at ${f} is an aligned word inside the entry`)
  t.equal(64 % COUNTER_ENTRY_BYTES, 0, 'entries do not straddle cache lines')
  t.equal(COUNTER_ENTRIES & (COUNTER_ENTRIES - 1), 0, 'entry count is a power of two')
  t.equal(layout.COUNTER_TABLE_BYTES, COUNTER_ENTRIES * COUNTER_ENTRY_BYTES)
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
    ['counterAdd', 'flags', 'generation', 'layoutVersion', 'setGeneration', 'staticDataEnd'])

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

t.test('counterAdd', async t => {
  const memory = createSharedMemory()
  const hot = await loadHotPath(memory)
  t.equal(hot.counterAdd(5, 3), 0, 'returns the count before the add')
  t.equal(hot.counterAdd(5, 3), 3)
  t.equal(countOf(memory, 5), 6, 'JS reads the count word at the layout offset')
  t.equal(countOf(memory, 4) + countOf(memory, 6), 0, 'neighbours untouched')
  const entry = COUNTER_TABLE_OFFSET + 5 * COUNTER_ENTRY_BYTES
  t.same([...new Uint32Array(memory.buffer, entry, COUNTER_ENTRY_BYTES / 4)], [0, 0, 0, 6, 0, 0, 0, 0], 'only the count word')
  t.equal(hot.counterAdd(COUNTER_ENTRIES - 1, 1), 0, 'the last slot is inside the memory')
  t.throws(() => hot.counterAdd(COUNTER_ENTRIES, 1), { message: /counter slot out of range \(wasm\/assembly\/index\.ts:\d+:\d+\)/ })
  // 2^27 * 32 wraps to address 0: the bound check, not the memory's end, must stop it.
  t.throws(() => hot.counterAdd(2 ** 27, 1), { message: /counter slot out of range/ })
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
  t.equal((await missing.loadHotPath(memory)).counterAdd(0, 1), 0)

  writeFileSync(builtWasm, staleWasm(MEMORY_PAGES, LAYOUT_VERSION + 1))
  await t.rejects((await load('version')).loadHotPath(memory),
    { code: 'GW_ERR_WASM', message: new RegExp(`built for layout version ${LAYOUT_VERSION + 1}, this code expects ${LAYOUT_VERSION}; run \`npm run build\``) })

  writeFileSync(builtWasm, staleWasm(MEMORY_PAGES - 1, LAYOUT_VERSION))
  await t.rejects((await load('size')).loadHotPath(memory), { code: 'GW_ERR_WASM', message: /does not fit this layout .*; run `npm run build`/ })
})

t.test('4 worker threads x 100,000 counterAdd on one memory', async t => {
  const threads = 4
  const adds = 100_000
  const slot = 12345
  const memory = createSharedMemory()
  setGeneration(memory, 41)
  const gate = new Int32Array(new SharedArrayBuffer(4))
  const fixture = new URL('./fixtures/counter-worker.mjs', import.meta.url)
  // execArgv: [] keeps tap's TypeScript loader out of the workers: the fixture is plain .mjs.
  const workers = Array.from({ length: threads }, () => new Worker(fixture, { workerData: { memory, gate, slot, adds }, execArgv: [] }))
  t.teardown(() => Promise.all(workers.map(w => w.terminate())))

  const ready = await Promise.all(workers.map(w => once(w, 'message')))
  t.same(ready.map(([m]) => m), Array(threads).fill({ type: 'ready', generation: 41 }), 'each worker reads the generation set in main')
  const exits = workers.map(w => once(w, 'exit'))
  Atomics.store(gate, 0, 1)
  Atomics.notify(gate, 0)
  t.same((await Promise.all(exits)).map(([code]) => code), Array(threads).fill(0))
  t.equal(countOf(memory, slot), threads * adds)
})

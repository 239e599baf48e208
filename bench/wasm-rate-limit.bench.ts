// Rate-limit counters (src/rate-limit/counters.ts + wasm/assembly/rate-limit.ts): ns per
// hit from JS, and hits/s with 1, 2 and 4 worker threads on one shared memory.
// Run: `node dist/bench/wasm-rate-limit.bench.js` after `npm run build` (about 20 s).
//
// Goal (the issue): median <= 150 ns per hit from JS, and no loss of throughput with more
// workers (the counters are not a lock).
//
// Part 1, one thread. Each figure is the median over batches of the per-hit mean
// (process.hrtime.bigint around a batch), so timer overhead is amortised and one GC pause
// moves one batch, not the median. A hit = counters.hit(rule, key, now, out): hashing the
// key string (HalfSipHash-1-3), one WASM call, decoding into a reused result object. `now`
// is the caller's coarse clock, read once per batch, not per hit (Date.now() costs extra;
// its own row shows how much). Windows are made to roll between batches (a virtual clock
// that jumps a few windows per batch) so "admitted" rows stay admitted: every hit then
// does a cmpxchg. Keys: short client-IP strings; 100k keys = 1.6 MiB of counters, beyond
// the L2 cache, so that row pays cache misses the one-key row does not.
//
// Part 2, N worker threads started together, each hammering for DURATION_MS:
//   distinct keys   each thread its own 100k keys, GCRA that never rejects (every hit a
//                   cmpxchg): threads share no counter, only the table.
//   one key, under  all threads on one key, GCRA that never rejects: every hit a cmpxchg
//                   on one cache line, the worst case for contention.
//   one key, over   all threads on one key past its limit (a flood): rejections, loads only.
// The machine's cores cap the scaling: with C cores, N > C threads cannot beat C threads.
import { cpus } from 'node:os'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { createSharedMemory, loadHotPath } from '../src/shared-memory.js'
import { newRateLimitResult, RateLimitCounters, type RateLimitRule } from '../src/rate-limit/counters.js'
import { hashKey, hashPrefix } from '../src/rate-limit/hash.js'

const BATCHES = 21
const BATCH = 100_000
const DURATION_MS = 1000
const THREADS = [1, 2, 4]
const KEYS = 100_000
const T0 = 1_700_000_040_000

// A GCRA rule that admits everything (4e9 per second, huge burst): every hit writes.
const ALWAYS: RateLimitRule = { algorithm: 'gcra', limit: 2 ** 32 - 1, windowMs: 1000, burst: 1_000_000_000 }

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

function keysFor (prefix: string, n: number): string[] {
  // Client IPs as text, e.g. "10.1.134.7": what a rate-limit-by-IP plugin hashes.
  return Array.from({ length: n }, (_, i) => `${prefix}.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`)
}

/** Median ns per call of `run(batchIndex)`, which makes BATCH calls. */
function measure (run: (b: number) => number): number {
  let sink = 0
  for (let b = 0; b < 3; b++) sink += run(b) // warm up (JIT, table pages)
  const ns: number[] = []
  for (let b = 3; b < BATCHES + 3; b++) {
    const start = process.hrtime.bigint()
    sink += run(b)
    ns.push(Number(process.hrtime.bigint() - start) / BATCH)
  }
  if (sink === -1) console.log(sink)
  return median(ns)
}

async function singleThread (): Promise<Array<[string, number]>> {
  const memory = createSharedMemory()
  const hot = await loadHotPath(memory)
  const counters = new RateLimitCounters(hot)
  const one = ['203.0.113.7']
  const many = keysFor('10', KEYS)
  const out = newRateLimitResult()
  const rows: Array<[string, number]> = []
  const hitRow = (name: string, rule: RateLimitRule, keys: string[], windowMs: number): void => {
    const compiled = counters.rule('bench', rule)
    const mask = keys.length - 1
    const pow2 = (keys.length & mask) === 0
    rows.push([name, measure((b) => {
      const now = T0 + b * 4 * windowMs // a fresh window each batch
      let admitted = 0
      for (let i = 0; i < BATCH; i++) {
        const key = keys[pow2 ? i & mask : i % keys.length]!
        if (counters.hit(compiled, key, now, out).admitted) admitted++
      }
      return admitted
    })])
  }
  hitRow('hit, fixed window, 1 key', { algorithm: 'fixed-window', limit: 4_194_303, windowMs: 60_000 }, one, 60_000)
  hitRow('hit, sliding window, 1 key', { algorithm: 'sliding-window', limit: 4_194_303, windowMs: 60_000 }, one, 60_000)
  hitRow('hit, gcra, 1 key', ALWAYS, one, 1000)
  hitRow('hit, fixed window, 100k keys', { algorithm: 'fixed-window', limit: 4_194_303, windowMs: 60_000 }, many, 60_000)
  hitRow('hit, sliding window, 100k keys', { algorithm: 'sliding-window', limit: 4_194_303, windowMs: 60_000 }, many, 60_000)
  hitRow('hit, gcra, 100k keys', ALWAYS, many, 1000)
  hitRow('hit, fixed window, 1 key, rejected', { algorithm: 'fixed-window', limit: 1, windowMs: 3_600_000 }, one, 0)

  // The parts of a hit: the hash alone, and the WASM call alone with the hash in hand.
  const prefix = hashPrefix(1, 2, [5, 0x656e6562, 0x6863, 1, 60_000])
  const hash = new Uint32Array(2)
  rows.push(['  of which: hash a key string (JS)', measure(() => {
    let x = 0
    for (let i = 0; i < BATCH; i++) {
      hashKey(prefix, many[i % KEYS]!, hash)
      x ^= hash[0]!
    }
    return x
  })])
  const lo = new Uint32Array(KEYS)
  const hi = new Uint32Array(KEYS)
  for (let i = 0; i < KEYS; i++) {
    hashKey(prefix, many[i]!, hash)
    lo[i] = hash[0]!
    hi[i] = hash[1]!
  }
  for (const [name, n] of [['  of which: WASM call, fixed window, 1 key', 1], ['  of which: WASM call, fixed window, 100k keys', KEYS]] as const) {
    rows.push([name, measure((b) => {
      const now = T0 + 1e9 + b * 240_000
      let x = 0
      for (let i = 0; i < BATCH; i++) {
        const k = i % n
        x += hot.rateLimitFixedWindow(lo[k]!, hi[k]!, now, 60_000, 4_194_303)
      }
      return x
    })])
  }
  rows.push(['(for scale: Date.now())', measure(() => {
    let x = 0
    for (let i = 0; i < BATCH; i++) x += Date.now()
    return x
  })])
  return rows
}

interface Job { scenario: 'distinct' | 'under' | 'over', id: number, durationMs: number }

async function worker (): Promise<void> {
  const { memory, gate, job } = workerData as { memory: WebAssembly.Memory, gate: Int32Array, job: Job }
  const counters = new RateLimitCounters(await loadHotPath(memory))
  const rule = counters.rule('bench', job.scenario === 'over'
    ? { algorithm: 'fixed-window', limit: 1000, windowMs: 3_600_000 }
    : ALWAYS)
  const keys = job.scenario === 'distinct' ? keysFor(String(10 + job.id), KEYS) : ['203.0.113.7']
  const out = newRateLimitResult()
  const now = T0 + 7_200_000 // one fixed window for the whole run
  for (let i = 0; i < 200_000; i++) counters.hit(rule, keys[i % keys.length]!, now, out) // warm up
  parentPort!.postMessage('ready')
  // Started together: Atomics.wait returns at once if the gate opened before this line,
  // and an opening after it comes with Atomics.notify.
  Atomics.wait(gate, 0, 0)
  const start = performance.now()
  let hits = 0
  let elapsed = 0
  const n = keys.length
  while (elapsed < job.durationMs) {
    for (let i = 0; i < 10_000; i++) counters.hit(rule, keys[(hits + i) % n]!, now, out)
    hits += 10_000
    elapsed = performance.now() - start
  }
  parentPort!.postMessage({ hits, ms: elapsed })
}

async function threaded (scenario: Job['scenario'], threads: number): Promise<number> {
  const memory = createSharedMemory()
  const gate = new Int32Array(new SharedArrayBuffer(4))
  const workers = Array.from({ length: threads }, (_, id) =>
    new Worker(new URL(import.meta.url), { workerData: { memory, gate, job: { scenario, id, durationMs: DURATION_MS } }, execArgv: [] }))
  const next = (w: Worker): Promise<any> => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject) })
  await Promise.all(workers.map(next))
  const results = workers.map(next)
  Atomics.store(gate, 0, 1)
  Atomics.notify(gate, 0)
  const done = await Promise.all(results)
  await Promise.all(workers.map(w => w.terminate()))
  return done.reduce((sum: number, r: { hits: number, ms: number }) => sum + r.hits / (r.ms / 1000), 0)
}

async function main (): Promise<void> {
  const cores = cpus().length
  console.log(`rate-limit counters bench: node ${process.version}, ${cpus()[0]?.model ?? '?'} x ${cores}`)
  console.log(`part 1: one thread, median of ${BATCHES} batches of ${BATCH.toLocaleString('en')} hits, ns per hit\n`)
  const rows = await singleThread()
  const w = Math.max(...rows.map(([name]) => name.length))
  for (const [name, ns] of rows) console.log(`${name.padEnd(w)}  ${ns.toFixed(1).padStart(6)} ns`)

  console.log(`\npart 2: hits/s in total, N worker threads for ${DURATION_MS} ms each (counters.hit from JS)\n`)
  const scenarios: Array<[Job['scenario'], string]> = [
    ['distinct', 'distinct keys (gcra, all admitted)'],
    ['under', 'one shared key (gcra, all admitted)'],
    ['over', 'one shared key, over its limit (rejected)']
  ]
  const head = ['scenario', ...THREADS.map(n => `${n} thread${n > 1 ? 's' : ''}`), `x${THREADS[THREADS.length - 1]} / x1`]
  const table: string[][] = []
  for (const [scenario, label] of scenarios) {
    const rates: number[] = []
    for (const n of THREADS) rates.push(await threaded(scenario, n))
    table.push([label, ...rates.map(r => `${(r / 1e6).toFixed(1)} M/s`), `${(rates[rates.length - 1]! / rates[0]!).toFixed(2)}`])
  }
  const widths = head.map((h, i) => Math.max(h.length, ...table.map(row => row[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ')
  console.log(line(head))
  console.log(widths.map(n => '-'.repeat(n)).join('  '))
  for (const row of table) console.log(line(row))
  console.log(`\n${cores} cores: ${THREADS.filter(n => n > cores).map(n => `${n} threads`).join(', ') || 'no row'} cannot scale past ${cores} threads' worth of CPU.`)
}

if (isMainThread) await main()
else await worker()

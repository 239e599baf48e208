// IP set lookups: the shared-memory tables (src/ip/table-writer.ts + wasm/assembly/ip-match.ts,
// through src/ip/matcher.ts) against Node's net.BlockList, for random IPv4 and IPv6 CIDR
// sets of 10, 10k and 1M entries. Run: `node dist/bench/wasm-ip.bench.js` after `npm run build`.
//
// What is timed, per lookup: contains(setId, ipString) with the string in hand, so parseIp
// + one WASM call (the split into parse and WASM is shown beside it). Each figure is the
// median over batches of per-lookup means (process.hrtime.bigint around a batch of lookups),
// so timer overhead is amortised and one GC pause moves one batch, not the median.
//
// Data (seeded PRNG, same every run):
//   IPv4 CIDRs: random networks, prefix uniform in /24../32 (blocklist-like: mostly hosts
//     and /24s), so 1M CIDRs stay ~1M disjoint ranges instead of merging into a few.
//   IPv6 CIDRs: random networks in 2000::/3, prefix from /32, /40, /48, /56, /64, /128.
//   Addresses: half inside a random CIDR of the set, half random in the family (2000::/3
//     for IPv6), as canonical text (formatIp: what src/client-ip.ts hands a plugin).
// BlockList scans its rules per lookup, so it gets a time budget: its 1M row is measured
// only if building it fits BLOCKLIST_BUILD_BUDGET_MS, else it prints why it was skipped.
import { BlockList } from 'node:net'
import { cpus } from 'node:os'
import { createSharedMemory, loadHotPath } from '../src/shared-memory.js'
import { formatIp, parseIp, V4, V6 } from '../src/ip/parse.js'
import { createIpMatcher } from '../src/ip/matcher.js'
import { compileIpSets, nextIpRegion, switchIpRegion, writeIpTable } from '../src/ip/table-writer.js'
import { rng } from './lib/rng.js'

const SIZES = [10, 10_000, 1_000_000]
const ADDRESSES = 100_000
const BATCHES = 15
const BATCH_TARGET_MS = 20
const BLOCKLIST_BUILD_BUDGET_MS = 30_000
const BLOCKLIST_LOOKUP_BUDGET_MS = 5_000

const r = rng(20261128)
const u32 = (): number => Math.floor(r() * 2 ** 32)

interface Net { words: Uint32Array, prefix: number }
interface Workload { family: 4 | 6, size: number, nets: Net[], cidrs: string[], ips: string[] }

function maskWords (w: Uint32Array, prefix: number): void {
  for (let i = 0; i < w.length; i++) {
    const bits = prefix - i * 32
    if (bits >= 32) continue
    w[i] = bits <= 0 ? 0 : (w[i] as number) & ((0xffffffff << (32 - bits)) >>> 0)
  }
}

function randomNet (family: 4 | 6): Net {
  if (family === 4) {
    const words = Uint32Array.of(u32())
    const prefix = 24 + Math.floor(r() * 9)
    maskWords(words, prefix)
    return { words, prefix }
  }
  const words = Uint32Array.of(((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32())
  const prefix = [32, 40, 48, 56, 64, 128][Math.floor(r() * 6)] as number
  maskWords(words, prefix)
  return { words, prefix }
}

function randomAddressIn (family: 4 | 6, net: Net | undefined): string {
  const w = family === 4 ? Uint32Array.of(u32()) : Uint32Array.of(((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32())
  if (net !== undefined) {
    // Keep the network bits, randomise the host bits.
    for (let i = 0; i < w.length; i++) {
      const bits = net.prefix - i * 32
      if (bits <= 0) continue
      const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0
      w[i] = (((net.words[i] as number) & mask) | ((w[i] as number) & ~mask)) >>> 0
    }
  }
  // A copy through a plain string, so each is a flat string as a socket address would be.
  return (' ' + formatIp(family === 4 ? V4 : V6, w)).slice(1)
}

function workload (family: 4 | 6, size: number): Workload {
  const nets = Array.from({ length: size }, () => randomNet(family))
  const cidrs = nets.map(n => `${formatIp(family === 4 ? V4 : V6, n.words)}/${n.prefix}`)
  const ips = Array.from({ length: ADDRESSES }, (_, i) => randomAddressIn(family, i % 2 === 0 ? nets[Math.floor(r() * size)] : undefined))
  return { family, size, nets, cidrs, ips }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/**
 * Median ns per call of `fn(i)` over batches. A batch runs `fn` on consecutive indexes
 * (wrapping at `n`), sized by doubling from one call so that it takes ~BATCH_TARGET_MS
 * (a single call, for a function slower than that); stops early at `budgetMs`.
 */
function measure (n: number, fn: (i: number) => unknown, budgetMs = Infinity): { ns: number, batches: number, calls: number } {
  let sink = 0
  let next = 0
  const run = (count: number): number => {
    const from = next
    next = (next + count) % n
    const t0 = process.hrtime.bigint()
    for (let k = 0; k < count; k++) if (fn((from + k) % n) === true) sink++
    return Number(process.hrtime.bigint() - t0)
  }
  const started = Date.now()
  // Warm up (let V8 optimise the loop and fn) for up to 2,000 calls or 10% of the budget.
  for (let k = 0; k < 2000 && Date.now() - started < Math.min(300, budgetMs / 10); k++) run(1)
  let batch = 1
  let took = run(batch)
  while (took < 1e6 && batch < n) { batch *= 2; took = run(batch) }
  batch = Math.max(1, Math.min(n, Math.round((batch * BATCH_TARGET_MS * 1e6) / took)))
  const results: number[] = []
  const start = Date.now()
  for (let b = 0; b < BATCHES; b++) {
    results.push(run(batch) / batch)
    if (Date.now() - start > budgetMs && results.length >= 3) break
  }
  if (sink < 0) console.log(sink) // keep the calls observable
  return { ns: median(results), batches: results.length, calls: results.length * batch }
}

const fmt = (ns: number): string => ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e4 ? `${(ns / 1e3).toFixed(1)} µs` : `${ns.toFixed(0)} ns`
const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6

async function main (): Promise<void> {
  console.log(`IP set lookup bench: node ${process.version}, ${cpus()[0]?.model ?? '?'} x ${cpus().length}`)
  console.log(`median of ${BATCHES} batches (~${BATCH_TARGET_MS} ms each) of per-lookup means; ${ADDRESSES} addresses per set, half inside\n`)

  const loads: Workload[] = []
  for (const family of [4, 6] as const) for (const size of SIZES) loads.push(workload(family, size))

  // Compile time per set (parse + sort + merge + index), then one table with all six sets.
  compileIpSets([loads[0]!.cidrs, loads[3]!.cidrs]) // warm the compiler's code paths
  const compileMs: number[] = []
  const ranges: number[] = []
  for (const w of loads) {
    const t0 = process.hrtime.bigint()
    const table = compileIpSets([w.cidrs])
    compileMs.push(ms(t0))
    ranges.push(table.v4Ranges + table.v6Ranges)
  }
  const memory = createSharedMemory()
  const hot = await loadHotPath(memory)
  const region = nextIpRegion(memory)
  let t0 = process.hrtime.bigint()
  const all = compileIpSets(loads.map(w => w.cidrs))
  const compileAllMs = ms(t0)
  t0 = process.hrtime.bigint()
  const info = writeIpTable(memory, region, all)
  const writeMs = ms(t0)
  switchIpRegion(memory, region)
  const matcher = createIpMatcher(hot, region)

  const rows: string[][] = []
  let checked = 0
  for (let s = 0; s < loads.length; s++) {
    const w = loads[s]!
    // Fresh copies, allocated together just before use: an address string in hand is one
    // the request just made, not one that a GC moved among millions of CIDR strings.
    const ips = w.ips.map(ip => (' ' + ip).slice(1))
    // Pre-parsed words, for the WASM-only column.
    const words = new Uint32Array(4 * ips.length)
    const scratch = new Uint32Array(4)
    for (let i = 0; i < ips.length; i++) { parseIp(ips[i]!, scratch); words.set(scratch, 4 * i) }
    const ours = measure(ips.length, i => matcher.contains(s, ips[i]!))
    const parse = measure(ips.length, i => parseIp(ips[i]!, scratch))
    const wasm = w.family === 4
      ? measure(ips.length, i => hot.ipContains4(region, s, words[4 * i]!))
      : measure(ips.length, i => hot.ipContains6(region, s, words[4 * i]!, words[4 * i + 1]!, words[4 * i + 2]!, words[4 * i + 3]!))
    // Same answers as BlockList on a sample (a check that the bench measures real work).
    let blockList: string
    let blockBuild: string
    const type = w.family === 4 ? 'ipv4' : 'ipv6'
    const bl = new BlockList()
    t0 = process.hrtime.bigint()
    let built = true
    for (let i = 0; i < w.nets.length; i++) {
      const n = w.nets[i]!
      bl.addSubnet(formatIp(w.family === 4 ? V4 : V6, n.words), n.prefix, type)
      if (i % 10_000 === 9_999 && ms(t0) > BLOCKLIST_BUILD_BUDGET_MS) { built = false; break }
    }
    const buildMs = ms(t0)
    if (built) {
      blockBuild = `${buildMs.toFixed(1)} ms`
      const m = measure(ips.length, i => bl.check(ips[i]!, type), BLOCKLIST_LOOKUP_BUDGET_MS)
      blockList = `${fmt(m.ns)}${m.calls < ips.length ? ` (${m.calls} lookups)` : ''}`
      // About a second of BlockList lookups, to cross-check the answers.
      const sample = Math.max(5, Math.min(1000, Math.floor(1e9 / m.ns)))
      let differ = 0
      for (let i = 0; i < sample; i++) if (bl.check(ips[i]!, type) !== matcher.contains(s, ips[i]!)) differ++
      checked += sample
      if (differ > 0) blockList += ` [${differ}/${sample} answers differ!]`
    } else {
      blockBuild = `> ${BLOCKLIST_BUILD_BUDGET_MS / 1000} s`
      blockList = `skipped: building took over ${BLOCKLIST_BUILD_BUDGET_MS / 1000} s at ${w.nets.length} subnets`
    }
    rows.push([`IPv${w.family}`, w.size.toLocaleString('en-US'), ranges[s]!.toLocaleString('en-US'), `${compileMs[s]!.toFixed(1)} ms`,
      fmt(ours.ns), fmt(parse.ns), fmt(wasm.ns), blockList, blockBuild])
  }

  const head = ['family', 'CIDRs', 'ranges', 'compile', 'lookup (string)', 'parseIp', 'WASM only', 'net.BlockList lookup', 'BlockList build']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(row => row[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => i < 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join('  ')
  console.log(line(head))
  console.log(widths.map(n => '-'.repeat(n)).join('  '))
  for (const row of rows) console.log(line(row))
  console.log(`\nlookup (string) = matcher.contains(set, ipString): parseIp + one WASM call; the next two columns split it.`)
  console.log(`BlockList: same CIDRs via addSubnet(), check(ip, family); its answers equal ours on the ${checked} addresses cross-checked.`)
  console.log(`compile = compileIpSets() of that one set (parse, sort, merge, index). All six sets in one table:`)
  console.log(`compile ${compileAllMs.toFixed(0)} ms, write into region ${region === 0 ? 'A' : 'B'} ${writeMs.toFixed(0)} ms, ` +
    `${info.v4Ranges.toLocaleString('en-US')} IPv4 + ${info.v6Ranges.toLocaleString('en-US')} IPv6 ranges, ${(info.bytes / 2 ** 20).toFixed(1)} MiB of ${64} MiB`)
}

await main()

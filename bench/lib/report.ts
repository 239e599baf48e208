// The bench's output: the results file (everything, every round), the plain table printed
// at the end, and report.md (the same tables with the machine and settings).
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { OpenLoopResult } from '../open-loop.js'
import type { LoadResult } from './load.js'
import type { Spread } from './stats.js'

export interface RoundRecord {
  round: number
  startedAt: string
  /** os.loadavg() when the round started: other work on the machine shows here */
  loadavg: number[]
  command: string[]
  result: LoadResult
  /** CPU time (user + system, all threads) the subject's process spent per request during
   *  the closed-loop measurement, in microseconds; null when /proc is absent. */
  cpuUsPerRequest: number | null
  /** Peak RSS of the subject's process by the end of the round (VmHWM), bytes. */
  peakRssBytes: number | null
  /** The open-loop runs of the round, one per rate. */
  openLoop: OpenLoopResult[]
}

export interface OpenLoopSummary {
  rate: number
  /** Medians over rounds of each percentile, milliseconds. */
  p50Ms: Spread
  p90Ms: Spread
  p99Ms: Spread
  p999Ms: Spread
  maxMs: Spread
  achievedRate: Spread
  /** The generator's median lag behind its schedule, ms (medians of rounds). */
  sendLagMs: Spread
  /** True when the rate is above 80% of the subject's closed-loop req/s: past the knee,
   *  the latency is mostly queueing. */
  nearKnee: boolean
}

export interface SubjectSummary {
  requestsPerSec: Spread
  p50Ms: Spread
  p90Ms: Spread | null
  p99Ms: Spread
  cpuUsPerRequest: Spread | null
  peakRssBytes: number | null
  /** median req/s over the bare proxy's median req/s */
  vsBareProxy: number | null
  /** median req/s over the upstream's median req/s */
  vsUpstream: number | null
  /** median of per-round req/s ratios to `tollgate` (same round, seconds apart) */
  vsTollgate: Spread | null
  /** socket errors and non-2xx/3xx responses, over all measured rounds */
  errors: number
  openLoop: OpenLoopSummary[]
}

export interface SubjectRecord {
  name: string
  group: string
  description: string
  commandLine: string | null
  status: 'ok' | 'failed' | 'skipped' | 'not run'
  reason: string | null
  /** What was checked before the load: control requests and the answers they got. */
  checks: string[]
  /** Said plainly in the report (e.g. more workers than cores). */
  notes: string[]
  rounds: RoundRecord[]
  summary: SubjectSummary | null
}

export interface Results {
  startedAt: string
  finishedAt: string
  interrupted: boolean
  machine: {
    node: string
    platform: string
    arch: string
    release: string
    cpus: number
    cpuModel: string
    totalMemBytes: number
    loadavgAtStart: number[]
  }
  tollgate: { version: string, commit: string | null, dirty: boolean | null }
  /** Kept for older readers: the same as tollgate.commit. */
  commit: string | null
  load: {
    tool: string
    toolVersion: string
    threads: number
    connections: number
    durationSec: number
    warmupSec: number
    rounds: number
    openLoopRates: number[]
    openLoopGenerator: string
    order: string
  }
  peers: Record<string, string>
  subjects: SubjectRecord[]
}

/** `bench/results/<ISO 8601 basic timestamp>/`, e.g. 20250102T030405Z. */
export function resultsDir (root: string, startedAt: string): string {
  const stamp = startedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return path.join(root, 'bench', 'results', stamp)
}

export function writeResults (dir: string, results: Results, files: Record<string, string>): string {
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, 'results.json')
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text)
  return file
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US')
const ms = (n: number): string => (n >= 100 ? `${n.toFixed(0)}ms` : n >= 10 ? `${n.toFixed(1)}ms` : `${n.toFixed(2)}ms`)
const x = (r: number | null | undefined): string => (r === null || r === undefined ? '-' : r.toFixed(2))
const mib = (b: number | null): string => (b === null ? '-' : `${(b / 1048576).toFixed(0)}`)

function align (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

function markdown (header: string[], rows: string[][]): string {
  const sep = header.map((_, i) => (i === 0 ? '---' : '---:'))
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n')
}

const CLOSED_HEADER = ['subject', 'req/s', 'min–max', 'p50', 'p99', 'vs bare-proxy', 'vs tollgate', 'CPU µs/req', 'peak RSS MiB', 'errors']

function closedRows (subjects: readonly SubjectRecord[]): string[][] {
  return subjects.map((s): string[] => {
    const m = s.summary
    if (m === null) return [s.name, s.status, '', '', '', '', '', '', '', '']
    return [
      s.name,
      int(m.requestsPerSec.median),
      `${int(m.requestsPerSec.min)}–${int(m.requestsPerSec.max)}`,
      ms(m.p50Ms.median),
      ms(m.p99Ms.median),
      x(m.vsBareProxy),
      m.vsTollgate === null ? '-' : `${x(m.vsTollgate.median)} (${x(m.vsTollgate.min)}–${x(m.vsTollgate.max)})`,
      m.cpuUsPerRequest === null ? '-' : m.cpuUsPerRequest.median.toFixed(1),
      mib(m.peakRssBytes),
      String(m.errors)
    ]
  })
}

const OPEN_HEADER = ['subject', 'rate', 'achieved', 'p50', 'p90', 'p99', 'p99.9', 'max', 'generator lag p50', '']

function openRows (subjects: readonly SubjectRecord[]): string[][] {
  return subjects.flatMap((s) => (s.summary?.openLoop ?? []).map((o) => [
    s.name, int(o.rate), int(o.achievedRate.median), ms(o.p50Ms.median), ms(o.p90Ms.median), ms(o.p99Ms.median),
    ms(o.p999Ms.median), ms(o.maxMs.median), o.sendLagMs === undefined ? '-' : ms(o.sendLagMs.median),
    [o.nearKnee ? 'near/past the knee' : '', o.sendLagMs !== undefined && o.sendLagMs.median > Math.max(1, o.p50Ms.median / 2) ? 'generator behind schedule: latency is mostly its lag' : ''].filter(Boolean).join('; ')
  ]))
}

export function formatTable (subjects: readonly SubjectRecord[]): string {
  const parts = ['closed loop (fixed keep-alive connections, as fast as they go):', align(CLOSED_HEADER, closedRows(subjects))]
  const open = openRows(subjects)
  if (open.length > 0) parts.push('', 'open loop (fixed rate; latency from the intended send time, HDR histogram; medians over rounds):', align(OPEN_HEADER, open))
  return parts.join('\n')
}

const gib = (b: number): string => `${(b / 1073741824).toFixed(0)} GiB`

/** report.md: the machine, the settings, both tables, the checks and anything that failed. */
export function formatMarkdown (r: Results, notes: readonly string[]): string {
  const out: string[] = []
  out.push(`# tollgate bench, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`, '')
  out.push(`- machine: ${r.machine.cpuModel}, ${r.machine.cpus} CPUs, ${gib(r.machine.totalMemBytes)} RAM, ${r.machine.platform} ${r.machine.release}; load average at start ${r.machine.loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}`)
  out.push(`- Node ${r.machine.node}; tollgate ${r.tollgate.version} at ${r.tollgate.commit?.slice(0, 12) ?? 'unknown commit'}${r.tollgate.dirty === true ? ' (with uncommitted changes)' : ''}`)
  out.push(`- closed loop: ${r.load.tool} (${r.load.toolVersion}), ${r.load.threads} thread(s), ${r.load.connections} connections, ${r.load.durationSec}s after ${r.load.warmupSec}s warm-up; ${r.load.rounds} interleaved round(s), medians (min–max)`)
  out.push(`- open loop: ${r.load.openLoopRates.length === 0 ? 'not run' : `${r.load.openLoopRates.map(int).join(', ')} req/s for ${r.load.durationSec}s each, ${r.load.openLoopGenerator}`}`)
  for (const [name, version] of Object.entries(r.peers)) out.push(`- ${name}: ${version}`)
  if (r.interrupted) out.push('- **interrupted**: figures are partial')
  out.push('', '## Closed loop', '', markdown(CLOSED_HEADER, closedRows(r.subjects)), '')
  const open = openRows(r.subjects)
  if (open.length > 0) out.push('## Open loop', '', 'Latency from the intended send time (coordinated-omission free), medians over rounds.', '', markdown(OPEN_HEADER, open), '')
  out.push('![latency percentiles](latency.svg)', '', '![throughput](throughput.svg)', '')
  out.push('## Subjects and checks', '')
  for (const s of r.subjects) {
    out.push(`- **${s.name}** (${s.group}, ${s.status}): ${s.description}.` + (s.checks.length > 0 ? ` Checked: ${s.checks.join('; ')}.` : '')
      + (s.notes.length > 0 ? ` ${s.notes.join(' ')}` : '') + (s.reason !== null ? ` ${s.status}: ${s.reason.split('\n')[0]}` : ''))
  }
  if (notes.length > 0) out.push('', '## Notes', '', ...notes.map((n) => `- ${n}`))
  return out.join('\n') + '\n'
}

/** Subjects whose req/s varied by more than `limit` (max/min - 1) across rounds. */
export function noisy (subjects: readonly SubjectRecord[], limit = 0.2): string[] {
  return subjects
    .filter((s) => s.summary !== null && s.summary.requestsPerSec.max / s.summary.requestsPerSec.min - 1 > limit)
    .map((s) => s.name)
}

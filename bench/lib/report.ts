// The bench's output: the results file (everything, every round) and the plain table.
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
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
   *  the measurement, in microseconds; null when the process is not ours or /proc is absent. */
  cpuUsPerRequest: number | null
}

export interface SubjectSummary {
  requestsPerSec: Spread
  p50Ms: Spread
  p99Ms: Spread
  /** median req/s over the bare proxy's median req/s */
  vsBareProxy: number | null
  /** median req/s over the upstream's median req/s */
  vsUpstream: number | null
  /** socket errors and non-2xx/3xx responses, over all measured rounds */
  errors: number
}

export interface SubjectRecord {
  name: string
  description: string
  commandLine: string | null
  status: 'ok' | 'failed' | 'not run'
  reason: string | null
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
  commit: string | null
  load: {
    tool: string
    toolVersion: string
    threads: number
    connections: number
    durationSec: number
    warmupSec: number
    rounds: number
    order: string
  }
  subjects: SubjectRecord[]
}

/** `bench/results/<ISO 8601 basic timestamp>/results.json`, e.g. 20250102T030405Z. */
export function writeResults(root: string, results: Results): string {
  const stamp = results.startedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  const dir = path.join(root, 'bench', 'results', stamp)
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, 'results.json')
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
  return file
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US')
const ms = (n: number): string => `${n.toFixed(2)}ms`
const x = (r: number | null): string => (r === null ? '-' : r.toFixed(2))

export function formatTable(subjects: readonly SubjectRecord[]): string {
  const header = ['subject', 'req/s', 'min–max', 'p50', 'p99', 'vs bare-proxy', 'vs upstream', 'errors']
  const rows = subjects.map((s): string[] => {
    const m = s.summary
    if (m === null) return [s.name, s.status, '', '', '', '', '', '']
    return [
      s.name,
      int(m.requestsPerSec.median),
      `${int(m.requestsPerSec.min)}–${int(m.requestsPerSec.max)}`,
      ms(m.p50Ms.median),
      ms(m.p99Ms.median),
      x(m.vsBareProxy),
      x(m.vsUpstream),
      String(m.errors),
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

/** Subjects whose req/s varied by more than `limit` (max/min - 1) across rounds. */
export function noisy(subjects: readonly SubjectRecord[], limit = 0.2): string[] {
  return subjects
    .filter((s) => s.summary !== null && s.summary.requestsPerSec.max / s.summary.requestsPerSec.min - 1 > limit)
    .map((s) => s.name)
}

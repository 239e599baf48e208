// `npm run bench -- --compare A B`: the ratio table between two result folders (B over A),
// for the subjects both ran: closed-loop req/s, CPU per request, and open-loop p50/p99 at
// the rates both ran. A folder may be given as a path or as a name under bench/results/.
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import type { Results, SubjectRecord } from './report.js'

function load (root: string, dir: string): Results {
  const candidates = [dir, path.join(root, 'bench', 'results', dir)].map((d) => path.join(d, 'results.json'))
  const file = candidates.find((f) => existsSync(f))
  if (file === undefined) throw new Error(`--compare: no results.json in ${dir} (nor in bench/results/${dir})`)
  return JSON.parse(readFileSync(file, 'utf8')) as Results
}

const r2 = (n: number | null | undefined): string => (n === null || n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(2))
const int = (n: number | undefined): string => (n === undefined ? '-' : Math.round(n).toLocaleString('en-US'))

export function compare (root: string, a: string, b: string): string {
  const A = load(root, a)
  const B = load(root, b)
  const byName = new Map<string, SubjectRecord>(A.subjects.map((s) => [s.name, s]))
  const header = ['subject', 'req/s A', 'req/s B', 'B/A', 'CPU µs/req A', 'B', 'B/A', 'open p50 B/A', 'open p99 B/A']
  const rows: string[][] = []
  for (const sb of B.subjects) {
    const sa = byName.get(sb.name)
    if (sa?.summary == null || sb.summary === null) continue
    const ra = sa.summary.requestsPerSec.median
    const rb = sb.summary.requestsPerSec.median
    const ca = sa.summary.cpuUsPerRequest?.median
    const cb = sb.summary.cpuUsPerRequest?.median
    const oa = sa.summary.openLoop?.[0]
    const ob = sb.summary.openLoop?.find((o) => o.rate === oa?.rate)
    rows.push([sb.name, int(ra), int(rb), r2(rb / ra), r2(ca), r2(cb), ca === undefined || cb === undefined ? '-' : r2(cb / ca),
      oa === undefined || ob === undefined ? '-' : r2(ob.p50Ms.median / oa.p50Ms.median),
      oa === undefined || ob === undefined ? '-' : r2(ob.p99Ms.median / oa.p99Ms.median)])
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  const head = [
    `A: ${a}  (${A.startedAt}, commit ${A.tollgate?.commit?.slice(0, 12) ?? A.commit?.slice(0, 12) ?? '?'}, ${A.machine.cpus} CPUs, load ${A.machine.loadavgAtStart[0]?.toFixed(2)})`,
    `B: ${b}  (${B.startedAt}, commit ${B.tollgate?.commit?.slice(0, 12) ?? B.commit?.slice(0, 12) ?? '?'}, ${B.machine.cpus} CPUs, load ${B.machine.loadavgAtStart[0]?.toFixed(2)})`,
    ''
  ]
  if (rows.length === 0) return head.join('\n') + 'no subject ran in both\n'
  return head.join('\n') + [line(header), ...rows.map(line)].join('\n') + '\n\nB/A above 1 is more req/s (better) or more CPU / latency (worse).\n'
}

// The bench's outputs from a results record: the charts name every subject and stay valid
// SVG, the report tables carry the figures, and --compare divides B by A.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { latencySvg, throughputSvg } from '../../bench/lib/charts.js'
import { compare } from '../../bench/lib/compare.js'
import { formatMarkdown, type Results, type SubjectRecord } from '../../bench/lib/report.js'

const spread = (n: number): { median: number, min: number, max: number } => ({ median: n, min: n * 0.9, max: n * 1.1 })

function subject (name: string, rps: number, open: boolean): SubjectRecord {
  return {
    name, group: name === 'haproxy' ? 'peers' : 'core', description: `${name} <&>`, commandLine: null, status: 'ok', reason: null, checks: ['no token -> 401'], notes: [], rounds: [],
    summary: {
      requestsPerSec: spread(rps), p50Ms: spread(1), p90Ms: spread(2), p99Ms: spread(5), cpuUsPerRequest: spread(50), peakRssBytes: 100 * 1048576,
      vsBareProxy: null, vsUpstream: null, vsTollgate: null, errors: 0,
      openLoop: open ? [{ rate: 2000, p50Ms: spread(0.5), p90Ms: spread(0.8), p99Ms: spread(2), p999Ms: spread(4), maxMs: spread(9), achievedRate: spread(2000), sendLagMs: spread(0.01), nearKnee: false }] : []
    }
  }
}

function results (subjects: SubjectRecord[]): Results {
  return {
    startedAt: '2026-01-02T03:04:05.000Z', finishedAt: '2026-01-02T03:14:05.000Z', interrupted: false,
    machine: { node: 'v20', platform: 'linux', arch: 'x64', release: '6', cpus: 2, cpuModel: 'Test CPU', totalMemBytes: 2 ** 34, loadavgAtStart: [1, 1, 1] },
    tollgate: { version: '0.1.0', commit: 'abcdef0123456789', dirty: false }, commit: 'abcdef0123456789',
    load: { tool: 'wrk', toolVersion: 'wrk 4', threads: 1, connections: 64, durationSec: 5, warmupSec: 2, rounds: 3, openLoopRates: [2000], openLoopGenerator: 'open-loop', order: 'interleaved' },
    peers: { haproxy: 'HAProxy 2.6' },
    subjects
  }
}

t.test('charts name every subject, escape text, and are one <svg> element', async (t) => {
  const subjects = [subject('tollgate', 20_000, true), subject('haproxy', 40_000, true), subject('full-policy', 12_000, false)]
  const thr = throughputSvg(subjects, 'a <title>')
  const lat = latencySvg(subjects, 'a <title>')
  for (const svg of [thr, lat]) {
    t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    t.equal(svg.match(/<svg/g)?.length, 1)
    t.match(svg, /a &lt;title&gt;/)
    t.notMatch(svg, /NaN|undefined/)
  }
  for (const s of subjects) t.match(thr, `>${s.name}<`)
  t.match(thr, '40,000', 'the median is written beside its bar')
  t.match(lat, '>tollgate<')
  t.match(lat, '>haproxy<')
  t.notMatch(lat, '>full-policy<', 'a subject without an open-loop run is not drawn as if it had one')
  t.match(lat, 'open loop at 2,000 req/s')
})

t.test('without any open-loop run the latency chart shows the closed loop', async (t) => {
  const lat = latencySvg([subject('tollgate', 20_000, false)], 'x')
  t.match(lat, 'closed loop')
  t.match(lat, '>tollgate<')
})

t.test('report.md holds the machine, the settings and both tables', async (t) => {
  const md = formatMarkdown(results([subject('tollgate', 20_000, true)]), ['target: something: met'])
  t.match(md, 'Test CPU, 2 CPUs, 16 GiB RAM')
  t.match(md, 'tollgate 0.1.0 at abcdef012345')
  t.match(md, '| tollgate | 20,000 | 18,000–22,000 |')
  t.match(md, '## Open loop')
  t.match(md, 'no token -> 401')
  t.match(md, '- target: something: met')
})

t.test('--compare prints B over A for subjects in both', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-compare-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, rps] of [['a', 10_000], ['b', 15_000]] as const) {
    mkdirSync(join(dir, name))
    writeFileSync(join(dir, name, 'results.json'), JSON.stringify(results([subject('tollgate', rps, true), subject(`only-${name}`, 1, false)])))
  }
  const out = compare(dir, join(dir, 'a'), join(dir, 'b'))
  t.match(out, /tollgate\s+10,000\s+15,000\s+1\.50/)
  t.notMatch(out, 'only-a')
  t.throws(() => compare(dir, join(dir, 'nope'), join(dir, 'b')), /no results\.json/)
})

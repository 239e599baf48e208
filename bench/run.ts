// The bench runner: `npm run bench` (after `npm run build`); --help for the options.
//
// Starts the shared upstream, then, round by round, starts each subject as its own
// process, checks it (a good request, and the control requests its policy must refuse),
// warms it up, measures it in closed loop (wrk, else autocannon) and in open loop at fixed
// rates (bench/open-loop.ts, latency from the intended send time), reads its CPU time and
// peak RSS from /proc, and stops it; rounds are interleaved (A B C A B C ...) so that drift
// on the machine spreads over all subjects. Writes bench/results/<stamp>/ (results.json,
// report.md, latency.svg, throughput.svg).
import { execFileSync } from 'node:child_process'
import { cpSync, readFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { authTargets } from './auth-subjects.js'
import type { OpenLoopResult } from './open-loop.js'
import { runOpenLoop } from './lib/open-loop-process.js'
import { findHaproxy } from './peers/haproxy.js'
import { latencySvg, throughputSvg } from './lib/charts.js'
import { killAllNow, stopAll, type RunningServer } from './lib/children.js'
import { compare } from './lib/compare.js'
import { findLoadTool, type LoadSettings, type LoadTool } from './lib/load.js'
import { checkControls, peakRssBytes, preflight, processCpuMs } from './lib/probe.js'
import { formatMarkdown, formatTable, noisy, resultsDir, writeResults, type Results, type SubjectRecord } from './lib/report.js'
import { ratio, spread } from './lib/stats.js'
import { SkipSubject, type RunningSubject, type Subject, type SubjectContext, type SubjectGroup } from './lib/subject.js'
import { loadSubjectGroups, startUpstream } from './subjects.js'
import { validateTargets } from './validate-subjects.js'
import { tlsTargets } from './tls-subjects.js'
import { cacheTargets } from './cache-subjects.js'
import { observabilityTargets } from './observability-subjects.js'
import { balancingTargets } from './upstream-subjects.js'

const TARGET_VS_BARE = 0.9
const MAX_SECONDS = 600
const SETTLE_MS = 500
/** The open loop runs only at rates up to this share of the round's closed-loop req/s. */
const KNEE = 0.8
/** Warm-up goes on (1 s at a time, up to WARM_CAP_SEC) until this many requests were served. */
const WARM_REQUESTS = 5_000
const WARM_CAP_SEC = 20

function usage (groups: readonly SubjectGroup[]): string {
  return `usage: npm run bench -- [options]   (or: node dist/bench/run.js [options])

  --scenario a,b       subjects or groups to run (default: the default suite; "all" for
                       everything); --list names them. --only is the same.
  --duration 5s        measured time per subject per round, closed and open loop each (s or m; at most ${MAX_SECONDS}s)
  --warmup 2s          unmeasured closed-loop load before each measurement, then more until
                       5,000 requests were served (at most 20s); 0 to skip
  --connections 64     keep-alive connections (closed loop; the open loop's pool size)
  --threads 1          wrk threads
  --rounds 3           interleaved rounds; tables show the median and min–max
  --rate 2000          open-loop rates in req/s, comma-separated; 0 for none
  --publish            also copy the run's files to bench/results/published/ (committed;
                       BENCHMARKS.md shows them)
  --report DIR         write report.md and the charts again from DIR/results.json
  --list               name the groups and subjects
  --compare A B        ratio table between two result folders (B over A)
  --help

Groups: ${groups.map((g) => g.name).join(', ')}.
Closed loop with wrk (apt-get install -y wrk), else the autocannon devDependency.`
}

interface Options {
  load: LoadSettings
  warmupSec: number
  rounds: number
  rates: number[]
  only: string[]
  publish: boolean
}

function seconds (text: string, flag: string, min: number): number {
  const m = /^(\d+)(s|m)?$/.exec(text)
  if (m === null) throw new Error(`${flag}: expected e.g. 5s or 1m, got "${text}"`)
  const n = Number(m[1]) * (m[2] === 'm' ? 60 : 1)
  if (n < min || n > MAX_SECONDS) throw new Error(`${flag}: must be ${min}s to ${MAX_SECONDS}s, got "${text}"`)
  return n
}

function integer (text: string, flag: string, min: number, max: number): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${flag}: expected an integer ${min} to ${max}, got "${text}"`)
  return n
}

type Parsed = { kind: 'run', options: Options } | { kind: 'help' } | { kind: 'list' } | { kind: 'compare', a: string, b: string } | { kind: 'report', dir: string }

function parseOptions (argv: string[], groups: readonly SubjectGroup[]): Parsed {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      duration: { type: 'string', default: '5s' },
      warmup: { type: 'string', default: '2s' },
      connections: { type: 'string', default: '64' },
      threads: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '3' },
      rate: { type: 'string', default: '2000' },
      scenario: { type: 'string' },
      only: { type: 'string' },
      list: { type: 'boolean', default: false },
      publish: { type: 'boolean', default: false },
      report: { type: 'string' },
      compare: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help === true) return { kind: 'help' }
  if (values.list === true) return { kind: 'list' }
  if (values.report !== undefined) return { kind: 'report', dir: values.report }
  if (values.compare === true) {
    if (positionals.length !== 2) throw new Error('--compare needs two result folders: --compare A B')
    return { kind: 'compare', a: positionals[0]!, b: positionals[1]! }
  }
  if (positionals.length > 0) throw new Error(`unexpected argument "${positionals[0]}"`)
  const connections = integer(values.connections!, '--connections', 1, 10_000)
  const threads = integer(values.threads!, '--threads', 1, connections)
  const all = groups.flatMap((g) => g.subjects)
  const wanted = (values.scenario ?? values.only ?? 'default').split(',').map((s) => s.trim()).filter(Boolean)
  const only = new Set<string>()
  for (const w of wanted) {
    const group = groups.find((g) => g.name === w)
    if (w === 'all') all.forEach((s) => only.add(s.name))
    else if (w === 'default') all.filter((s) => s.default === true).forEach((s) => only.add(s.name))
    else if (group !== undefined) group.subjects.forEach((s) => only.add(s.name))
    else if (all.some((s) => s.name === w)) only.add(w)
    else throw new Error(`--scenario: no subject or group "${w}" (--list names them)`)
  }
  const rates = values.rate === '0' ? [] : values.rate!.split(',').map((r) => integer(r.trim(), '--rate', 1, 1_000_000))
  return {
    kind: 'run',
    options: {
      load: { threads, connections, durationSec: seconds(values.duration!, '--duration', 1) },
      warmupSec: seconds(values.warmup!, '--warmup', 0),
      rounds: integer(values.rounds!, '--rounds', 1, 100),
      rates,
      publish: values.publish === true,
      // In registry order, whatever order they were named in.
      only: all.filter((s) => only.has(s.name)).map((s) => s.name)
    }
  }
}

function listing (groups: readonly SubjectGroup[], missing: readonly string[]): string {
  const lines: string[] = ['Subjects by group (* = in the default suite). --scenario takes subject or group names, "default" or "all".', '']
  for (const g of groups) {
    lines.push(`${g.name}: ${g.description}`)
    for (const s of g.subjects) lines.push(`  ${s.default === true ? '*' : ' '} ${s.name.padEnd(26)} ${s.description}`)
    lines.push('')
  }
  if (missing.length > 0) lines.push(`(listed in bench/subjects.ts but not in this build: ${missing.join(', ')})`)
  return lines.join('\n')
}

const log = (line: string): void => void process.stderr.write(`${line}\n`)
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err))

function git (root: string, args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()
  } catch {
    return null
  }
}

let interrupted = false

function onSignal (sig: NodeJS.Signals): void {
  if (interrupted) {
    killAllNow()
    process.exit(130)
  }
  interrupted = true
  log(`\n${sig}: stopping the bench's processes (again to kill them now)`)
  void stopAll()
  // If the run does not wind down by itself, leave anyway (children are killed on 'exit').
  setTimeout(() => process.exit(130), 20_000).unref()
}

async function measure (root: string, tool: LoadTool, options: Options, record: SubjectRecord, running: RunningSubject, round: number): Promise<void> {
  const load = { ...options.load, headers: running.headers, method: running.method, body: running.body }
  if (options.warmupSec > 0) {
    // A cold Node subject spends its first thousands of requests in the JIT compiler; on a
    // busy machine a timed warm-up may see only a few hundred. So: the --warmup time, then
    // more 1 s runs until WARM_REQUESTS were served or WARM_CAP_SEC passed.
    const warmStart = Date.now()
    let served = (await tool.run(running.url, { ...load, durationSec: options.warmupSec })).requests
    while (served < WARM_REQUESTS && Date.now() - warmStart < WARM_CAP_SEC * 1000 && !interrupted) {
      served += (await tool.run(running.url, { ...load, durationSec: 1 })).requests
    }
  }
  const startedAt = new Date().toISOString()
  const loadavg = os.loadavg()
  const cpuBefore = processCpuMs(running.pid)
  const result = await tool.run(running.url, load)
  const cpuAfter = processCpuMs(running.pid)
  const cpuUsPerRequest = cpuBefore === null || cpuAfter === null || result.requests === 0 ? null : (cpuAfter - cpuBefore) * 1000 / result.requests
  if (!running.alive()) throw new Error(`${record.name} exited during the run`)
  // wrk reports a run that got no answer at all as 0 req/s with no error: nothing was measured.
  if (result.requests === 0) throw new Error(`closed loop: no request answered in ${options.load.durationSec}s in round ${round}`)
  const errors = result.non2xx + Object.values(result.socketErrors).reduce((a, b) => a + b, 0)
  log(`  ${record.name.padEnd(26)} ${Math.round(result.requestsPerSec).toLocaleString('en-US').padStart(9)} req/s`
    + `  p50 ${result.latencyMs.p50.toFixed(2)}ms  p99 ${result.latencyMs.p99.toFixed(2)}ms`
    + (cpuUsPerRequest === null ? '' : `  cpu ${cpuUsPerRequest.toFixed(1)}us/req`)
    + (errors > 0 ? `  (${errors} errors/non-2xx)` : ''))
  if (errors > 0) throw new Error(`closed loop: ${result.non2xx} non-2xx answers and ${errors - result.non2xx} socket errors in round ${round}: it answered wrongly under load`)
  const openLoop: OpenLoopResult[] = []
  for (const rate of options.rates) {
    if (interrupted) break
    // Past the knee the latency is queueing only, and requests pile up unanswered: the open
    // loop is for rates the subject carries. Judged on this round's closed-loop figure.
    if (rate > KNEE * result.requestsPerSec) {
      const note = `open loop at ${rate}/s skipped in round ${round}: above ${KNEE * 100}% of its closed-loop ${Math.round(result.requestsPerSec)} req/s (past the knee)`
      if (!record.notes.some((n) => n.startsWith(`open loop at ${rate}/s`))) record.notes.push(note)
      log(`  ${''.padEnd(26)} ${note}`)
      continue
    }
    const o = await runOpenLoop(root, { url: running.url, rate, durationSec: options.load.durationSec, connections: options.load.connections, method: running.method, headers: running.headers, body: running.body })
    const bad = o.errors + Object.entries(o.statuses).filter(([s]) => s !== '200').reduce((n, [, c]) => n + c, 0)
    log(`  ${''.padEnd(26)} open ${rate}/s: p50 ${(o.latencyUs.p50 / 1000).toFixed(2)}ms  p99 ${(o.latencyUs.p99 / 1000).toFixed(2)}ms  p99.9 ${(o.latencyUs.p999 / 1000).toFixed(2)}ms  max ${(o.latencyUs.max / 1000).toFixed(2)}ms  (generator lag p50 ${(o.medianSendLagUs / 1000).toFixed(2)}ms)`
      + (bad > 0 ? `  (${bad} errors/non-200)` : ''))
    if (bad > 0) throw new Error(`open loop at ${rate}/s: ${bad} errors or non-200 answers (${JSON.stringify(o.statuses)} ${JSON.stringify(o.errorKinds)})`)
    openLoop.push(o)
  }
  record.rounds.push({ round, startedAt, loadavg, command: tool.commandFor(running.url, load), result, cpuUsPerRequest, peakRssBytes: peakRssBytes(running.pid), openLoop })
}

function summarize (records: SubjectRecord[]): void {
  const base = records.find((r) => r.name === 'tollgate')
  for (const s of records) {
    if (s.status !== 'ok' || s.rounds.length === 0) continue
    const cpu = s.rounds.flatMap((r) => (r.cpuUsPerRequest === null ? [] : [r.cpuUsPerRequest]))
    const rss = s.rounds.flatMap((r) => (r.peakRssBytes === null ? [] : [r.peakRssBytes]))
    const p90 = s.rounds.flatMap((r) => (r.result.latencyMs.p90 === null ? [] : [r.result.latencyMs.p90]))
    const paired = base === undefined ? [] : s.rounds.flatMap((round) => {
      const b = base.rounds.find((x) => x.round === round.round)
      return b === undefined ? [] : [round.result.requestsPerSec / b.result.requestsPerSec]
    })
    const rps = spread(s.rounds.map((r) => r.result.requestsPerSec))
    const rates = [...new Set(s.rounds.flatMap((r) => r.openLoop.map((o) => o.rate)))]
    s.summary = {
      requestsPerSec: rps,
      p50Ms: spread(s.rounds.map((r) => r.result.latencyMs.p50)),
      p90Ms: p90.length === 0 ? null : spread(p90),
      p99Ms: spread(s.rounds.map((r) => r.result.latencyMs.p99)),
      cpuUsPerRequest: cpu.length === 0 ? null : spread(cpu),
      peakRssBytes: rss.length === 0 ? null : Math.max(...rss),
      vsBareProxy: null,
      vsUpstream: null,
      vsTollgate: paired.length === 0 ? null : spread(paired),
      errors: s.rounds.reduce((n, r) => n + r.result.non2xx + Object.values(r.result.socketErrors).reduce((a, b) => a + b, 0), 0),
      openLoop: rates.map((rate) => {
        const runs = s.rounds.flatMap((r) => r.openLoop.filter((o) => o.rate === rate))
        const pick = (f: (o: OpenLoopResult) => number): ReturnType<typeof spread> => spread(runs.map(f))
        return {
          rate,
          p50Ms: pick((o) => o.latencyUs.p50 / 1000),
          p90Ms: pick((o) => o.latencyUs.p90 / 1000),
          p99Ms: pick((o) => o.latencyUs.p99 / 1000),
          p999Ms: pick((o) => o.latencyUs.p999 / 1000),
          maxMs: pick((o) => o.latencyUs.max / 1000),
          achievedRate: pick((o) => o.achievedRate),
          sendLagMs: pick((o) => (o.medianSendLagUs ?? 0) / 1000),
          nearKnee: rate > 0.8 * rps.median
        }
      })
    }
  }
  const rps = (name: string): number | undefined => records.find((s) => s.name === name)?.summary?.requestsPerSec.median
  for (const s of records) {
    if (s.summary === null) continue
    s.summary.vsBareProxy = ratio(s.summary.requestsPerSec.median, rps('bare-proxy'))
    s.summary.vsUpstream = ratio(s.summary.requestsPerSec.median, rps('upstream'))
  }
}

/** What the report says under the tables: failures, warnings, and the targets. */
function buildNotes (records: readonly SubjectRecord[]): string[] {
  const notes: string[] = []
  for (const r of records) {
    if (r.reason !== null) notes.push(`${r.name}: ${r.status}: ${r.reason.split('\n')[0]}`)
    notes.push(...r.notes.map((n) => `${r.name}: ${n}`))
  }
  const unsteady = noisy(records)
  if (unsteady.length > 0) {
    notes.push(`req/s varied by more than 20% across rounds for ${unsteady.join(', ')}: the machine was busy or the run too short (see loadavg per round in results.json).`)
  }
  // The upstream direct is the open loop's control: where even it queues, the generator (a
  // Node process) or the machine could not keep the rate, and no open-loop figure of the run means much.
  for (const o of records.find((r) => r.name === 'upstream')?.summary?.openLoop ?? []) {
    if (o.p50Ms.median > 10) {
      notes.push(`open loop at ${o.rate}/s: even the upstream direct has a p50 of ${o.p50Ms.median.toFixed(0)} ms: the generator or the machine could not keep this rate, and the open-loop figures of this run measure that, not the subjects. Use a lower --rate or a quieter machine.`)
    }
  }
  notes.push(...targets(records))
  return notes
}

/** The issue's targets, judged on this run's figures (reported, never asserted). */
function targets (records: readonly SubjectRecord[]): string[] {
  const out: string[] = []
  const get = (name: string): SubjectRecord | undefined => records.find((r) => r.name === name && r.summary !== null)
  const rps = (name: string): number | undefined => get(name)?.summary?.requestsPerSec.median
  const judge = (what: string, value: number | undefined, goal: number, higherIsBetter = true, unit = 'x'): void => {
    if (value === undefined || !Number.isFinite(value)) return
    const met = higherIsBetter ? value >= goal : value <= goal
    out.push(`target: ${what} ${higherIsBetter ? '>=' : '<='} ${goal}${unit === 'x' ? '' : ' ' + unit}: ${met ? 'met' : 'NOT met'} (${value.toFixed(2)}${unit === 'x' ? '' : ' ' + unit})`)
  }
  const t = rps('tollgate')
  const ratioOf = (a: string, b: string): number | undefined => { const x = rps(a); const y = rps(b); return x === undefined || y === undefined ? undefined : x / y }
  judge('tollgate / bare-proxy req/s', ratioOf('tollgate', 'bare-proxy'), TARGET_VS_BARE)
  judge('tollgate / fastify-proxy req/s', ratioOf('tollgate', 'fastify-proxy'), 1)
  judge('tollgate / fast-gateway req/s', ratioOf('tollgate', 'fast-gateway'), 1)
  judge('full-policy / fastify-proxy (no policy) req/s', ratioOf('full-policy', 'fastify-proxy'), 1.1)
  judge('full-policy / haproxy-policy req/s', ratioOf('full-policy', 'haproxy-policy'), 0.4)
  judge('full-policy gateway CPU per request', get('full-policy')?.summary?.cpuUsPerRequest?.median, 100, false, 'µs')
  const fp = get('full-policy')?.summary?.openLoop.find((o) => o.rate === 2000)
  const up = get('upstream')?.summary?.openLoop.find((o) => o.rate === 2000)
  if (fp !== undefined && up !== undefined) {
    judge('full-policy p50 added over upstream at 2,000/s', fp.p50Ms.median - up.p50Ms.median, 1, false, 'ms')
    judge('full-policy p99 added over upstream at 2,000/s', fp.p99Ms.median - up.p99Ms.median, 3, false, 'ms')
  }
  const plain = t
  const policed = rps('tollgate-ip-rate')
  if (plain !== undefined && policed !== undefined) judge('tollgate-ip-rate / tollgate req/s', policed / plain, 0.9)
  for (const r of records) {
    const goal = authTargets[r.name] ?? validateTargets[r.name] ?? tlsTargets[r.name] ?? cacheTargets[r.name]
    const v = r.summary?.vsTollgate
    if (goal !== undefined && v != null) judge(`${r.name} / tollgate req/s (median of per-round ratios)`, v.median, goal)
  }
  // Goals against another baseline than `tollgate`: by req/s, and by gateway CPU per
  // request (baseline CPU / subject CPU), which a shared machine disturbs less.
  const cpu = (name: string): number | undefined => get(name)?.summary?.cpuUsPerRequest?.median
  const against = (goals: Readonly<Record<string, number>>, base: string): void => {
    for (const [name, goal] of Object.entries(goals)) {
      judge(`${name} / ${base} req/s`, ratioOf(name, base), goal)
      const a = cpu(name)
      const b = cpu(base)
      if (a !== undefined && b !== undefined) judge(`${base} / ${name} CPU µs per request`, b / a, goal)
    }
  }
  against(observabilityTargets, 'tollgate-unobserved')
  against(balancingTargets, 'tollgate-1-target')
  return out
}

async function main (): Promise<number> {
  const root = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '')
  const { groups, missing } = await loadSubjectGroups()
  let parsed: Parsed
  try {
    parsed = parseOptions(process.argv.slice(2), groups)
  } catch (err) {
    log(`bench: ${message(err)}\n\n${usage(groups)}`)
    return 2
  }
  if (parsed.kind === 'help') { console.log(usage(groups)); return 0 }
  if (parsed.kind === 'list') { console.log(listing(groups, missing)); return 0 }
  if (parsed.kind === 'compare') {
    try {
      console.log(compare(root, parsed.a, parsed.b))
      return 0
    } catch (err) {
      log(`bench: ${message(err)}`)
      return 2
    }
  }
  if (parsed.kind === 'report') {
    const results = JSON.parse(readFileSync(path.join(parsed.dir, 'results.json'), 'utf8')) as Results
    writeResults(parsed.dir, results, renderFiles(results))
    console.log(`rewrote ${parsed.dir}/report.md, latency.svg, throughput.svg`)
    return 0
  }
  const options = parsed.options
  const tool = await findLoadTool(root)
  if (tool === undefined) {
    log('bench: no load generator: install wrk (apt-get install -y wrk) or run npm install (autocannon is a devDependency).')
    return 1
  }
  if (tool.name !== 'wrk') log(`bench: wrk not found; using ${tool.path} instead. Figures are not comparable with wrk's.`)

  const startedAt = new Date().toISOString()
  const groupOf = new Map<string, string>()
  for (const g of groups) for (const s of g.subjects) groupOf.set(s.name, g.name)
  const chosen: Subject[] = groups.flatMap((g) => g.subjects).filter((s) => options.only.includes(s.name))
  const cores = os.cpus().length
  const records: SubjectRecord[] = chosen.map((s) => ({
    name: s.name,
    group: groupOf.get(s.name) ?? '?',
    description: s.description,
    commandLine: null,
    status: 'ok',
    reason: null,
    checks: [],
    notes: s.workers !== undefined && s.workers + 2 > cores
      ? [`This machine has ${cores} CPU core${cores === 1 ? '' : 's'}, shared by the ${s.workers} worker${s.workers === 1 ? '' : 's'}, the acceptor, the load generator and the upstream: the figure says little about scaling.`]
      : [],
    rounds: [],
    summary: null
  }))
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('exit', killAllNow)

  const { threads, connections, durationSec } = options.load
  log(`bench: ${chosen.length} subject(s); ${tool.name} -t${threads} -c${connections} -d${durationSec}s (warm-up ${options.warmupSec}s)`
    + `${options.rates.length > 0 ? `, open loop at ${options.rates.join(', ')} req/s` : ''}; ${options.rounds} round(s), node ${process.version}, ${cores} CPUs`)

  let upstream: RunningServer | undefined
  try {
    upstream = await startUpstream()
    const ctx: SubjectContext = { upstreamUrl: `http://127.0.0.1:${upstream.port}`, upstreamCommandLine: upstream.commandLine, upstreamPid: upstream.pid, root }
    const upstreamBody = await preflight({ url: `${ctx.upstreamUrl}/` })
    log(`bench: upstream on ${ctx.upstreamUrl} (pid ${upstream.pid})`)

    for (let round = 1; round <= options.rounds && !interrupted; round++) {
      log(`round ${round}/${options.rounds}`)
      for (let i = 0; i < chosen.length && !interrupted; i++) {
        const subject = chosen[i]!
        const record = records[i]!
        if (record.status !== 'ok') continue
        let running: RunningSubject | undefined
        try {
          running = await subject.start(ctx)
          record.commandLine = running.commandLine
          await preflight(running, upstreamBody)
          const checks = await checkControls(running.url, running.controls ?? [])
          if (round === 1) {
            record.checks = ['200 with the upstream\'s body' + ((running.expectHeaders ?? []).length > 0 ? ` and ${running.expectHeaders!.join(', ')}` : ''), ...checks]
          }
          await measure(root, tool, options, record, running, round)
        } catch (err) {
          if (interrupted) break
          record.status = err instanceof SkipSubject ? 'skipped' : 'failed'
          record.reason = message(err)
          log(`  ${subject.name.padEnd(26)} ${record.status}, not run again: ${record.reason.split('\n').join('\n    ')}`)
        } finally {
          await running?.stop()
        }
        await sleep(SETTLE_MS)
      }
    }
  } finally {
    await upstream?.stop()
    await stopAll()
  }

  for (const r of records) {
    if (r.status === 'ok' && r.rounds.length === 0) {
      r.status = 'not run'
      r.reason = interrupted ? 'interrupted' : 'no round completed'
    }
  }
  summarize(records)
  const cpus = os.cpus()
  const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { version: string }
  const commit = git(root, ['rev-parse', 'HEAD'])
  const status = git(root, ['status', '--porcelain', '--untracked-files=no'])
  const haproxy = findHaproxy()
  const results: Results = {
    startedAt,
    finishedAt: new Date().toISOString(),
    interrupted,
    machine: {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      release: os.release(),
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      totalMemBytes: os.totalmem(),
      loadavgAtStart: os.loadavg()
    },
    tollgate: { version: pkg.version, commit, dirty: status === null ? null : status !== '' },
    commit,
    load: {
      tool: tool.name,
      toolVersion: tool.version,
      threads,
      connections,
      durationSec,
      warmupSec: options.warmupSec,
      rounds: options.rounds,
      openLoopRates: options.rates,
      openLoopGenerator: `bench/open-loop.ts (undici Pool of ${connections} connections, fixed schedule, latency from the intended send time, hdr-histogram-js)`,
      order: 'interleaved: each round runs every subject once, in the order listed'
    },
    peers: peerVersions(root, haproxy?.version),
    subjects: records
  }

  const notes = buildNotes(records)

  console.log()
  console.log(formatTable(records))
  console.log()
  for (const n of notes) console.log(n)
  const dir = resultsDir(root, startedAt)
  writeResults(dir, results, renderFiles(results))
  console.log(`\nresults: ${dir}/ (results.json, report.md, latency.svg, throughput.svg)`)
  if (options.publish && !interrupted) {
    const published = path.join(root, 'bench', 'results', 'published')
    rmSync(published, { recursive: true, force: true })
    cpSync(dir, published, { recursive: true })
    console.log(`published: ${published}/ (update BENCHMARKS.md from its report.md)`)
  }
  if (interrupted) return 130
  return records.some((r) => r.status === 'failed' || r.status === 'not run') ? 1 : 0
}

/** report.md and the two charts, from a results record. */
function renderFiles (results: Results): Record<string, string> {
  const title = `tollgate bench ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${results.machine.cpus} CPUs`
  return {
    'report.md': formatMarkdown(results, buildNotes(results.subjects)),
    'latency.svg': latencySvg(results.subjects, title),
    'throughput.svg': throughputSvg(results.subjects, title)
  }
}

function peerVersions (root: string, haproxy: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of ['fastify', '@fastify/http-proxy', 'fast-gateway', 'autocannon']) {
    try {
      out[name] = (JSON.parse(readFileSync(`${root}/node_modules/${name}/package.json`, 'utf8')) as { version: string }).version
    } catch {
      // not installed
    }
  }
  if (haproxy !== undefined) out.haproxy = haproxy
  return out
}

main().then(
  (code) => { process.exitCode = code },
  (err: unknown) => {
    log(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
    process.exitCode = 1
  }
)

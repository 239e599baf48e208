// The bench runner: `npm run bench` (after `npm run build`).
//
// Starts the shared upstream, then, round by round, starts each subject as its own
// process, checks one request, warms it up, measures it with wrk, and stops it; rounds are
// interleaved (A B C A B C ...) so that drift on the machine spreads over all subjects.
// Prints the median per subject and writes every figure to bench/results/<stamp>/.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Client } from 'undici'
import { killAllNow, stopAll, type RunningServer } from './lib/children.js'
import { findLoadTool, type LoadSettings, type LoadTool } from './lib/load.js'
import { formatTable, noisy, writeResults, type Results, type SubjectRecord } from './lib/report.js'
import { ratio, spread } from './lib/stats.js'
import { startUpstream, subjects, type RunningSubject, type SubjectContext } from './subjects.js'
import { authTargets } from './auth-subjects.js'
import { validateTargets } from './validate-subjects.js'
import { tlsTargets } from './tls-subjects.js'

const TARGET_VS_BARE = 0.9
const MAX_SECONDS = 600
const SETTLE_MS = 500

const USAGE = `usage: npm run bench -- [options]   (or: node dist/bench/run.js [options])

  --duration 5s        measured time per subject per round (s or m; at most ${MAX_SECONDS}s)
  --warmup 2s          unmeasured load before each measurement (0 to skip)
  --connections 64     wrk connections
  --threads 1          wrk threads
  --rounds 3           interleaved rounds; the table shows the median and min–max
  --only a,b           subjects to run, of: ${subjects.map((s) => s.name).join(', ')}
  --help

Needs wrk on PATH (Debian/Ubuntu: apt-get install -y wrk).`

interface Options {
  load: LoadSettings
  warmupSec: number
  rounds: number
  only: string[]
}

function seconds(text: string, flag: string, min: number): number {
  const m = /^(\d+)(s|m)?$/.exec(text)
  if (m === null) throw new Error(`${flag}: expected e.g. 5s or 1m, got "${text}"`)
  const n = Number(m[1]) * (m[2] === 'm' ? 60 : 1)
  if (n < min || n > MAX_SECONDS) throw new Error(`${flag}: must be ${min}s to ${MAX_SECONDS}s, got "${text}"`)
  return n
}

function integer(text: string, flag: string, min: number, max: number): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${flag}: expected an integer ${min} to ${max}, got "${text}"`)
  return n
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '5s' },
      warmup: { type: 'string', default: '2s' },
      connections: { type: 'string', default: '64' },
      threads: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '3' },
      only: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help === true) return undefined
  const connections = integer(values.connections!, '--connections', 1, 10_000)
  const threads = integer(values.threads!, '--threads', 1, connections)
  const names = subjects.map((s) => s.name)
  const only = values.only === undefined ? names : values.only.split(',').map((s) => s.trim()).filter(Boolean)
  for (const name of only) {
    if (!names.includes(name)) throw new Error(`--only: no subject "${name}" (have: ${names.join(', ')})`)
  }
  return {
    load: { threads, connections, durationSec: seconds(values.duration!, '--duration', 1) },
    warmupSec: seconds(values.warmup!, '--warmup', 0),
    rounds: integer(values.rounds!, '--rounds', 1, 100),
    only,
  }
}

const log = (line: string): void => void process.stderr.write(`${line}\n`)
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** One GET through the subject: it must answer 200 with the upstream's body. */
async function preflight(url: string, expectedBody: string | undefined, headers: Record<string, string> = {}): Promise<string> {
  const target = new URL(url)
  // https subjects use a self-signed certificate made for the run (bench/tls-subjects.ts).
  const client = new Client(target.origin, { headersTimeout: 5_000, bodyTimeout: 5_000, connect: { timeout: 5_000, rejectUnauthorized: target.protocol !== 'https:' } })
  try {
    const res = await client.request({ path: target.pathname, method: 'GET', headers })
    const body = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}: ${body.slice(0, 300)}`)
    if (expectedBody !== undefined && body !== expectedBody) {
      throw new Error(`GET ${url} answered a body other than the upstream's: ${body.slice(0, 300)}`)
    }
    return body
  } finally {
    await client.close()
  }
}

function gitCommit(root: string): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()
  } catch {
    return null
  }
}

/**
 * CPU time of a process so far (utime + stime of all its threads, /proc/<pid>/stat), in ms.
 * Throughput on a shared machine swings with the neighbours; the CPU a subject spends per
 * request moves much less, so it is reported beside req/s.
 */
function processCpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(f[11]) + Number(f[12])
    return Number.isFinite(ticks) ? ticks * 1000 / CLOCK_TICKS : null
  } catch {
    return null
  }
}

/** USER_HZ: 100 on Linux for every architecture we run on (getconf CLK_TCK). */
const CLOCK_TICKS = 100

let interrupted = false

function onSignal(sig: NodeJS.Signals): void {
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

async function measure(
  tool: LoadTool, options: Options, subject: SubjectRecord, running: RunningSubject, round: number,
): Promise<void> {
  const load = { ...options.load, headers: running.headers, method: running.method, body: running.body }
  if (options.warmupSec > 0) await tool.run(running.url, { ...load, durationSec: options.warmupSec })
  const startedAt = new Date().toISOString()
  const loadavg = os.loadavg()
  const cpuBefore = processCpuMs(running.pid)
  const result = await tool.run(running.url, load)
  const cpuAfter = processCpuMs(running.pid)
  const cpuUsPerRequest = cpuBefore === null || cpuAfter === null || result.requests === 0 ? null : (cpuAfter - cpuBefore) * 1000 / result.requests
  if (!running.alive()) throw new Error(`${subject.name} exited during the run`)
  subject.rounds.push({ round, startedAt, loadavg, command: tool.commandFor(running.url, load), result, cpuUsPerRequest })
  const errors = result.non2xx + Object.values(result.socketErrors).reduce((a, b) => a + b, 0)
  log(`  ${subject.name.padEnd(12)} ${Math.round(result.requestsPerSec).toLocaleString('en-US').padStart(9)} req/s`
    + `  p50 ${result.latencyMs.p50.toFixed(2)}ms  p99 ${result.latencyMs.p99.toFixed(2)}ms`
    + (cpuUsPerRequest === null ? '' : `  cpu ${cpuUsPerRequest.toFixed(1)}us/req`)
    + (errors > 0 ? `  (${errors} errors/non-2xx)` : ''))
}

function summarize(records: SubjectRecord[]): void {
  for (const s of records) {
    if (s.status !== 'ok' || s.rounds.length === 0) continue
    s.summary = {
      requestsPerSec: spread(s.rounds.map((r) => r.result.requestsPerSec)),
      p50Ms: spread(s.rounds.map((r) => r.result.latencyMs.p50)),
      p99Ms: spread(s.rounds.map((r) => r.result.latencyMs.p99)),
      vsBareProxy: null,
      vsUpstream: null,
      errors: s.rounds.reduce((n, r) => n + r.result.non2xx
        + Object.values(r.result.socketErrors).reduce((a, b) => a + b, 0), 0),
    }
  }
  const rps = (name: string): number | undefined =>
    records.find((s) => s.name === name)?.summary?.requestsPerSec.median
  for (const s of records) {
    if (s.summary === null) continue
    s.summary.vsBareProxy = ratio(s.summary.requestsPerSec.median, rps('bare-proxy'))
    s.summary.vsUpstream = ratio(s.summary.requestsPerSec.median, rps('upstream'))
  }
}

async function main(): Promise<number> {
  let options: Options | undefined
  try {
    options = parseOptions(process.argv.slice(2))
  } catch (err) {
    log(`bench: ${message(err)}\n\n${USAGE}`)
    return 2
  }
  if (options === undefined) {
    console.log(USAGE)
    return 0
  }
  const root = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '')
  const tool = await findLoadTool(root)
  if (tool === undefined) {
    log('bench: wrk is needed and is not on PATH. Install it: apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS).')
    return 1
  }
  if (tool.name !== 'wrk') log(`bench: wrk not found; using ${tool.path} instead. Figures are not comparable with wrk's.`)

  const startedAt = new Date().toISOString()
  const chosen = subjects.filter((s) => options.only.includes(s.name))
  const records: SubjectRecord[] = chosen.map((s) => ({
    name: s.name, description: s.description, commandLine: null, status: 'ok', reason: null, rounds: [], summary: null,
  }))
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('exit', killAllNow)

  const { threads, connections, durationSec } = options.load
  log(`bench: ${tool.name} -t${threads} -c${connections} -d${durationSec}s (warm-up ${options.warmupSec}s), `
    + `${options.rounds} round(s), node ${process.version}, ${os.cpus().length} CPUs`)

  let upstream: RunningServer | undefined
  try {
    upstream = await startUpstream()
    const ctx: SubjectContext = {
      upstreamUrl: `http://127.0.0.1:${upstream.port}`,
      upstreamCommandLine: upstream.commandLine,
      root,
    }
    const upstreamBody = await preflight(`${ctx.upstreamUrl}/`, undefined)
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
          await preflight(running.url, upstreamBody, running.headers)
          await measure(tool, options, record, running, round)
        } catch (err) {
          if (interrupted) break
          record.status = 'failed'
          record.reason = message(err)
          log(`  ${subject.name.padEnd(12)} failed, not run again: ${record.reason.split('\n').join('\n    ')}`)
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
      loadavgAtStart: os.loadavg(),
    },
    commit: gitCommit(root),
    load: {
      tool: tool.name,
      toolVersion: tool.version,
      threads,
      connections,
      durationSec,
      warmupSec: options.warmupSec,
      rounds: options.rounds,
      order: 'interleaved: each round runs every subject once, in the order listed',
    },
    subjects: records,
  }

  console.log()
  console.log(formatTable(records))
  for (const r of records) {
    if (r.reason !== null) console.log(`\n${r.name}: ${r.status}: ${r.reason}`)
  }
  const unsteady = noisy(records)
  if (unsteady.length > 0) {
    console.log(`\nnote: req/s varied by more than 20% across rounds for ${unsteady.join(', ')}; `
      + 'the machine was busy or the run too short (see loadavg per round in the results file).')
  }
  const vsBare = records.find((r) => r.name === 'tollgate')?.summary?.vsBareProxy
  if (vsBare !== undefined && vsBare !== null) {
    console.log(`\ntarget: tollgate >= ${TARGET_VS_BARE.toFixed(2)} x bare-proxy req/s: `
      + `${vsBare >= TARGET_VS_BARE ? 'met' : 'NOT met'} (${vsBare.toFixed(2)})`)
  }
  // Issue 3's goal: ip-filter (1M CIDRs) + one rate-limit cost <= 10% of tollgate's req/s.
  const plain = records.find((r) => r.name === 'tollgate')?.summary?.requestsPerSec.median
  const policed = records.find((r) => r.name === 'tollgate-ip-rate')?.summary?.requestsPerSec.median
  if (plain !== undefined && policed !== undefined) {
    const ratio = policed / plain
    console.log(`target: tollgate-ip-rate >= 0.90 x tollgate req/s: ${ratio >= 0.9 ? 'met' : 'NOT met'} (${ratio.toFixed(2)})`)
  }
  // Issue 4's goals: the cost of each authn plugin against tollgate with none. On a noisy
  // machine the ratio of medians swings with whatever the host did that minute; the median
  // of the per-round ratios (each subject against tollgate's run of the same round, seconds
  // apart) is steadier, and is the figure the targets are judged by.
  const base = records.find((r) => r.name === 'tollgate')
  for (const r of records) {
    if (base === undefined || r.summary === null || !r.name.startsWith('tollgate-') || r.name === 'tollgate-ip-rate') continue
    const paired = r.rounds.flatMap((round) => {
      const b = base.rounds.find((x) => x.round === round.round)
      return b === undefined ? [] : [round.result.requestsPerSec / b.result.requestsPerSec]
    })
    if (paired.length === 0) continue
    const x = spread(paired)
    const goal = authTargets[r.name] ?? validateTargets[r.name] ?? tlsTargets[r.name]
    // CPU per request, tollgate's over the subject's: the throughput ratio the CPU cost
    // alone predicts for a CPU-bound gateway.
    const cpu = r.rounds.flatMap((round) => {
      const b = base.rounds.find((y) => y.round === round.round)
      return b?.cpuUsPerRequest == null || round.cpuUsPerRequest == null ? [] : [b.cpuUsPerRequest / round.cpuUsPerRequest]
    })
    const c = cpu.length === 0 ? undefined : spread(cpu)
    console.log(`${r.name}: ${x.median.toFixed(2)} x tollgate req/s (median of ${paired.length} per-round ratios, ${x.min.toFixed(2)}–${x.max.toFixed(2)})`
      + (c === undefined ? '' : `, ${c.median.toFixed(2)} by CPU per request (${c.min.toFixed(2)}–${c.max.toFixed(2)})`)
      + (goal === undefined ? '' : `; target >= ${goal.toFixed(2)}: ${x.median >= goal ? 'met' : 'NOT met'}`))
  }
  console.log(`\nresults: ${writeResults(root, results)}`)
  if (interrupted) return 130
  return records.some((r) => r.status !== 'ok') ? 1 : 0
}

main().then(
  (code) => { process.exitCode = code },
  (err: unknown) => {
    log(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
    process.exitCode = 1
  },
)

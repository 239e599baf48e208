// Two subjects measured at the same time: each gets its own closed-loop load (wrk) for the
// same seconds, side by side, round after round, and each round gives the ratio of their
// requests/s and of their CPU per request. On a shared machine whose speed drifts from one
// second to the next (this one: the same subject varies 2x between rounds), two subjects
// run one after the other see different machines; run together, they see the same one, so
// their ratio holds still where their absolute figures do not. Both compete for the same
// cores, so the ratio of requests/s is the ratio of their efficiency, the figure a cost
// budget ("at most 10% of requests/s") is about. Each side has its own upstream process.
// Everything on 127.0.0.1; every process
// started is stopped by PID.
//
//   npm run bench:paired -- BASELINE SUBJECT [--rounds 7] [--duration 4] [--connections 16]
//   e.g. npm run bench:paired -- tollgate-unobserved tollgate-log-metrics
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { stopAll } from './lib/children.js'
import { findLoadTool } from './lib/load.js'
import type { LoadResult } from './lib/load.js'
import { processCpuMs } from './lib/probe.js'
import { median } from './lib/stats.js'
import type { RunningSubject, Subject, SubjectContext } from './lib/subject.js'
import { loadSubjectGroups, startUpstream } from './subjects.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: 'string', default: '7' }, duration: { type: 'string', default: '4' }, connections: { type: 'string', default: '16' } }
})
const ROUNDS = Number(values.rounds)
const DURATION = Number(values.duration)
const CONNECTIONS = Number(values.connections)
const root = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '')

interface Side { subject: Subject, running: RunningSubject, rps: number[], cpu: number[] }

async function main (): Promise<number> {
  const [a, b] = positionals
  if (a === undefined || b === undefined || positionals.length !== 2) {
    process.stderr.write('usage: npm run bench:paired -- BASELINE SUBJECT [--rounds 7] [--duration 4] [--connections 16]\n')
    return 2
  }
  const all = (await loadSubjectGroups()).groups.flatMap((g) => g.subjects)
  const find = (name: string): Subject => {
    const s = all.find((x) => x.name === name)
    if (s === undefined) throw new Error(`no subject named ${name} (npm run bench -- --list)`)
    return s
  }
  const tool = await findLoadTool(root)
  if (tool === undefined) throw new Error('no load generator: apt-get install -y wrk')
  // An upstream each: one shared upstream would be the slower side's bottleneck too, and
  // hold both sides to the same requests/s.
  const upstreams = [await startUpstream(), await startUpstream()]
  const sides: Side[] = []
  for (const [i, name] of [a, b].entries()) {
    const up = upstreams[i] as Awaited<ReturnType<typeof startUpstream>>
    const ctx: SubjectContext = { upstreamUrl: `http://127.0.0.1:${up.port}`, upstreamCommandLine: up.commandLine, upstreamPid: up.pid, root }
    const subject = find(name)
    sides.push({ subject, running: await subject.start(ctx), rps: [], cpu: [] })
  }
  const settings = (r: RunningSubject): Parameters<typeof tool.run>[1] => ({ threads: 1, connections: CONNECTIONS, durationSec: DURATION, headers: r.headers, method: r.method, body: r.body })
  // Warm-up, both at once as in the rounds.
  await Promise.all(sides.map(async (s) => await tool.run(s.running.url, { ...settings(s.running), durationSec: 2 })))
  for (let round = 1; round <= ROUNDS; round++) {
    const before = sides.map((s) => processCpuMs(s.running.pid))
    const results: LoadResult[] = await Promise.all(sides.map(async (s) => await tool.run(s.running.url, settings(s.running))))
    sides.forEach((s, i) => {
      const r = results[i] as LoadResult
      if (r.non2xx > 0 || r.socketErrors.connect + r.socketErrors.read + r.socketErrors.timeout > 0) process.stderr.write(`warning: ${s.subject.name} round ${round}: ${r.non2xx} non-2xx, socket errors ${JSON.stringify(r.socketErrors)}\n`)
      const cpu0 = before[i]
      const cpu1 = processCpuMs(s.running.pid)
      s.rps.push(r.requestsPerSec)
      s.cpu.push(cpu0 === null || cpu1 === null || r.requests === 0 ? NaN : (cpu1 - cpu0) * 1000 / r.requests)
    })
    const [x, y] = sides as [Side, Side]
    process.stdout.write(`round ${round}: ${x.subject.name} ${x.rps.at(-1)?.toFixed(0)} req/s ${x.cpu.at(-1)?.toFixed(1)} µs/req | ${y.subject.name} ${y.rps.at(-1)?.toFixed(0)} req/s ${y.cpu.at(-1)?.toFixed(1)} µs/req\n`)
  }
  const [x, y] = sides as [Side, Side]
  const rpsRatio = x.rps.map((v, i) => (y.rps[i] as number) / v)
  const cpuRatio = x.cpu.map((v, i) => v / (y.cpu[i] as number))
  const fmt = (xs: number[]): string => xs.map((v) => v.toFixed(2)).join(' ')
  process.stdout.write(`\n${y.subject.name} / ${x.subject.name}, ${tool.name} -t1 -c${CONNECTIONS} -d${DURATION}s each, both at once, ${ROUNDS} rounds:\n`)
  process.stdout.write(`  req/s ratio per round      ${fmt(rpsRatio)}  median ${median(rpsRatio).toFixed(3)}\n`)
  process.stdout.write(`  CPU µs/req ratio per round ${fmt(cpuRatio)}  median ${median(cpuRatio).toFixed(3)}  (${x.subject.name} / ${y.subject.name})\n`)
  for (const s of sides) await s.running.stop()
  for (const up of upstreams) await up.stop()
  return 0
}

main().then(async (code) => { await stopAll(); process.exitCode = code }, async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  await stopAll()
  process.exitCode = 1
})

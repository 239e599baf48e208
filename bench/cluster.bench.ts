// Cluster mode's cost: requests/s and p99 of tollgate (1 worker, one rate-limit that is
// checked on every request and never reached) in local mode, cluster strict mode and cluster
// fast mode, with redis-server on loopback. Rounds are interleaved (local strict fast ...);
// medians are reported, with strict and fast relative to local. Everything on 127.0.0.1;
// every process started here is stopped by PID.
//
// Each round also runs an open-loop load at a fixed rate (--rate, default 1000/s; latency
// from each request's intended send time, bench/open-loop.ts): the added p99 the issue
// prices is this one. The closed-loop p99 (wrk at saturation) is mostly queueing, so a mode
// with fewer requests/s shows a longer queue there, not a slower request.
//
//   npm run bench:cluster -- [--duration 5] [--rounds 3] [--connections 32] [--rate 1000]
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { startServer, stopAll } from './lib/children.js'
import { runOpenLoop } from './lib/open-loop-process.js'
import { findLoadTool } from './lib/load.js'
import type { LoadResult } from './lib/load.js'
import type { OpenLoopResult } from './open-loop.js'
import { announcedPort } from './lib/ready.js'
import { median } from './lib/stats.js'
import { startTollgateWithConfig } from './lib/tollgate.js'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, connections: { type: 'string', default: '32' }, rate: { type: 'string', default: '1000' } } })
const DURATION = Number(values.duration)
const ROUNDS = Number(values.rounds)
const CONNECTIONS = Number(values.connections)
const RATE = Number(values.rate)
const root = fileURLToPath(new URL('../../', import.meta.url))

async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

function config (upstream: string, cluster: Record<string, unknown> | undefined): Record<string, unknown> {
  return {
    logLevel: 'warn',
    ...(cluster === undefined ? {} : { cluster }),
    routes: [{
      name: 'bench',
      match: { path: '/' },
      upstream,
      // Checked on every request, never reached: the cost of the check is what is measured.
      plugins: [{ name: 'rate-limit', config: { key: 'ip', limits: [{ limit: 1000000, window: '1h' }] } }]
    }]
  }
}

async function main (): Promise<void> {
  const tool = await findLoadTool(root)
  if (tool === undefined) throw new Error('no load generator: apt-get install -y wrk')
  const upstream = await startServer({ name: 'upstream', command: process.execPath, args: [`${root}/dist/bench/upstream.js`, '--host', '127.0.0.1', '--port', '0'], ready: announcedPort, startTimeoutMs: 30_000 })
  const redisPort = await freePort()
  const redis = await startServer({
    name: 'redis-server',
    command: 'redis-server',
    args: ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    ready: (line) => line.includes('Ready to accept connections') ? redisPort : undefined,
    startTimeoutMs: 30_000
  })
  const up = `http://127.0.0.1:${upstream.port}`
  const redisUrl = `redis://127.0.0.1:${redis.port}`
  const subjects = {
    local: await startTollgateWithConfig(root, 'tollgate-local', { config: config(up, undefined), startTimeoutMs: 120_000 }),
    strict: await startTollgateWithConfig(root, 'tollgate-strict', { config: config(up, { redis: redisUrl, mode: 'strict', timeout: '1s' }), startTimeoutMs: 120_000 }),
    fast: await startTollgateWithConfig(root, 'tollgate-fast', { config: config(up, { redis: redisUrl, mode: 'fast', syncInterval: '100ms' }), startTimeoutMs: 120_000 })
  }
  const settings = { threads: 1, connections: CONNECTIONS, durationSec: DURATION }
  const results: Record<string, LoadResult[]> = { local: [], strict: [], fast: [] }
  const open: Record<string, OpenLoopResult[]> = { local: [], strict: [], fast: [] }
  // Warm-up: JIT, connections, Redis scripts loaded.
  for (const s of Object.values(subjects)) await tool.run(`http://127.0.0.1:${s.port}/`, { ...settings, durationSec: 1 })
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, s] of Object.entries(subjects)) {
      const r = await tool.run(`http://127.0.0.1:${s.port}/`, settings)
      if (r.non2xx > 0 || r.socketErrors.connect + r.socketErrors.read + r.socketErrors.timeout > 0) process.stderr.write(`warning: ${name} round ${round}: ${r.non2xx} non-2xx, socket errors ${JSON.stringify(r.socketErrors)}\n`)
      results[name]?.push(r)
      const o = await runOpenLoop(root, { url: `http://127.0.0.1:${s.port}/`, rate: RATE, durationSec: DURATION, connections: CONNECTIONS })
      if (o.errors > 0 || o.completed < o.scheduled) process.stderr.write(`warning: ${name} round ${round} open loop: ${o.errors} errors, ${o.completed} of ${o.scheduled} answered\n`)
      open[name]?.push(o)
    }
  }
  const rps = (n: string): number => median((results[n] ?? []).map((r) => r.requestsPerSec))
  const p99 = (n: string): number => median((results[n] ?? []).map((r) => r.latencyMs.p99))
  process.stdout.write(`cluster bench: ${tool.name} -t1 -c${CONNECTIONS} -d${DURATION}s, ${ROUNDS} interleaved rounds, 1 worker per subject, redis-server on loopback\n`)
  process.stdout.write('| mode | req/s (median) | vs local | p99 ms (median) | added p99 ms |\n|---|---|---|---|---|\n')
  for (const n of ['local', 'strict', 'fast']) {
    process.stdout.write(`| ${n} | ${rps(n).toFixed(0)} | ${(rps(n) / rps('local')).toFixed(3)} | ${p99(n).toFixed(2)} | ${n === 'local' ? '-' : (p99(n) - p99('local')).toFixed(2)} |\n`)
  }
  const ol = (n: string, k: 'p50' | 'p99'): number => median((open[n] ?? []).map((o) => o.latencyUs[k] / 1000))
  const lag = median(Object.values(open).flat().map((o) => o.medianSendLagUs / 1000))
  process.stdout.write(`\nopen loop at ${RATE}/s (${CONNECTIONS} connections; latency from the intended send time; generator lag p50 ${lag.toFixed(2)} ms):\n`)
  process.stdout.write('| mode | p50 ms | p99 ms | added p50 ms | added p99 ms |\n|---|---|---|---|---|\n')
  for (const n of ['local', 'strict', 'fast']) {
    const added = (k: 'p50' | 'p99'): string => (n === 'local' ? '-' : (ol(n, k) - ol('local', k)).toFixed(2))
    process.stdout.write(`| ${n} | ${ol(n, 'p50').toFixed(2)} | ${ol(n, 'p99').toFixed(2)} | ${added('p50')} | ${added('p99')} |\n`)
  }
  process.stdout.write(`targets: fast cost <= 5% (vs local >= 0.95); strict added p99 <= 1 ms (open loop)\n`)
}

main().then(async () => { await stopAll() }, async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  await stopAll()
  process.exitCode = 1
})

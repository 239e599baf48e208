// Time from PUT /config to every worker on the new generation (the PUT answers only after
// all workers acknowledged the switch), with N workers, R routes and C CIDRs, and the
// latency of traffic while updates stream in vs steady state. Everything on 127.0.0.1;
// every process started here is stopped by PID.
//
//   node dist/bench/reload.bench.js [--workers 4] [--routes 1000] [--cidrs 100000] [--updates 20] [--list new|same]
//
// --list new (the default): every update brings a CIDR list of its own. --list same: the
// list file stays as it is and each update changes one route instead.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Pool, request } from 'undici'

const { values } = parseArgs({
  options: { workers: { type: 'string', default: '4' }, routes: { type: 'string', default: '1000' }, cidrs: { type: 'string', default: '100000' }, updates: { type: 'string', default: '20' }, list: { type: 'string', default: 'new' }, inline: { type: 'boolean', default: false } }
})
const WORKERS = Number(values.workers)
const ROUTES = Number(values.routes)
const CIDRS = Number(values.cidrs)
const UPDATES = Number(values.updates)
/** CIDRs inline in the config (--inline) or, the usual way for big lists, in a file. */
const INLINE = values.inline === true
const SAME_LIST = values.list === 'same'
if (values.list !== 'new' && !SAME_LIST) throw new Error('--list is new or same')
let listDir = ''
const root = fileURLToPath(new URL('../../', import.meta.url))

function config (upstream: string, n: number): unknown {
  const list: string[] = []
  // Every update brings a list of its own (no two updates' lists are alike), so nothing
  // compiled for an earlier one can be reused: the whole list is parsed and compiled each time.
  const v = SAME_LIST ? 0 : n
  for (let i = 0; i < CIDRS; i++) list.push(`${11 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}.${1 + (v % 250)}`)
  let deny: Record<string, unknown> = { deny: list }
  if (!INLINE) {
    const file = join(listDir, `deny-${v % 2}.txt`)
    if (!SAME_LIST || n === 0) writeFileSync(file, list.join('\n'))
    deny = { denyFile: file }
  }
  const routes = []
  // With the same list, the update is a change to one route.
  for (let r = 0; r < ROUTES; r++) routes.push({ name: `r${r}`, match: { path: SAME_LIST && n > 0 && r === n % ROUTES ? `/r${r}/v${n}` : `/r${r}` }, upstream })
  routes.push({ name: 'all', match: { path: '/' }, upstream, plugins: [{ name: 'ip-filter', config: deny }] })
  return { listen: { host: '127.0.0.1', port: 0 }, workers: WORKERS, logLevel: 'info', admin: { port: 0 }, routes }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN }
const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? NaN }

const phases: Array<[number, number, number]> = []

async function main (): Promise<void> {
  const upstream = createServer((_q, r) => r.end('ok'))
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const upUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-reload-bench-'))
  listDir = dir
  writeFileSync(join(dir, 'gateway.json'), JSON.stringify(config(upUrl, 0)))
  // TOLLGATE_BENCH_NODE_ARGS: node flags for the gateway, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p".
  const nodeArgs = (process.env.TOLLGATE_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
  const gw = spawn(process.execPath, [...nodeArgs, join(root, 'bin/tollgate.js'), '--config', join(dir, 'gateway.json')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const stop = (): void => { if (gw.exitCode === null) gw.kill('SIGKILL') }
  process.on('exit', stop)
  try {
    const listening = await new Promise<{ port: number, admin: { port: number } }>((resolve, reject) => {
      let buf = ''
      gw.stdout.on('data', (d: Buffer) => {
        buf += d.toString()
        for (const line of buf.split('\n')) {
          if (line.includes('"msg":"listening"')) resolve(JSON.parse(line) as never)
          if (line.includes('"msg":"policy update applied"')) {
            const l = JSON.parse(line) as { prepareMs: number, publishMs: number, storeMs: number }
            phases.push([l.prepareMs, l.publishMs, l.storeMs])
          }
        }
        buf = buf.slice(buf.lastIndexOf('\n') + 1)
      })
      gw.once('exit', (code) => reject(new Error(`gateway exited ${String(code)}`)))
      setTimeout(() => reject(new Error('gateway did not start in 120 s')), 120_000).unref()
    })
    const base = `http://127.0.0.1:${listening.port}`
    const adminUrl = `http://127.0.0.1:${listening.admin.port}/config`
    const pool = new Pool(base, { connections: 16 })
    const latencies: number[] = []
    let phase: 'steady' | 'updates' | 'done' = 'steady'
    const steady: number[] = []
    const during: number[] = []
    let errors = 0
    const load = async (): Promise<void> => {
      while (phase !== 'done') {
        const t0 = performance.now()
        try {
          const r = await pool.request({ path: '/x', method: 'GET' })
          await r.body.dump()
          if (r.statusCode !== 200) errors++
        } catch { errors++ }
        const ms = performance.now() - t0
        if (phase === 'steady') steady.push(ms)
        else if (phase === 'updates') during.push(ms)
        // A paced load, far below the knee: latency, not throughput, is measured here.
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
    }
    const loaders = Array.from({ length: 8 }, load)
    await new Promise((resolve) => setTimeout(resolve, 3000))
    phase = 'updates'
    for (let i = 0; i < UPDATES; i++) {
      // Written before the clock starts: the bench times the gateway, not its own list writer.
      const body = JSON.stringify(config(upUrl, i + 1))
      const t0 = performance.now()
      const r = await request(adminUrl, { method: 'PUT', headers: { 'content-type': 'application/json' }, body })
      const text = await r.body.text()
      if (r.statusCode !== 200) throw new Error(`update ${i} failed: ${r.statusCode} ${text.slice(0, 300)}`)
      latencies.push(performance.now() - t0)
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 - (performance.now() - t0))))
    }
    phase = 'done'
    await Promise.all(loaders)
    await pool.close()
    console.log(`reload bench: ${WORKERS} workers, ${ROUTES} routes, ${CIDRS} CIDRs ${INLINE ? 'inline' : 'in a file'} (${SAME_LIST ? 'the same list every update; one route changes' : 'a new list every update'}), ${UPDATES} updates at 1/s`)
    console.log(`PUT -> every worker switched: median ${median(latencies).toFixed(0)} ms, min ${Math.min(...latencies).toFixed(0)}, max ${Math.max(...latencies).toFixed(0)}`)
    console.log(`traffic p50/p99 steady: ${median(steady).toFixed(2)} / ${pct(steady, 0.99).toFixed(2)} ms (${steady.length} requests)`)
    console.log(`traffic p50/p99 during updates: ${median(during).toFixed(2)} / ${pct(during, 0.99).toFixed(2)} ms (${during.length} requests); p99 ratio ${(pct(during, 0.99) / pct(steady, 0.99)).toFixed(2)}`)
    console.log(`errors or non-200: ${errors}`)
    if (phases.length > 0) console.log(`phases (median ms): prepare ${median(phases.map((p) => p[0]))}, publish ${median(phases.map((p) => p[1]))}, store ${median(phases.map((p) => p[2]))}`)
  } finally {
    // SIGTERM first: the gateway drains and exits (and a --cpu-prof profile gets written).
    if (gw.exitCode === null) {
      const exited = new Promise((resolve) => gw.once('exit', resolve))
      gw.kill('SIGTERM')
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
    }
    stop()
    upstream.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => { console.error(err); process.exitCode = 1 })

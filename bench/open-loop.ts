// The open-loop load generator: requests at a fixed rate on a schedule made before the run
// (request i is due at start + i / rate), each one's latency measured from the time it was
// due, not from when it was sent, so a stall of the subject shows in every request that
// had to wait behind it (no coordinated omission, as in wrk2). Latencies go into an HDR
// histogram (hdr-histogram-js, microseconds, 3 significant digits). Run as its own process
// by the bench runner, which reads the JSON it prints:
//   node dist/bench/open-loop.js '{"url":"http://127.0.0.1:P/","rate":2000,"durationSec":10,"connections":64}'
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import hdr from 'hdr-histogram-js'
import { Pool } from 'undici'

export interface OpenLoopSpec {
  url: string
  rate: number
  durationSec: number
  /** Keep-alive connections the pool may open; a request due while all are busy queues
   *  (and its wait counts in its latency). */
  connections: number
  method?: string
  headers?: Record<string, string>
  body?: string
  /** Seconds of the same schedule run first and not recorded: warms this process's JIT
   *  and connections, which otherwise fall behind the schedule (default 1). */
  warmupSec?: number
}

export interface OpenLoopResult {
  rate: number
  durationSec: number
  /** Requests due, sent, and answered. */
  scheduled: number
  completed: number
  achievedRate: number
  statuses: Record<string, number>
  errors: number
  errorKinds: Record<string, number>
  /** Latency from the intended send time, microseconds. */
  latencyUs: { p50: number, p90: number, p99: number, p999: number, max: number, mean: number }
  /** How far behind its schedule the generator itself ran at worst, and at the median
   *  (microseconds): large values mean the generator, not only the subject, was short of
   *  CPU, and the latencies hold its lag too. */
  maxSendLagUs: number
  medianSendLagUs: number
  /** The whole histogram, for re-analysis (hdr-histogram-js compressed base64). */
  histogram: string
}

const DRAIN_MS = 10_000
const TICK_MS = 1

export async function openLoop (spec: OpenLoopSpec): Promise<OpenLoopResult> {
  const warmupSec = spec.warmupSec ?? 1
  if (warmupSec > 0) await schedule({ ...spec, durationSec: warmupSec })
  return await schedule(spec)
}

async function schedule (spec: OpenLoopSpec): Promise<OpenLoopResult> {
  const url = new URL(spec.url)
  const pool = new Pool(url.origin, { connections: spec.connections, pipelining: 1, headersTimeout: DRAIN_MS, bodyTimeout: DRAIN_MS, keepAliveTimeout: 30_000 })
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 })
  const statuses: Record<string, number> = {}
  const errorKinds: Record<string, number> = {}
  const total = Math.round(spec.rate * spec.durationSec)
  const intervalNs = 1e9 / spec.rate
  const path = url.pathname + url.search
  let completed = 0
  let errors = 0
  let outstanding = 0
  let maxSendLagNs = 0
  const lags = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 2 })
  let allDone: () => void = () => {}
  const done = new Promise<void>((resolve) => { allDone = resolve })
  let sentAll = false

  const fire = (due: bigint): void => {
    outstanding++
    pool.request({ path, method: spec.method ?? 'GET', headers: spec.headers, body: spec.body })
      .then(async (res) => {
        await res.body.dump()
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
        histogram.recordValue(Math.max(1, Number((process.hrtime.bigint() - due) / 1000n)))
        completed++
      }, (err: unknown) => {
        const kind = (err as { code?: string }).code ?? (err instanceof Error ? err.name : 'error')
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1
        errors++
      })
      .finally(() => {
        outstanding--
        if (sentAll && outstanding === 0) allDone()
      })
  }

  const start = process.hrtime.bigint() + 50_000_000n
  let i = 0
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = process.hrtime.bigint()
      while (i < total) {
        const due = start + BigInt(Math.round(i * intervalNs))
        if (due > now) break
        const lag = Number(now - due)
        if (lag > maxSendLagNs) maxSendLagNs = lag
        lags.recordValue(Math.max(1, Math.round(lag / 1000)))
        fire(due)
        i++
      }
      if (i >= total) resolve()
      else setTimeout(tick, TICK_MS)
    }
    setTimeout(tick, 50)
  })
  sentAll = true
  if (outstanding === 0) allDone()
  const timer = setTimeout(allDone, DRAIN_MS)
  await done
  clearTimeout(timer)
  const late = outstanding
  if (late > 0) {
    errorKinds.unanswered = late
    errors += late
  }
  await pool.destroy()
  const elapsedSec = Number(process.hrtime.bigint() - start) / 1e9
  const result: OpenLoopResult = {
    rate: spec.rate,
    durationSec: spec.durationSec,
    scheduled: total,
    completed,
    achievedRate: completed / Math.max(elapsedSec, spec.durationSec),
    statuses,
    errors,
    errorKinds,
    latencyUs: {
      p50: histogram.getValueAtPercentile(50),
      p90: histogram.getValueAtPercentile(90),
      p99: histogram.getValueAtPercentile(99),
      p999: histogram.getValueAtPercentile(99.9),
      max: histogram.maxValue,
      mean: histogram.mean
    },
    maxSendLagUs: Math.round(maxSendLagNs / 1000),
    medianSendLagUs: lags.getValueAtPercentile(50),
    histogram: hdr.encodeIntoCompressedBase64(histogram)
  }
  histogram.destroy()
  lags.destroy()
  return result
}

// Run as a process: the spec is the one argument, the result one JSON line on stdout.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const spec = JSON.parse(process.argv[2] ?? '') as OpenLoopSpec
  openLoop(spec).then(
    (r) => { process.stdout.write(JSON.stringify(r) + '\n'); process.exit(0) },
    (err: unknown) => { process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`); process.exit(1) }
  )
}

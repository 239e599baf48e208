// Checks around a measurement: one good request (200, the upstream's body, the headers the
// subject's plugins must add), the control requests its policy must refuse, and the
// process figures read from /proc (CPU time, peak RSS).
import { readFileSync } from 'node:fs'
import { Client } from 'undici'
import type { ControlRequest, RunningSubject } from './subject.js'

async function send (url: string, r: { method?: string, headers?: Record<string, string>, body?: string, localAddress?: string }): Promise<{ status: number, headers: Record<string, unknown>, body: string }> {
  const target = new URL(url)
  const client = new Client(target.origin, { headersTimeout: 5_000, bodyTimeout: 5_000, connectTimeout: 5_000, localAddress: r.localAddress })
  try {
    const res = await client.request({ path: target.pathname + target.search, method: r.method ?? 'GET', headers: r.headers, body: r.body })
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
  } finally {
    await client.close()
  }
}

/** One request as the load sends it: it must answer 200 with the upstream's body. Returns the body. */
export async function preflight (s: Pick<RunningSubject, 'url' | 'method' | 'headers' | 'body' | 'expectHeaders'>, expectedBody?: string): Promise<string> {
  const res = await send(s.url, s)
  if (res.status !== 200) throw new Error(`${s.method ?? 'GET'} ${s.url} answered ${res.status}: ${res.body.slice(0, 300)}`)
  if (expectedBody !== undefined && res.body !== expectedBody) throw new Error(`${s.url} answered a body other than the upstream's: ${res.body.slice(0, 300)}`)
  const missing = (s.expectHeaders ?? []).filter((h) => res.headers[h] === undefined)
  if (missing.length > 0) throw new Error(`${s.url} answered without ${missing.join(', ')}: the plugin that adds it did not run`)
  return res.body
}

/** Each control request must get its status; returns one line per check, for the record. */
export async function checkControls (url: string, controls: readonly ControlRequest[]): Promise<string[]> {
  const lines: string[] = []
  for (const c of controls) {
    const res = await send(url, c)
    if (res.status !== c.status) throw new Error(`control "${c.what}" answered ${res.status}, expected ${c.status}: the policy did not run as configured`)
    lines.push(`${c.what} -> ${res.status}`)
  }
  return lines
}

/** USER_HZ: 100 on Linux for every architecture we run on (getconf CLK_TCK). */
const CLOCK_TICKS = 100

/**
 * CPU time of a process so far (utime + stime of all its threads, /proc/<pid>/stat), in ms.
 * Throughput on a shared machine swings with the neighbours; the CPU a subject spends per
 * request moves much less, so it is reported beside req/s.
 */
export function processCpuMs (pid: number | undefined): number | null {
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

/** Peak resident set size of a process so far (VmHWM), in bytes. */
export function peakRssBytes (pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? null : Number(m[1]) * 1024
  } catch {
    return null
  }
}

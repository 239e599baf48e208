// The load generator: wrk (closed loop, fixed connections), parsed into numbers. Falls back
// to autocannon only when it is already installed; the bench does not depend on it.
import { createHash } from 'node:crypto'
import { accessSync, constants, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { runCaptured } from './children.js'

export interface LoadSettings {
  threads: number
  connections: number
  durationSec: number
  /** Request headers every request carries (credentials for the auth subjects). */
  headers?: Readonly<Record<string, string>>
  /** Method of every request (default GET). */
  method?: string
  /** Body every request carries (the validator subject's JSON). */
  body?: string
}

/**
 * wrk sends a method and body only from a Lua script: one is written to the temp dir for
 * the run (its name from its content) and removed after. Undefined for plain GETs.
 */
function wrkScript(s: LoadSettings): { file: string; text: string } | undefined {
  if (s.method === undefined && s.body === undefined) return undefined
  // A Lua long string whose closing bracket does not occur in the body.
  let eq = ''
  while (s.body?.includes(`]${eq}]`) === true) eq += '='
  const lines = [`wrk.method = ${JSON.stringify(s.method ?? 'GET')}`]
  // A long string drops a newline right after its opening bracket; the body starts on the next line.
  if (s.body !== undefined) lines.push(`wrk.body = [${eq}[\n${s.body}]${eq}]`)
  const text = lines.join('\n') + '\n'
  const file = path.join(tmpdir(), `tollgate-bench-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.lua`)
  return { file, text }
}

/** `-H 'name: value'` pairs for wrk. */
function headerArgs(s: LoadSettings): string[] {
  return Object.entries(s.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`])
}

export interface LoadResult {
  requestsPerSec: number
  requests: number
  seconds: number
  latencyMs: {
    avg: number | null
    p50: number
    p75: number | null
    p90: number | null
    p99: number
    max: number | null
  }
  socketErrors: { connect: number; read: number; write: number; timeout: number }
  non2xx: number
  /** The tool's own output, kept for the results file. */
  raw: string
}

export interface LoadTool {
  name: 'wrk' | 'autocannon'
  path: string
  version: string
  /** The command line a run uses (for the results file). */
  commandFor(url: string, settings: LoadSettings): string[]
  run(url: string, settings: LoadSettings): Promise<LoadResult>
}

/** How long past its own duration a load run may take before it is stopped. */
const OVERRUN_MS = 30_000

function which(command: string, firstDirs: readonly string[] = []): string | undefined {
  const dirs = [...firstDirs, ...(process.env.PATH ?? '').split(path.delimiter)]
  for (const dir of dirs) {
    if (dir === '') continue
    const candidate = path.join(dir, command)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/** wrk prints times as 1.23us / 4.56ms / 1.20s / 2.00m / 1.00h. */
export function parseWrkTime(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim())
  if (m === null) throw new Error(`cannot read wrk time "${text}"`)
  const factor = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[m[2] as 'us' | 'ms' | 's' | 'm' | 'h']
  return Number(m[1]) * factor
}

/** Parse the output of `wrk --latency` (no Lua script). */
export function parseWrk(out: string): LoadResult {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out)
    if (m === null) throw new Error(`wrk output has no ${what}:\n${out}`)
    return m
  }
  const pct = (p: string): number | null => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)\\s*$`, 'm').exec(out)
    return m === null ? null : parseWrkTime(m[1]!)
  }
  const latencyLine = /^\s+Latency\s+(\S+)\s+\S+\s+(\S+)/m.exec(out)
  const total = need(/(\d+) requests in ([\d.]+\w+),/, 'request count')
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const p50 = pct('50')
  const p99 = pct('99')
  if (p50 === null || p99 === null) throw new Error(`wrk output has no latency distribution (--latency):\n${out}`)
  return {
    requestsPerSec: Number(need(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')[1]),
    requests: Number(total[1]),
    seconds: parseWrkTime(total[2]!) / 1000,
    latencyMs: {
      avg: latencyLine === null ? null : parseWrkTime(latencyLine[1]!),
      p50,
      p75: pct('75'),
      p90: pct('90'),
      p99,
      max: latencyLine === null ? null : parseWrkTime(latencyLine[2]!),
    },
    socketErrors: {
      connect: Number(errors?.[1] ?? 0),
      read: Number(errors?.[2] ?? 0),
      write: Number(errors?.[3] ?? 0),
      timeout: Number(errors?.[4] ?? 0),
    },
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    raw: out,
  }
}

async function wrkTool(bin: string): Promise<LoadTool> {
  // `wrk --version` prints its banner and exits 1.
  const v = await runCaptured(bin, ['--version'], 5_000)
  const version = (v.stdout + v.stderr).split('\n')[0]?.trim() ?? 'unknown'
  const commandFor = (url: string, s: LoadSettings): string[] => {
    const script = wrkScript(s)
    return [bin, '-t', String(s.threads), '-c', String(s.connections), '-d', `${s.durationSec}s`, ...headerArgs(s),
      ...(script === undefined ? [] : ['-s', script.file]), '--timeout', '10s', '--latency', url]
  }
  return {
    name: 'wrk',
    path: bin,
    version,
    commandFor,
    async run(url, s) {
      const [cmd, ...args] = commandFor(url, s)
      const script = wrkScript(s)
      if (script !== undefined) writeFileSync(script.file, script.text)
      const r = await runCaptured(cmd!, args, s.durationSec * 1000 + OVERRUN_MS)
        .finally(() => { if (script !== undefined) rmSync(script.file, { force: true }) })
      if (r.timedOut) throw new Error(`wrk ran past ${s.durationSec}s + ${OVERRUN_MS / 1000}s and was stopped`)
      if (r.code !== 0) throw new Error(`wrk failed (${r.signal ?? `code ${r.code}`}): ${r.stderr || r.stdout}`)
      return parseWrk(r.stdout)
    },
  }
}

// The fallback where wrk is not installed: autocannon, a devDependency (closed loop only;
// its default mode is not free of coordinated omission, so the open loop is always
// bench/open-loop.ts).
interface AutocannonJson {
  requests: { average: number; total: number }
  latency: { average: number; p50: number; p75?: number; p90: number; p99: number; max: number }
  duration: number
  errors: number
  timeouts: number
  non2xx: number
}

function autocannonTool(bin: string, version: string): LoadTool {
  const commandFor = (url: string, s: LoadSettings): string[] =>
    [bin, '-c', String(s.connections), '-d', String(s.durationSec), '-t', '10', ...headerArgs(s),
      ...(s.method === undefined ? [] : ['-m', s.method]), ...(s.body === undefined ? [] : ['-b', s.body]), '--json', url]
  return {
    name: 'autocannon',
    path: bin,
    version,
    commandFor,
    async run(url, s) {
      const [cmd, ...args] = commandFor(url, s)
      const r = await runCaptured(cmd!, args, s.durationSec * 1000 + OVERRUN_MS)
      if (r.timedOut) throw new Error(`autocannon ran past ${s.durationSec}s + ${OVERRUN_MS / 1000}s and was stopped`)
      if (r.code !== 0) throw new Error(`autocannon failed (${r.signal ?? `code ${r.code}`}): ${r.stderr}`)
      const j = JSON.parse(r.stdout) as AutocannonJson
      return {
        requestsPerSec: j.requests.average,
        requests: j.requests.total,
        seconds: j.duration,
        latencyMs: {
          avg: j.latency.average,
          p50: j.latency.p50,
          p75: j.latency.p75 ?? null,
          p90: j.latency.p90,
          p99: j.latency.p99,
          max: j.latency.max,
        },
        socketErrors: { connect: 0, read: j.errors - j.timeouts, write: 0, timeout: j.timeouts },
        non2xx: j.non2xx,
        raw: r.stdout,
      }
    },
  }
}

/** wrk if it is on PATH; else autocannon if it is installed (project or PATH); else nothing. */
export async function findLoadTool(projectRoot: string): Promise<LoadTool | undefined> {
  // TOLLGATE_BENCH_LOAD=autocannon: use the fallback even where wrk is installed (to try it).
  const wrk = process.env.TOLLGATE_BENCH_LOAD === 'autocannon' ? undefined : which('wrk')
  if (wrk !== undefined) return wrkTool(wrk)
  const autocannon = which('autocannon', [path.join(projectRoot, 'node_modules', '.bin')])
  if (autocannon !== undefined) {
    let version = 'unknown'
    try {
      version = (JSON.parse(readFileSync(path.join(projectRoot, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version
    } catch {
      // on PATH, not in the project
    }
    return autocannonTool(autocannon, `autocannon ${version}`)
  }
  return undefined
}

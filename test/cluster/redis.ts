import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { deadPort, startGateway, startUpstream } from '../helpers/gateway.js'
import type { RunningGateway } from '../helpers/gateway.js'

interface Tap {
  teardown: (fn: () => void | Promise<void>) => void
  testdir: (fixture?: Record<string, string>) => string
}

export interface RunningRedis {
  port: number
  url: string
  pid: () => number
  /** SIGKILL by PID and wait for the exit (Redis gone mid-test). */
  kill: () => Promise<void>
  /** Start again on the same port (empty: no persistence). */
  restart: () => Promise<void>
}

/**
 * A real redis-server (or sentinel) process on loopback, no persistence, stopped by PID at
 * teardown. `args(port)` are its arguments; it is ready when its log prints `ready`.
 */
export async function startRedisProcess (t: Tap, args: (port: number) => string[], opts: { ready?: string, cwd?: string, port?: number } = {}): Promise<RunningRedis> {
  const port = opts.port ?? await deadPort()
  const ready = opts.ready ?? 'Ready to accept connections'
  let proc: ChildProcess | undefined
  const launch = async (): Promise<void> => {
    const p = spawn('redis-server', args(port), { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd })
    proc = p
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 15_000)
      p.stdout?.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes(ready)) { clearTimeout(timer); resolve() }
      })
      p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited ${String(code)}: ${out}`)) })
    })
  }
  const stop = async (): Promise<void> => {
    const p = proc
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return
    const exited = new Promise((resolve) => p.once('exit', resolve))
    process.kill(p.pid as number, 'SIGKILL')
    await exited
  }
  t.teardown(stop)
  await launch()
  return { port, url: `redis://127.0.0.1:${port}`, pid: () => proc?.pid ?? 0, kill: stop, restart: launch }
}

/** The arguments every test redis-server gets: loopback only, no persistence. */
export const NO_PERSISTENCE = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes']

/** A real redis-server on a free loopback port, no persistence; stopped by PID at teardown. */
export async function startRedis (t: Tap): Promise<RunningRedis> {
  return await startRedisProcess(t, (port) => ['--port', String(port), ...NO_PERSISTENCE])
}

/** A temp dir of its own (several gateways in one test each need one); removed at teardown. */
export function tempDir (t: Tap, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-cluster-'))
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A gateway from a config written to `dir`, optionally with env (the fake clock offset). */
export async function startInDir (t: Tap, dir: string, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<RunningGateway & { dir: string, file: string, admin: string | undefined, clockOffset: number }> {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'gateway.json')
  writeFileSync(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, workers: 2, ...config }, null, 2))
  const saved: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(env)) { saved[k] = process.env[k]; process.env[k] = v }
  try {
    const g = await startGateway(t, { args: ['--config', file], startTimeoutMs: 90_000 })
    const listening = await g.waitFor((l) => l.msg === 'listening')
    // pino stamps lines with Date.now(): how far this process's clock is from ours (less the
    // time the line took to arrive).
    const clockOffset = Date.parse(String(listening.time)) - Date.now()
    const admin = listening.admin as { port?: number } | undefined
    return Object.assign(g, { dir, file, clockOffset, admin: admin?.port === undefined ? undefined : `http://127.0.0.1:${admin.port}` })
  } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v }
  }
}

/** Wait for `cluster: Redis connected` (the acceptor's connection), so a test starts from a known state. */
export async function clusterReady (g: RunningGateway): Promise<void> {
  await g.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('cluster: Redis connected'), 20_000)
}

/** GET, returning the status, the problem code (if any) and headers. */
export async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, code: string | undefined, headers: Record<string, unknown> }> {
  const res = await request(url, { headers, headersTimeout: 20_000, bodyTimeout: 20_000 })
  const text = await res.body.text()
  let code: string | undefined
  if (res.statusCode >= 400) { try { code = (JSON.parse(text) as { code?: string }).code } catch {} }
  return { status: res.statusCode, code, headers: res.headers as Record<string, unknown> }
}

/**
 * `total` requests, `concurrency` at a time, round-robin over `urls`: the count of each
 * status (and of problem codes).
 */
export async function spread (urls: string[], total: number, concurrency: number, headers: Record<string, string> = {}): Promise<{ byStatus: Record<number, number>, byCode: Record<string, number> }> {
  const byStatus: Record<number, number> = {}
  const byCode: Record<string, number> = {}
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++
      let r: Awaited<ReturnType<typeof get>>
      try {
        r = await get(urls[i % urls.length] as string, headers)
      } catch (err) {
        // A transport error is counted (as status 0, by its code), not thrown: the test says
        // what it expects of the whole run.
        const code = (err as { code?: string }).code ?? 'ERROR'
        r = { status: 0, code, headers: {} }
      }
      byStatus[r.status] = (byStatus[r.status] ?? 0) + 1
      if (r.code !== undefined) byCode[r.code] = (byCode[r.code] ?? 0) + 1
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker))
  return { byStatus, byCode }
}

/** Poll `check` until it is true or `ms` pass; resolves with the ms it took, or rejects. */
export async function eventually (check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = performance.now()
  while (performance.now() - start < ms) {
    if (await check()) return performance.now() - start
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`not within ${ms} ms: ${what}`)
}

/**
 * The fleet-wide auto-block fixture: an upstream that answers 401 on /bad (each such
 * request a threat-guard strike) and 200 elsewhere, and the config of one instance in front
 * of it, by instance id (threat-guard: 3 strikes in an hour block the client for an hour).
 */
export async function guardedFleet (t: Tap, redisUrl: string): Promise<(id: string) => Record<string, unknown>> {
  const up = await startUpstream(t, (req, res) => {
    res.writeHead(req.url === '/bad' ? 401 : 200, { 'content-type': 'text/plain' })
    res.end('ok')
  })
  return (id) => ({
    workers: 1,
    admin: { port: 0 },
    cluster: { redis: redisUrl, instanceId: id },
    plugins: [{ name: 'threat-guard', config: { threshold: 3, window: '1h', blockFor: '1h' } }],
    routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }]
  })
}

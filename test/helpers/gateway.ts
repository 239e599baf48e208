import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The tollgate binary, as users run it (the test suite runs `npm run build` first). */
export const BIN = fileURLToPath(new URL('../../bin/tollgate.js', import.meta.url))
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))

interface Tap {
  teardown: (fn: () => void | Promise<void>) => void
  testdir: (fixture?: Record<string, string>) => string
}

export interface LogLine { msg?: string, level?: number, [k: string]: unknown }

export interface RunningGateway {
  port: number
  url: string
  proc: ChildProcess
  lines: LogLine[]
  stderr: () => string
  /** Send a signal and wait for the exit. */
  stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Wait until a log line matches. */
  waitFor: (pred: (l: LogLine) => boolean, ms?: number) => Promise<LogLine>
}

/** Run the CLI to completion: exit code, stdout, stderr. */
export function runCli (args: string[], opts: { cwd?: string, timeoutMs?: number } = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`tollgate ${args.join(' ')} did not exit; stderr: ${stderr}`)) }, opts.timeoutMs ?? 20_000)
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

/**
 * Start the gateway as its own process (real threads, real sockets) on a free loopback port.
 * `config` is written to a temp dir as JSON; `args` are passed as is. Stopped by PID at the
 * end of the test whatever happens.
 */
export async function startGateway (t: Tap, opts: { config?: Record<string, unknown>, args?: string[], files?: Record<string, string>, startTimeoutMs?: number }): Promise<RunningGateway> {
  let args = opts.args ?? []
  if (opts.config !== undefined) {
    const dir = t.testdir(opts.files ?? {})
    const file = join(dir, 'gateway.json')
    const cfg = { listen: { host: '127.0.0.1', port: 0 }, workers: 2, ...opts.config }
    writeFileSync(file, JSON.stringify(cfg, null, 2))
    args = ['--config', file, ...args]
  }
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: LogLine[] = []
  let stderr = ''
  let exited: { code: number | null, signal: NodeJS.Signals | null } | undefined
  const exitP = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => { exited = { code, signal }; resolve(exited) })
  })
  const waiters: Array<{ pred: (l: LogLine) => boolean, resolve: (l: LogLine) => void }> = []
  let buf = ''
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    let nl: number
    while ((nl = buf.indexOf('\n')) !== -1) {
      const text = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      let line: LogLine
      try { line = JSON.parse(text) as LogLine } catch { line = { msg: text } }
      lines.push(line)
      for (const w of [...waiters]) if (w.pred(line)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(line) }
    }
  })
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  t.teardown(async () => {
    if (exited === undefined) {
      proc.kill('SIGKILL')
      await exitP
    }
  })

  const waitFor = (pred: (l: LogLine) => boolean, ms = 45_000): Promise<LogLine> => {
    const found = lines.find(pred)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line in ${ms} ms; stderr: ${stderr}; lines: ${JSON.stringify(lines.slice(-5))}`)), ms)
      waiters.push({ pred, resolve: (l) => { clearTimeout(timer); resolve(l) } })
      void exitP.then(() => { clearTimeout(timer); reject(new Error(`gateway exited (${JSON.stringify(exited)}); stderr: ${stderr}`)) })
    })
  }
  // Generous by default: on a loaded 2-core machine a 2-worker start has been seen to take over 11 s.
  const listening = await waitFor((l) => l.msg === 'listening', opts.startTimeoutMs ?? 45_000)
  const port = listening.port as number
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    lines,
    stderr: () => stderr,
    waitFor,
    async stop (signal = 'SIGTERM') {
      if (exited !== undefined) return exited
      proc.kill(signal)
      return await exitP
    }
  }
}

export interface SeenRequest { method: string, url: string, headers: IncomingMessage['headers'], rawHeaders: string[], body: Buffer }

export interface Upstream {
  port: number
  url: string
  server: Server
  seen: SeenRequest[]
}

/**
 * A real HTTP upstream on 127.0.0.1. By default it reads the whole body and answers JSON:
 * method, url, headers, body length and SHA-256, so tests can check what arrived.
 */
export async function startUpstream (t: Tap, handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): Promise<Upstream> {
  const seen: SeenRequest[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body })
      if (handler !== undefined) return handler(req, res, body)
      const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, length: body.length, sha256: createHash('sha256').update(body).digest('hex') })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) })
      res.end(out)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const port = (server.address() as AddressInfo).port
  return { port, url: `http://127.0.0.1:${port}`, server, seen }
}

/** Send raw bytes over TCP and collect everything until the server closes or `ms` pass. */
export function rawRequest (port: number, bytes: string | Buffer, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let out = ''
    const timer = setTimeout(() => { s.destroy(); resolve(out) }, ms)
    s.on('data', (d: Buffer) => { out += d.toString('latin1') })
    s.on('error', (e) => { clearTimeout(timer); if (out === '') reject(e); else resolve(out) })
    s.on('close', () => { clearTimeout(timer); resolve(out) })
    s.write(bytes)
  })
}

/** A port nothing listens on (bound, read, closed). */
export async function deadPort (): Promise<number> {
  // Below Linux's ephemeral range (32768-60999): every test server listens on port 0 and is
  // given a port from that range, so a port taken here is never handed to one of them while
  // a test counts on it being refused (it once went to a test's never-accepting listener,
  // turning a refusal into a connect timeout). Checked free, then released.
  for (let attempt = 0; ; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    const s = createServer()
    const free = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false))
      s.listen(port, '127.0.0.1', () => resolve(true))
    })
    if (free) {
      await new Promise<void>((resolve) => s.close(() => resolve()))
      return port
    }
    if (attempt > 50) throw new Error('no free port below the ephemeral range')
  }
}

// Child processes of the bench runner: every process the bench starts goes through here,
// is tracked by PID, and is stopped by PID (SIGTERM, then SIGKILL after a grace period).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { connect, createServer, type AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'

const GRACE_MS = 5_000
const TAIL_LINES = 30

const live = new Set<ChildProcess>()
let closed = false

function track(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  if (closed) throw new Error('bench is stopping: not starting more processes')
  const child = spawn(command, args, options)
  live.add(child)
  child.once('exit', () => live.delete(child))
  child.once('error', () => live.delete(child))
  return child
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || hasExited(child)) return
  try {
    process.kill(child.pid, sig)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
  }
}

function within(promise: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    void promise.then(() => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

/** SIGTERM by PID; SIGKILL if it has not exited after `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = GRACE_MS): Promise<void> {
  if (child.pid === undefined) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  if (hasExited(child)) return
  signal(child, 'SIGTERM')
  if (await within(exited, graceMs)) return
  signal(child, 'SIGKILL')
  await within(exited, graceMs)
}

/** Stop every live child and refuse to start new ones. */
export async function stopAll(): Promise<void> {
  closed = true
  await Promise.all([...live].map((child) => stopProcess(child)))
}

/** Last resort, synchronous (for process 'exit'): SIGKILL whatever is still alive. */
export function killAllNow(): void {
  closed = true
  for (const child of live) signal(child, 'SIGKILL')
}

/** Reads a port out of one stdout line, or returns undefined. */
export type PortMatcher = (line: string) => number | undefined

export interface ServerSpec {
  name: string
  command: string
  args: string[]
  cwd?: string
  /** Which stdout line announces the port; or, for a server that announces nothing
   *  (HAProxy), the port it was told to bind, polled until it accepts a connection. */
  ready: PortMatcher | { tcpPort: number }
  startTimeoutMs: number
}

export interface RunningServer {
  readonly pid: number
  readonly port: number
  readonly commandLine: string
  /** The last lines the process wrote (stdout and stderr), for error reports. */
  tail(): string
  /** False once the process has exited. */
  alive(): boolean
  stop(): Promise<void>
}

export function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
}

/**
 * Start a server process and wait for the stdout line that announces its port. Its
 * output keeps being read (and dropped, but for a short tail) so that it never blocks on
 * a full pipe.
 */
export function startServer(spec: ServerSpec): Promise<RunningServer> {
  const cmd = commandLine(spec.command, spec.args)
  const child = track(spec.command, spec.args, {
    cwd: spec.cwd,
    env: { ...process.env, TOLLGATE_BENCH_CHILD: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const keep = (line: string): void => {
    lines.push(line.length > 500 ? `${line.slice(0, 500)}...` : line)
    if (lines.length > TAIL_LINES) lines.shift()
  }
  const tail = (): string => lines.join('\n')

  return new Promise<RunningServer>((resolve, reject) => {
    let settled = false
    const fail = (reason: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const out = tail()
      void stopProcess(child).finally(() => reject(new Error(out ? `${reason}; last output:\n${out}` : reason)))
    }
    const timer = setTimeout(
      () => fail(`${spec.name} did not announce its port within ${spec.startTimeoutMs} ms`),
      spec.startTimeoutMs,
    )
    child.once('error', (err) => fail(`${spec.name} could not start: ${err.message}`))
    child.once('exit', (code, sig) =>
      fail(`${spec.name} exited (${sig ?? `code ${code}`}) before announcing its port`))
    const ready = (port: number): void => {
      settled = true
      clearTimeout(timer)
      resolve({
        pid: child.pid!,
        port,
        commandLine: cmd,
        tail,
        alive: () => !hasExited(child),
        stop: () => stopProcess(child),
      })
    }
    createInterface({ input: child.stderr! }).on('line', keep)
    const matcher = spec.ready
    if (typeof matcher === 'function') {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        keep(line)
        if (settled) return
        const port = matcher(line)
        if (port !== undefined) ready(port)
      })
    } else {
      createInterface({ input: child.stdout! }).on('line', keep)
      const poll = (): void => {
        if (settled) return
        const socket = connect({ host: '127.0.0.1', port: matcher.tcpPort })
        socket.once('connect', () => { socket.destroy(); if (!settled) ready(matcher.tcpPort) })
        socket.once('error', () => { socket.destroy(); setTimeout(poll, 50) })
      }
      poll()
    }
  })
}

/** A port free on 127.0.0.1 now (for a server that cannot bind port 0 and tell us). */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

export interface Captured {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
}

/** Run a command to completion, capturing its output; stopped if it runs past `timeoutMs`. */
export function runCaptured(command: string, args: readonly string[], timeoutMs: number): Promise<Captured> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess
    try {
      child = track(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (err) {
      reject(err)
      return
    }
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const timer = setTimeout(() => {
      timedOut = true
      void stopProcess(child)
    }, timeoutMs)
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.once('close', (code, sig) => {
      clearTimeout(timer)
      resolve({ code, signal: sig, stdout, stderr, timedOut })
    })
  })
}

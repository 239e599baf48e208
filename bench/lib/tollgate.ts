// Start tollgate as a bench subject: one worker (unless told otherwise), a config (and any files it names) written
// to a temp dir that is removed when the subject stops.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from './children.js'
import { tollgateListening } from './ready.js'
import type { ControlRequest, RunningSubject, SubjectContext } from './subject.js'

export interface RunningTollgate {
  port: number
  pid: number
  commandLine: string
  alive: () => boolean
  stop: () => Promise<void>
}

export async function startTollgateWithConfig (root: string, name: string, opts: {
  config: Record<string, unknown>
  /** Other files for the temp dir (file name -> text), e.g. a CIDR list the config names. */
  files?: Record<string, string>
  startTimeoutMs?: number
  /** Worker threads (default 1). */
  workers?: number
  /** Also run on stop (a helper server the subject started). */
  alsoStop?: () => Promise<void>
}): Promise<RunningTollgate> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-'))
  try {
    for (const [f, text] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, f), text)
    const file = join(dir, 'gateway.json')
    writeFileSync(file, JSON.stringify(opts.config))
    const s = await startServer({
      name,
      command: process.execPath,
      args: [`${root}/bin/tollgate.js`, '--config', file, '--host', '127.0.0.1', '--port', '0', '--workers', String(opts.workers ?? 1), '--log-level', 'warn'],
      cwd: root,
      ready: tollgateListening,
      startTimeoutMs: opts.startTimeoutMs ?? 30_000,
    })
    return {
      port: s.port,
      pid: s.pid,
      commandLine: s.commandLine,
      alive: s.alive,
      async stop () {
        await s.stop()
        await opts.alsoStop?.()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/**
 * tollgate with one route ('/' to the shared upstream) holding `plugins`, as a subject.
 * `opts.request` says how every request is made (credential headers, a POST body).
 */
export async function tollgateSubject (ctx: SubjectContext, name: string, plugins: unknown[], opts: {
  files?: Record<string, string>
  workers?: number
  startTimeoutMs?: number
  alsoStop?: () => Promise<void>
  /** Top-level config besides `routes` (consumers ...). */
  extra?: Record<string, unknown>
  request?: Pick<RunningSubject, 'headers' | 'method' | 'body'>
  controls?: ControlRequest[]
  expectHeaders?: string[]
} = {}): Promise<RunningSubject> {
  const config = { ...opts.extra, routes: [{ name: 'all', match: { path: '/' }, upstream: ctx.upstreamUrl, plugins }] }
  const s = await startTollgateWithConfig(ctx.root, name, { config, files: opts.files, workers: opts.workers, startTimeoutMs: opts.startTimeoutMs, alsoStop: opts.alsoStop })
  return {
    url: `http://127.0.0.1:${s.port}/`,
    ...opts.request,
    pid: s.pid,
    commandLine: s.commandLine,
    controls: opts.controls,
    expectHeaders: opts.expectHeaders,
    alive: s.alive,
    stop: s.stop
  }
}

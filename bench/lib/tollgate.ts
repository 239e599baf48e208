// Start tollgate as a bench subject: one worker, a config (and any files it names) written
// to a temp dir that is removed when the subject stops.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from './children.js'
import { tollgateListening } from './ready.js'

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
      args: [`${root}/bin/tollgate.js`, '--config', file, '--host', '127.0.0.1', '--port', '0', '--workers', '1', '--log-level', 'warn'],
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

import { once } from 'node:events'
import { chmod, open } from 'node:fs/promises'
import { pino } from 'pino'
import type { DestinationStream, Logger } from 'pino'
import { codes } from '../errors.js'
import { flushDestination } from '../flush.js'
import type { Actor, ChangeSummary } from './types.js'

export interface AuditEntry {
  /** Admin token name, or 'file', 'signal', 'startup', 'cli'. */
  actor: Actor
  action: 'apply' | 'patch' | 'rollback' | 'validate' | 'startup'
  result: 'applied' | 'refused' | 'failed'
  versionBefore?: number
  versionAfter?: number
  generation?: number
  /** Names only (src/control/diff.ts summarize), never config values. */
  summary?: ChangeSummary
  reason?: string
  problems?: string[]
}

/** How much of the file's end entries() reads: the newest entries, without reading a huge file. */
const TAIL_BYTES = 1024 * 1024

/** The parts of SonicBoom this file relies on, beyond pino's DestinationStream. */
type Boom = DestinationStream & {
  fd: number
  _writing?: boolean
  destroyed?: boolean
  end: () => void
  on: (ev: string, fn: (...args: unknown[]) => void) => unknown
  once: (ev: string, fn: (...args: unknown[]) => void) => unknown
  emit: (ev: string) => boolean
  off: (ev: string, fn: (...args: unknown[]) => void) => unknown
}

/**
 * The audit log: one JSON line per policy update (who, when, what changed, the versions
 * before and after, and whether it was applied, refused and why, or failed), in a file of its
 * own, apart from the gateway's log. Writes are asynchronous (an update never waits on the
 * disk); close() writes out every line before it resolves.
 *
 * Callers pass summaries and reasons only, never configs: a summary holds names, not values.
 * The file is 0600 all the same.
 */
export class AuditLog {
  readonly file: string
  readonly #log: Logger
  readonly #dest: Boom
  #closed: Promise<void> | undefined
  #error: Error | undefined
  #failed = false

  private constructor (file: string) {
    this.file = file
    this.#dest = pino.destination({ dest: file, mkdir: true, sync: false, mode: 0o600 }) as unknown as Boom
    // An audit file that cannot be written must not take the gateway down (an 'error' event
    // without a listener would): the error is kept and reported by close().
    this.#dest.on('error', (err) => {
      this.#error = err as Error
      if (this.#dest.fd === -1) {
        // The file never opened: lines would only pile up in memory. And pino's exit hook
        // would flushSync a destination that is not open, which throws at exit; 'close' is
        // what unregisters it.
        this.#failed = true
        this.#dest.emit('close')
      }
    })
    // `mode` only applies when the file is created; an older file is tightened here.
    this.#dest.once('ready', () => { chmod(file, 0o600).catch(() => {}) })
    // `level` stays in each line: pino cannot drop it (a level formatter returning {} makes
    // the line start with `{,`). No pid/hostname: the file belongs to one gateway.
    this.#log = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, this.#dest)
  }

  /** Open (creating it and its directory if needed) the audit log at `file`, appending. */
  static open (file: string): AuditLog {
    return new AuditLog(file)
  }

  /** Append one entry: a JSON line with `time` (ISO) and the entry's fields. */
  record (entry: AuditEntry): void {
    if (this.#closed !== undefined) throw codes.GW_ERR_STATE(this.file, 'the audit log is closed')
    if (this.#failed) return
    // Fields picked one by one: whatever else the caller's object carries stays out.
    const { actor, action, result, versionBefore, versionAfter, generation, summary, reason, problems } = entry
    this.#log.info({ actor, action, result, versionBefore, versionAfter, generation, summary, reason, problems })
  }

  /**
   * The newest `limit` entries, newest first. Only the last MiB of the file is read, so a
   * long history costs the same as a short one; entries before that are not returned.
   */
  async entries (limit = 100): Promise<object[]> {
    if (!(limit > 0)) return []
    if (this.#closed === undefined) await this.#settle()
    let fh
    try {
      fh = await open(this.file, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    let text: string
    let cut: boolean
    try {
      const { size } = await fh.stat()
      const start = Math.max(0, size - TAIL_BYTES)
      const buf = Buffer.alloc(size - start)
      const { bytesRead } = await fh.read(buf, 0, buf.length, start)
      text = buf.subarray(0, bytesRead).toString('utf8')
      cut = start > 0
    } finally {
      await fh.close()
    }
    const lines = text.split('\n')
    // Reading from the middle of the file starts in the middle of a line.
    if (cut) lines.shift()
    const out: object[] = []
    for (let i = lines.length - 1; i >= 0 && out.length < limit; i--) {
      if (lines[i] === '') continue
      try {
        const v: unknown = JSON.parse(lines[i] as string)
        if (typeof v === 'object' && v !== null) out.push(v)
      } catch {
        // A line cut short (a crash mid-write, a full disk) is skipped, not fatal.
      }
    }
    return out
  }

  /**
   * Write out every recorded line and close the file. Resolves once the file is closed;
   * rejects if a write failed at any point.
   */
  async close (): Promise<void> {
    this.#closed ??= (async () => {
      let ready = false
      try {
        ready = await this.#settle()
      } catch (err) {
        this.#error ??= err as Error
        ready = this.#dest.fd !== -1 && this.#dest.destroyed !== true
      }
      if (ready) {
        const closed = once(this.#dest as unknown as NodeJS.EventEmitter, 'close')
        this.#dest.end()
        await closed
      }
      if (this.#error !== undefined) throw codes.GW_ERR_STATE(this.file, `the audit log could not be written: ${this.#error.message}`, { cause: this.#error })
    })()
    await this.#closed
  }

  /**
   * Everything recorded so far is in the file (flushDestination waits for the file to open
   * and for a write in flight, then writes the rest on the same tick, so lines stay in
   * order). False when the file never opened (the error is kept for close()).
   */
  async #settle (): Promise<boolean> {
    const d = this.#dest
    if (d.destroyed === true || (d.fd === -1 && this.#error !== undefined)) return false
    await flushDestination(d)
    return d.fd !== -1
  }
}

import { pino } from 'pino'
import type { DestinationStream, Logger } from 'pino'
import { flushDestination } from './flush.js'
import { LOG_MAX_WRITE } from './log-destination.js'

const destinations = new WeakMap<Logger, DestinationStream>()

/** Header and field paths never written to any log, whatever the plugin config says. */
export const ALWAYS_REDACTED = [
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["proxy-authorization"]',
  'req.headers["x-api-key"]', 'req.headers.apikey', 'res.headers["set-cookie"]'
]

/**
 * The gateway's own log: pino JSON on stdout through an asynchronous SonicBoom on fd 1, so
 * a slow terminal never blocks a request. Every thread makes its own; each write is whole
 * lines, and a line under PIPE_BUF is written atomically, so threads do not interleave.
 * `flush` before a thread exits, or the tail is lost.
 */
export function createLogger (level: string, bindings: Record<string, unknown> = {}): Logger {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 0, maxWrite: LOG_MAX_WRITE })
  const log = pino({
    level,
    base: { pid: process.pid, ...bindings },
    redact: { paths: ALWAYS_REDACTED, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime
  }, dest)
  destinations.set(log, dest)
  return log
}

/** Write out everything the logger holds (see flush.ts for why flush(cb) is not enough). */
export async function flushLogger (log: Logger): Promise<void> {
  const dest = destinations.get(log)
  if (dest !== undefined) await flushDestination(dest)
}

import type { DestinationStream } from 'pino'

type Boom = DestinationStream & {
  flushSync?: () => void
  on?: (ev: string, fn: () => void) => unknown
  off?: (ev: string, fn: () => void) => unknown
  fd?: number
  destroyed?: boolean
  /** SonicBoom's own flag: an asynchronous write is in flight. */
  _writing?: boolean
}

/** Resolve on the first of `events`, or after `ms` (a fallback, so a missed event cannot hang). */
function firstOf (d: Boom, events: string[], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      for (const ev of events) d.off?.(ev, done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    for (const ev of events) d.on?.(ev, done)
  })
}

/**
 * Push out everything a SonicBoom destination holds, and only then resolve. `flush(cb)`
 * is not enough: with `minLength: 0` it calls back at once, even while a write is still
 * in flight, and the thread may end with lines in the buffer. So: wait until the file is
 * open (a file destination opens asynchronously) and until no asynchronous write is in
 * flight (flushing beside one could also put newer lines before older ones), then write
 * the rest synchronously on the same tick, so no new write can start in between.
 */
export async function flushDestination (dest: DestinationStream): Promise<void> {
  const d = dest as Boom
  if (typeof d.flushSync !== 'function') return
  for (let i = 0; i < 500 && d.destroyed !== true && (d.fd === -1 || d._writing === true); i++) {
    await firstOf(d, d.fd === -1 ? ['ready', 'error'] : ['write', 'drain', 'error'], 10)
  }
  // Destroyed, or a file that never opened (its error is the owner's to report).
  if (d.destroyed === true || d.fd === -1) return
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      d.flushSync()
      return
    } catch (err) {
      // EAGAIN from a full pipe (stdout read slowly): wait a little and try again.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
}

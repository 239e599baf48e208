import type { DestinationStream } from 'pino'

type Boom = DestinationStream & { flushSync?: () => void, once?: (ev: string, fn: () => void) => void, fd?: number }

/**
 * Push out everything a SonicBoom destination holds, and only then resolve. `flush(cb)`
 * is not enough: with `minLength: 0` it calls back at once, even while a write is still
 * in flight, and the thread may end with lines in the buffer. So: wait until the file is
 * open (a file destination opens asynchronously), then write the rest synchronously.
 */
export async function flushDestination (dest: DestinationStream): Promise<void> {
  const d = dest as Boom
  if (typeof d.flushSync !== 'function') return
  if (d.fd === -1 && typeof d.once === 'function') await new Promise<void>((resolve) => d.once?.('ready', resolve))
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

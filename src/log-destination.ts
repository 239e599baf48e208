import { statSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { pino } from 'pino'
import type { DestinationStream } from 'pino'

/**
 * Bytes per write(2) to a pipe or terminal (stdout to a log collector): PIPE_BUF on Linux.
 * SonicBoom keeps its buffer as chunks of whole lines no longer than `maxWrite` and writes
 * one chunk per call, so with this bound every write is whole lines and at most PIPE_BUF
 * bytes: atomic on a pipe. That is what keeps the lines of several worker threads, each
 * with its own SonicBoom on the same fd, from interleaving. (A single line longer than this
 * is written alone and may interleave on a pipe.)
 */
export const LOG_MAX_WRITE = 4096

/**
 * Bytes buffered before a write is issued, and the longest a line waits for them (ms). One
 * asynchronous write per line costs a thread-pool round trip each; batching lines per
 * write(2) is what keeps the access log cheap under load. A quiet gateway's lines still
 * reach their destination within LOG_FLUSH_MS, and every line is flushed before a thread
 * exits (flush.ts).
 */
const PIPE_CHUNK = { minLength: 3584, maxWrite: LOG_MAX_WRITE }
/**
 * A regular file is opened O_APPEND, and Linux writes to a regular file under the inode's
 * lock: one write(2) lands whole, after every earlier one, whatever its size. So the
 * threads sharing a log file can write far larger batches than PIPE_BUF without
 * interleaving, and wake the thread pool 8x less often (measured: a 4 KiB batch is about
 * 12 access-log lines).
 */
const FILE_CHUNK = { minLength: 28 * 1024, maxWrite: 32 * 1024 }
const LOG_FLUSH_MS = 250

// One destination per target per worker thread, shared by every generation and by every
// logger that writes there (access log, security log): a reload must not reopen the file or
// lose buffered lines.
const destinations = new Map<string, DestinationStream>()

/**
 * `stdout`, `stderr` or a file path (relative to `configDir`; created with its directory if
 * missing; appended to). Asynchronous: a write never waits for the disk or the reader;
 * `flushDestination` (flush.ts) pushes the rest out before the thread exits.
 */
export function destinationFor (dest: string, configDir: string): DestinationStream {
  const key = dest === 'stdout' || dest === 'stderr' ? dest : (isAbsolute(dest) ? dest : resolve(configDir, dest))
  let d = destinations.get(key)
  if (d === undefined) {
    const fd = key === 'stdout' ? 1 : key === 'stderr' ? 2 : key
    const chunk = typeof fd === 'string' && isFileOrAbsent(fd) ? FILE_CHUNK : PIPE_CHUNK
    d = bufferedLines(pino.destination({ dest: fd, sync: false, mkdir: true, ...chunk, periodicFlush: LOG_FLUSH_MS, contentMode: 'buffer' } as Parameters<typeof pino.destination>[0]))
    destinations.set(key, d)
  }
  return d
}

/**
 * SonicBoom in its buffer mode, taking the strings pino and the access log write. In its
 * default (string) mode SonicBoom appends each line to the last pending chunk and measures
 * that whole chunk (Buffer.byteLength, which first flattens the concatenated string) on
 * every write: per line, work that grows with the chunk, up to `maxWrite` bytes (measured
 * in a running gateway with 32 KiB chunks: 6.7–7.7 µs per access-log line). In buffer mode
 * it keeps each chunk's length as a number and joins the lines once, when the chunk is
 * written: each line costs its own encoding only (2.8 µs, same measurement).
 */
function bufferedLines (boom: DestinationStream): DestinationStream {
  // The instance's own write (SonicBoom's writeBuffer), typed as what it is in this mode.
  const writeBuffer = boom.write.bind(boom) as unknown as (b: Buffer) => boolean
  const writeLine = (line: string | Buffer): boolean => writeBuffer(typeof line === 'string' ? Buffer.from(line) : line)
  boom.write = writeLine as unknown as DestinationStream['write']
  return boom
}

/** A path that is (or will be created as) a regular file, not a FIFO or a device. */
function isFileOrAbsent (path: string): boolean {
  try {
    return statSync(path).isFile()
  } catch {
    return true
  }
}

/** Every destination this thread opened (to flush at shutdown). */
export function openDestinations (): DestinationStream[] {
  return [...destinations.values()]
}

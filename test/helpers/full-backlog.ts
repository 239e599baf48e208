// A loopback target whose TCP connect never completes, for connect-timeout tests.
//
// A child process listens on 127.0.0.1 with a backlog of 1 and then blocks its event loop
// (Atomics.wait), so it never accepts. The test fills the accept queue with raw connections
// the kernel completes on its own; once the queue is full, Linux drops every further SYN
// (the client retransmits, and connect() hangs) rather than refusing it. No other address
// than 127.0.0.1 is involved. The child is stopped by PID, the fillers are destroyed.
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import type { Socket } from 'node:net'

interface Tap { teardown: (fn: () => void | Promise<void>) => void }

export interface FullBacklog { port: number, url: string, pid: number }

const CHILD = `
const s = require('node:net').createServer()
s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(s.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0))
})`

/** Whether a connect to `port` completes within `ms` (the socket is kept when it does). */
function tryConnect (port: number, ms: number, keep: Socket[]): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.on('error', () => {})
    const timer = setTimeout(() => { s.destroy(); resolve(false) }, ms)
    s.once('connect', () => { clearTimeout(timer); keep.push(s); resolve(true) })
  })
}

export async function startFullBacklog (t: Tap): Promise<FullBacklog> {
  const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'pipe', 'inherit'] })
  const pid = child.pid
  if (pid === undefined) throw new Error('the listener process did not start')
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const fillers: Socket[] = []
  t.teardown(async () => {
    for (const s of fillers) s.destroy()
    process.kill(pid, 'SIGKILL')
    await exited
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())))
    child.once('exit', (code) => reject(new Error(`the listener process exited (${String(code)})`)))
  })
  // Fill the queue: with backlog 1, Linux completes two connections; the third hangs. Bounded
  // in count; a connect that hangs for 1 s is taken as the proof the queue is full.
  for (let i = 0; i < 16; i++) {
    if (!await tryConnect(port, 1000, fillers)) return { port, url: `http://127.0.0.1:${port}`, pid }
  }
  throw new Error(`127.0.0.1:${port} kept accepting connections: its accept queue did not fill`)
}

// The upstream-balancing subjects of the bench (issue 9: balancing across 4 targets costs at
// most 3% of the single-target req/s). Each starts its own upstream process (the bench
// upstream, bench/upstream.ts) listening on 4 ports, and stops it with the subject:
//   tollgate-1-target     one of its ports, as a one-target `upstream: { targets }` block
//   tollgate-4-targets    its 4 ports as 4 targets, smooth weighted round-robin
//   tollgate-4-least      the same 4 targets, least-request (power of two choices)
// The same process serves every subject, so its cost per request is the same whether one
// target or four take the load: what differs is the gateway's balancing, its four
// connection pools and their sockets. (Four upstream processes would also measure four
// processes fighting the gateway for the machine's cores.) Compare the two 4-target subjects
// with tollgate-1-target run in the same sitting.
import { fileURLToPath } from 'node:url'
import { startServer } from './lib/children.js'
import { announcedPort } from './lib/ready.js'
import { startTollgateWithConfig } from './lib/tollgate.js'
import type { RunningSubject, Subject, SubjectContext } from './subjects.js'

const HOST = '127.0.0.1'
const LISTENERS = 4

/** The bench upstream on LISTENERS ports; resolves with the process and its ports. */
async function startUpstream (): Promise<{ ports: number[], stop: () => Promise<void> }> {
  let ports: number[] = []
  const server = await startServer({
    name: 'upstream-4-ports',
    command: process.execPath,
    args: [fileURLToPath(new URL('./upstream.js', import.meta.url)), '--host', HOST, '--port', '0', '--listeners', String(LISTENERS)],
    ready: (line) => {
      const port = announcedPort(line)
      if (port !== undefined) ports = (JSON.parse(line) as { ports: number[] }).ports
      return port
    },
    startTimeoutMs: 10_000
  })
  return { ports, stop: server.stop }
}

async function startTollgate (ctx: SubjectContext, name: string, targetCount: number, balance: string): Promise<RunningSubject> {
  const up = await startUpstream()
  try {
    const targets = up.ports.slice(0, targetCount).map((p) => `http://${HOST}:${p}`)
    const s = await startTollgateWithConfig(ctx.root, name, {
      config: { routes: [{ name: 'all', match: { path: '/' }, upstream: { targets, balance } }] },
      alsoStop: up.stop
    })
    return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: `${s.commandLine} (targets: ${targets.join(' ')}, ${balance})`, alive: s.alive, stop: s.stop }
  } catch (err) {
    await up.stop()
    throw err
  }
}

export const upstreamSubjects: readonly Subject[] = [
  { name: 'tollgate-1-target', description: 'tollgate, 1 worker, one target in an upstream block (an upstream process on 4 ports, one used)', start: async (ctx) => await startTollgate(ctx, 'tollgate-1-target', 1, 'round-robin') },
  { name: 'tollgate-4-targets', description: 'tollgate, 1 worker, 4 targets (the same upstream process\'s 4 ports), weighted round-robin', start: async (ctx) => await startTollgate(ctx, 'tollgate-4-targets', LISTENERS, 'round-robin') },
  { name: 'tollgate-4-least', description: 'tollgate, 1 worker, the same 4 targets, least-request (P2C)', start: async (ctx) => await startTollgate(ctx, 'tollgate-4-least', LISTENERS, 'least-request') }
]

/** Issue 9's target, as a fraction of `tollgate-1-target`'s req/s. */
export const balancingTargets: Readonly<Record<string, number>> = {
  'tollgate-4-targets': 0.97,
  'tollgate-4-least': 0.97
}

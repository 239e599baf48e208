// The upstream-balancing subjects of the bench (issue 9: balancing across 4 targets costs at
// most 3% of the single-target req/s). Each starts its own extra upstream processes (the
// same fast bench upstream, bench/upstream.ts) and stops them with the subject:
//   tollgate-1-target     the shared upstream, as a one-target `upstream: { targets }` block
//   tollgate-4-targets    the shared upstream + 3 more, smooth weighted round-robin
//   tollgate-4-least      the same 4 targets, least-request (power of two choices)
// Compare the two 4-target subjects with tollgate-1-target run in the same sitting.
import { fileURLToPath } from 'node:url'
import { startServer } from './lib/children.js'
import { announcedPort } from './lib/ready.js'
import { startTollgateWithConfig } from './lib/tollgate.js'
import type { RunningSubject, Subject, SubjectContext } from './subjects.js'

const HOST = '127.0.0.1'

/** One more bench upstream process (the same program as the shared one). */
function startUpstream (): ReturnType<typeof startServer> {
  return startServer({
    name: 'upstream-extra',
    command: process.execPath,
    args: [fileURLToPath(new URL('./upstream.js', import.meta.url)), '--host', HOST, '--port', '0'],
    ready: announcedPort,
    startTimeoutMs: 10_000
  })
}

async function startTollgate (ctx: SubjectContext, name: string, extra: number, balance: string): Promise<RunningSubject> {
  const others = await Promise.all(Array.from({ length: extra }, async () => await startUpstream()))
  const stopOthers = async (): Promise<void> => { await Promise.all(others.map(async (o) => await o.stop())) }
  try {
    const targets = [ctx.upstreamUrl, ...others.map((o) => `http://${HOST}:${o.port}`)]
    const s = await startTollgateWithConfig(ctx.root, name, {
      config: { routes: [{ name: 'all', match: { path: '/' }, upstream: { targets, balance } }] },
      alsoStop: stopOthers
    })
    return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: `${s.commandLine} (targets: ${targets.join(' ')}, ${balance})`, alive: s.alive, stop: s.stop }
  } catch (err) {
    await stopOthers()
    throw err
  }
}

export const upstreamSubjects: readonly Subject[] = [
  { name: 'tollgate-1-target', description: 'tollgate, 1 worker, one target in an upstream block', start: async (ctx) => await startTollgate(ctx, 'tollgate-1-target', 0, 'round-robin') },
  { name: 'tollgate-4-targets', description: 'tollgate, 1 worker, 4 upstream processes, weighted round-robin', start: async (ctx) => await startTollgate(ctx, 'tollgate-4-targets', 3, 'round-robin') },
  { name: 'tollgate-4-least', description: 'tollgate, 1 worker, 4 upstream processes, least-request (P2C)', start: async (ctx) => await startTollgate(ctx, 'tollgate-4-least', 3, 'least-request') }
]

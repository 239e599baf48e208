// The proxy-cache subjects of the bench (issue #9: "a cache hit is served at >= 2x the
// requests/s of a proxied request"). Both put proxy-cache on tollgate's only route; compare
// each with the `tollgate` subject (the same request proxied, no plugins) run in the same
// sitting. The bench upstream sends no Cache-Control, so the config's defaultTtl decides.
import { startTollgateWithConfig } from './lib/tollgate.js'
import type { RunningSubject, Subject, SubjectContext } from './subjects.js'

const HOST = '127.0.0.1'

async function start (ctx: SubjectContext, name: string, config: Record<string, unknown>): Promise<RunningSubject> {
  const route = { name: 'all', match: { path: '/' }, upstream: ctx.upstreamUrl, plugins: [{ name: 'proxy-cache', config }] }
  const s = await startTollgateWithConfig(ctx.root, name, { config: { routes: [route] } })
  return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
}

export const cacheSubjects: readonly Subject[] = [
  {
    name: 'tollgate-cache-hit',
    description: 'tollgate, 1 worker: proxy-cache, every request a hit (defaultTtl 1h)',
    start: async (ctx) => await start(ctx, 'tollgate-cache-hit', { defaultTtl: '1h' }),
  },
  {
    name: 'tollgate-cache-miss',
    description: 'tollgate, 1 worker: proxy-cache, nothing storable (defaultTtl 0): every request proxied and tapped',
    start: async (ctx) => await start(ctx, 'tollgate-cache-miss', {}),
  },
]

/** Issue #9's targets, as a multiple of the `tollgate` subject's req/s. */
export const cacheTargets: Readonly<Record<string, number>> = {
  'tollgate-cache-hit': 2.0,
  'tollgate-cache-miss': 0.95,
}

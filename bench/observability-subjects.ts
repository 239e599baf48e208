// The observability subjects of the bench (issue #7's cost target: access-log + metrics
// together cost at most 10% of tollgate's no-plugin requests/s). Compare
// `tollgate-log-metrics` (the pair) and `tollgate-observed` (also headers logged and
// trace propagation) with `tollgate-unobserved`, run in the same sitting:
//   npm run bench -- --only tollgate-unobserved,tollgate-log-metrics,tollgate-observed --rounds 9 --duration 3s
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTollgateWithConfig } from './lib/tollgate.js'
import type { RunningSubject, Subject, SubjectContext } from './subjects.js'

const HOST = '127.0.0.1'

async function start (ctx: SubjectContext, name: string, config: Record<string, unknown>): Promise<RunningSubject> {
  const s = await startTollgateWithConfig(ctx.root, name, { config: { ...config, routes: [{ name: 'all', match: { path: '/' }, upstream: ctx.upstreamUrl }] } })
  return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
}

export const observabilitySubjects: readonly Subject[] = [
  {
    name: 'tollgate-unobserved',
    description: 'tollgate, 1 worker, no plugins, metrics and trace propagation off: the floor',
    start: (ctx) => start(ctx, 'tollgate-unobserved', { metrics: { enabled: false }, tracing: { propagate: false } }),
  },
  {
    name: 'tollgate-log-metrics',
    description: 'tollgate, 1 worker: access-log (a JSON line per request to a file) and metrics, trace propagation off: what the issue prices',
    start: (ctx) => start(ctx, 'tollgate-log-metrics', {
      tracing: { propagate: false },
      plugins: [{ name: 'access-log', config: { destination: join(mkdtempSync(join(tmpdir(), 'tollgate-bench-log-')), 'access.log') } }],
    }),
  },
  {
    name: 'tollgate-observed',
    description: 'tollgate, 1 worker: access-log (a JSON line per request to a file, headers logged and redacted), metrics, W3C trace propagation',
    start: (ctx) => start(ctx, 'tollgate-observed', {
      plugins: [{ name: 'access-log', config: { destination: join(mkdtempSync(join(tmpdir(), 'tollgate-bench-log-')), 'access.log'), headers: ['user-agent', 'authorization'] } }],
    }),
  },
]

/** Issue #7's target, as a fraction of `tollgate-unobserved`'s req/s. */
export const observabilityTargets: Readonly<Record<string, number>> = {
  'tollgate-log-metrics': 0.9,
}

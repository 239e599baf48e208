// What the bench measures: one entry per subject, each started as its own process (the
// upstream is shared and started once by the runner). A new subject is a new entry here.
import { fileURLToPath } from 'node:url'
import { startServer } from './lib/children.js'
import { startTollgateWithConfig } from './lib/tollgate.js'
import { announcedPort, tollgateListening } from './lib/ready.js'
import { authSubjects } from './auth-subjects.js'
import { validateSubjects } from './validate-subjects.js'
import { tlsSubjects } from './tls-subjects.js'

export interface SubjectContext {
  /** Base URL of the shared upstream, e.g. http://127.0.0.1:41234 */
  upstreamUrl: string
  /** How the shared upstream was started. */
  upstreamCommandLine: string
  /** The repository root (holds bin/ and dist/). */
  root: string
}

export interface RunningSubject {
  url: string
  /** Headers every request to this subject carries (a credential). */
  headers?: Record<string, string>
  /** Method and body of every request, when not a plain GET (the validator's JSON POST). */
  method?: string
  body?: string
  /** The process serving the requests, for its CPU time per request. */
  pid?: number
  commandLine: string
  /** False once the subject's process has died. */
  alive(): boolean
  stop(): Promise<void>
}

export interface Subject {
  name: string
  description: string
  start(ctx: SubjectContext): Promise<RunningSubject>
}

const HOST = '127.0.0.1'
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))

const coreSubjects: readonly Subject[] = [
  {
    name: 'upstream',
    description: 'the upstream itself, no proxy: the ceiling',
    async start(ctx) {
      return { url: `${ctx.upstreamUrl}/`, commandLine: ctx.upstreamCommandLine, alive: () => true, stop: async () => {} }
    },
  },
  {
    name: 'bare-proxy',
    description: 'node:http + one undici Pool, streamed (bench/bare-proxy.ts): the floor',
    async start(ctx) {
      const s = await startServer({
        name: 'bare-proxy',
        command: process.execPath,
        args: [here('./bare-proxy.js'), ctx.upstreamUrl, '--host', HOST, '--port', '0'],
        ready: announcedPort,
        startTimeoutMs: 10_000,
      })
      return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
    },
  },
  {
    name: 'tollgate',
    description: 'tollgate, 1 worker, no plugins',
    async start(ctx) {
      const s = await startServer({
        name: 'tollgate',
        command: process.execPath,
        args: [
          `${ctx.root}/bin/tollgate.js`,
          '--upstream', ctx.upstreamUrl,
          '--host', HOST,
          '--port', '0',
          '--workers', '1',
          '--log-level', 'warn',
        ],
        cwd: ctx.root,
        ready: tollgateListening,
        startTimeoutMs: 20_000,
      })
      return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
    },
  },
  {
    name: 'tollgate-ip-rate',
    description: 'tollgate, 1 worker: ip-filter with 1,000,000 CIDRs + one rate-limit (checked, never hit)',
    async start(ctx) {
      const s = await startTollgateWithConfig(ctx.root, 'tollgate-ip-rate', { ...policyConfig(ctx.upstreamUrl), startTimeoutMs: 60_000 })
      return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
    },
  },
]

export const subjects: readonly Subject[] = [...coreSubjects, ...authSubjects, ...validateSubjects, ...tlsSubjects]

/**
 * A config with the policy set: a deny list of 1,000,000 distinct /32s and /24s (none
 * covers 127.0.0.0/8, so the bench's requests pass) and a rate limit far above the load.
 * Written once per run into a temp dir.
 */
function policyConfig (upstreamUrl: string): { config: Record<string, unknown>, files: Record<string, string> } {
  const lines: string[] = []
  for (let i = 0; i < 1_000_000; i++) {
    // 11.0.0.0 - 26.x.x.x: /32s for even i, /24s for odd i, all distinct.
    const a = 11 + (i >>> 16)
    lines.push(i % 2 === 0 ? `${a}.${(i >>> 8) & 255}.${i & 255}.1` : `${a + 16}.${(i >>> 8) & 255}.${i & 255}.0/24`)
  }
  const config = {
    routes: [{
      name: 'all',
      match: { path: '/' },
      upstream: upstreamUrl,
      plugins: [
        { name: 'ip-filter', config: { denyFile: 'deny.txt' } },
        { name: 'rate-limit', config: { limits: [{ limit: 1_000_000, window: '1s', algorithm: 'fixed-window' }] } },
      ],
    }],
  }
  return { config, files: { 'deny.txt': lines.join('\n') + '\n' } }
}

/** The shared upstream, started once per bench run. */
export function startUpstream(): ReturnType<typeof startServer> {
  return startServer({
    name: 'upstream',
    command: process.execPath,
    args: [here('./upstream.js'), '--host', HOST, '--port', '0'],
    ready: announcedPort,
    startTimeoutMs: 10_000,
  })
}

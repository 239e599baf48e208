// Scenario 1, the baselines: the upstream itself (the ceiling), a bare node:http + undici
// proxy (the floor every Node gateway stands on), and tollgate with no plugins; and
// tollgate-ip-rate, issue 3's policy pair (1,000,000 CIDRs + one rate limit).
import { fileURLToPath } from 'node:url'
import { startServer } from './lib/children.js'
import { announcedPort, tollgateListening } from './lib/ready.js'
import type { Subject, SubjectGroup } from './lib/subject.js'
import { tollgateSubject } from './lib/tollgate.js'

const HOST = '127.0.0.1'
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))

const coreSubjects: readonly Subject[] = [
  {
    name: 'upstream',
    description: 'the upstream itself, no proxy: the ceiling',
    default: true,
    async start (ctx) {
      return { url: `${ctx.upstreamUrl}/`, pid: ctx.upstreamPid, commandLine: ctx.upstreamCommandLine, alive: () => true, stop: async () => {} }
    }
  },
  {
    name: 'bare-proxy',
    description: 'node:http + one undici Pool, streamed (bench/bare-proxy.ts): the floor',
    default: true,
    async start (ctx) {
      const s = await startServer({
        name: 'bare-proxy',
        command: process.execPath,
        args: [here('./bare-proxy.js'), ctx.upstreamUrl, '--host', HOST, '--port', '0'],
        ready: announcedPort,
        startTimeoutMs: 10_000
      })
      return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
    }
  },
  {
    name: 'tollgate',
    description: 'tollgate, 1 worker, no plugins',
    default: true,
    async start (ctx) {
      const s = await startServer({
        name: 'tollgate',
        command: process.execPath,
        args: [`${ctx.root}/bin/tollgate.js`, '--upstream', ctx.upstreamUrl, '--host', HOST, '--port', '0', '--workers', '1', '--log-level', 'warn'],
        cwd: ctx.root,
        ready: tollgateListening,
        startTimeoutMs: 20_000
      })
      return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
    }
  },
  {
    name: 'tollgate-ip-rate',
    description: 'tollgate, 1 worker: ip-filter denying 1,000,000 CIDRs (not the client) + one rate-limit (checked, never hit)',
    async start (ctx) {
      const lines: string[] = []
      for (let i = 0; i < 1_000_000; i++) {
        // 11.0.0.0 - 42.x.x.x: /32s for even i, /24s for odd i, all distinct; none covers 127/8.
        const a = 11 + (i >>> 16)
        lines.push(i % 2 === 0 ? `${a}.${(i >>> 8) & 255}.${i & 255}.1` : `${a + 16}.${(i >>> 8) & 255}.${i & 255}.0/24`)
      }
      const plugins = [
        { name: 'ip-filter', config: { denyFile: 'deny.txt' } },
        { name: 'rate-limit', config: { limits: [{ limit: 1_000_000, window: '1s', algorithm: 'fixed-window' }] } }
      ]
      return await tollgateSubject(ctx, 'tollgate-ip-rate', plugins, {
        files: { 'deny.txt': lines.join('\n') + '\n' },
        startTimeoutMs: 60_000,
        expectHeaders: ['ratelimit-policy']
      })
    }
  }
]

export const coreGroup: SubjectGroup = { name: 'core', description: 'upstream direct, bare node:http + undici proxy, tollgate with no plugins', subjects: coreSubjects }

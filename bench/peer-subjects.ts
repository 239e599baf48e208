// Scenario 4, the peers, each started by the suite on 127.0.0.1 in front of the same
// upstream: @fastify/http-proxy and fast-gateway 3 (devDependencies, no policy: they have
// none built in), and HAProxy when it is on PATH, plain and with the policy set closest to
// full-policy (bench/peers/haproxy.ts). Compare `tollgate` with the plain ones and
// `full-policy` with `haproxy-policy`.
import { fileURLToPath } from 'node:url'
import { startServer } from './lib/children.js'
import { CONTROL_ADDRESS } from './lib/cidrs.js'
import { hs256Token } from './lib/jwt.js'
import { announcedPort } from './lib/ready.js'
import { SkipSubject, type RunningSubject, type Subject, type SubjectContext, type SubjectGroup } from './lib/subject.js'
import { findHaproxy, startHaproxy } from './peers/haproxy.js'
import { orderBody } from './validate-subjects.js'

const HOST = '127.0.0.1'
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))

function nodePeer (name: string, file: string, description: string): Subject {
  return {
    name,
    description,
    default: true,
    async start (ctx: SubjectContext): Promise<RunningSubject> {
      const s = await startServer({ name, command: process.execPath, args: [here(file), ctx.upstreamUrl, '--host', HOST, '--port', '0'], ready: announcedPort, startTimeoutMs: 20_000 })
      return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
    }
  }
}

function haproxyBin (): string {
  const h = findHaproxy()
  if (h === undefined) throw new SkipSubject('haproxy is not on PATH (apt-get install -y haproxy): skipped')
  return h.path
}

const peerSubjects: readonly Subject[] = [
  nodePeer('fastify-proxy', './peers/fastify-proxy.js', 'fastify + @fastify/http-proxy, no policy'),
  nodePeer('fast-gateway', './peers/fast-gateway.js', 'fast-gateway 3, one route, no middleware'),
  {
    name: 'haproxy',
    description: 'HAProxy, 1 thread, plain reverse proxy (skipped when haproxy is not on PATH)',
    default: true,
    async start (ctx) {
      const s = await startHaproxy(haproxyBin(), ctx.upstreamUrl)
      return { url: `http://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
    }
  },
  {
    name: 'haproxy-policy',
    description: 'HAProxy, 1 thread: IP allow-list ACL (100,000 CIDRs) + jwt_verify HS256 with exp/iss/aud + stick-table rate limit; the full-policy POST (not validated, not logged)',
    default: true,
    async start (ctx) {
      const bin = haproxyBin()
      const { secret, token } = await hs256Token()
      const s = await startHaproxy(bin, ctx.upstreamUrl, { secret })
      const authorization = `Bearer ${token}`
      const headers = { authorization, 'content-type': 'application/json' }
      return {
        url: `http://${HOST}:${s.port}/`,
        method: 'POST',
        body: orderBody(),
        headers,
        pid: s.pid,
        commandLine: s.commandLine,
        controls: [
          { what: 'no token', status: 401, method: 'POST', body: orderBody(), headers: { 'content-type': 'application/json' } },
          { what: 'a token signed with another secret', status: 401, method: 'POST', body: orderBody(), headers: { ...headers, authorization: `Bearer ${(await hs256Token()).token}` } },
          { what: `a client at ${CONTROL_ADDRESS}, not on the list`, status: 403, localAddress: CONTROL_ADDRESS, method: 'POST', body: orderBody(), headers }
        ],
        alive: s.alive,
        stop: s.stop
      }
    }
  }
]

export const peerGroup: SubjectGroup = { name: 'peers', description: '@fastify/http-proxy, fast-gateway 3, HAProxy (plain and with policies)', subjects: peerSubjects }

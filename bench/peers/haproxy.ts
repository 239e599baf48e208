// Peer: HAProxy (when `haproxy` is on PATH), plain or with the policy set closest to
// full-policy that it has: an IP allow-list ACL (the same 100,000 CIDRs), a stick-table
// rate limit by source (checked, never hit), and JWT checks (HS256 `jwt_verify` with the
// same secret, `exp`, `iss`, `aud`). It does not validate JSON bodies or write an access
// log here (it logs to syslog only), so full-policy does more per request than it does.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startServer } from '../lib/children.js'
import { allowList } from '../lib/cidrs.js'
import { JWT_AUDIENCE, JWT_ISSUER } from '../lib/jwt.js'

/** The path of haproxy and its version line, or undefined when it is not installed. */
export function findHaproxy (): { path: string, version: string } | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin'])) {
    if (dir === '') continue
    const bin = join(dir, 'haproxy')
    try {
      const out = execFileSync(bin, ['-v'], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 }).toString()
      return { path: bin, version: out.split('\n')[0]?.trim() ?? 'unknown' }
    } catch {
      // not here
    }
  }
  return undefined
}

function config (port: number, upstream: URL, policy: { secret: string } | undefined): string {
  const lines = [
    'global',
    '  nbthread 1', // one thread, as tollgate's one worker
    '  maxconn 4000', // within the usual 20000 open-file limit (HAProxy asks for about 2 per connection)
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout http-keep-alive 30s',
    'frontend bench',
    `  bind 127.0.0.1:${port}`
  ]
  if (policy !== undefined) {
    lines.push(
      '  acl allowed src -f allow.txt',
      '  http-request deny deny_status 403 unless allowed',
      '  http-request set-var(txn.bearer) http_auth_bearer',
      '  http-request deny deny_status 401 unless { var(txn.bearer) -m found }',
      "  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')",
      '  http-request deny deny_status 401 unless { var(txn.alg) -m str HS256 }',
      `  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"${policy.secret}") -m int 1 }`,
      "  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')",
      '  http-request set-var(txn.now) date()',
      '  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }',
      `  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('$.iss') -m str ${JWT_ISSUER} }`,
      `  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('$.aud') -m str ${JWT_AUDIENCE} }`,
      '  stick-table type ip size 100k expire 10s store http_req_rate(1s)',
      '  http-request track-sc0 src',
      '  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000 }'
    )
  }
  lines.push(
    '  default_backend upstream',
    'backend upstream',
    `  server up ${upstream.hostname}:${upstream.port}`
  )
  return lines.join('\n') + '\n'
}

export interface RunningHaproxy { port: number, pid: number, commandLine: string, alive: () => boolean, stop: () => Promise<void> }

export async function startHaproxy (bin: string, upstreamUrl: string, policy?: { secret: string }): Promise<RunningHaproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-haproxy-'))
  try {
    const port = await freePort()
    const file = join(dir, 'haproxy.cfg')
    writeFileSync(file, config(port, new URL(upstreamUrl), policy))
    if (policy !== undefined) writeFileSync(join(dir, 'allow.txt'), allowList())
    const s = await startServer({ name: 'haproxy', command: bin, args: ['-db', '-f', file], cwd: dir, ready: { tcpPort: port }, startTimeoutMs: 30_000 })
    return {
      port,
      pid: s.pid,
      commandLine: s.commandLine,
      alive: s.alive,
      async stop () {
        await s.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

// The TLS termination subject of the bench: tollgate with no plugins, as the `tollgate`
// subject, but its listener is HTTPS (TLS 1.3, an ECDSA P-256 certificate made for the run
// with the openssl CLI). wrk keeps its connections open, so this measures TLS with
// keep-alive: record encryption and decryption per request, handshakes only at the start.
// Compare with `tollgate` (issue 5's goal: at most 20% fewer requests/s).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTollgateWithConfig } from './lib/tollgate.js'
import type { RunningSubject, Subject, SubjectContext, SubjectGroup } from './subjects.js'

const HOST = '127.0.0.1'

/** A self-signed certificate for 127.0.0.1, valid for a day. */
function certificate (): { cert: string, key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-cert-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem',
      '-days', '1', '-subj', '/CN=bench.tollgate.test', '-addext', 'subjectAltName=DNS:bench.tollgate.test,IP:127.0.0.1'], { cwd: dir, stdio: 'ignore', timeout: 10_000 })
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function startTls (ctx: SubjectContext): Promise<RunningSubject> {
  const { cert, key } = certificate()
  const s = await startTollgateWithConfig(ctx.root, 'tollgate-tls', {
    config: {
      listen: { tls: { certificates: [{ cert: 'cert.pem', key: 'key.pem' }], watch: false } },
      routes: [{ name: 'all', match: { path: '/' }, upstream: ctx.upstreamUrl }]
    },
    files: { 'cert.pem': cert, 'key.pem': key }
  })
  return { url: `https://${HOST}:${s.port}/`, pid: s.pid, commandLine: s.commandLine, alive: s.alive, stop: s.stop }
}

export const tlsSubjects: readonly Subject[] = [
  {
    name: 'tollgate-tls',
    description: 'tollgate, 1 worker, no plugins, HTTPS listener (TLS 1.3, ECDSA P-256), keep-alive',
    start: startTls
  }
]

export const tlsGroup: SubjectGroup = { name: 'tls', description: 'TLS termination with keep-alive; compare with tollgate', subjects: tlsSubjects }

/** Issue 5's target, as a fraction of the `tollgate` subject's req/s. */
export const tlsTargets: Readonly<Record<string, number>> = {
  'tollgate-tls': 0.8
}

import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import type { ConnectionOptions } from 'node:tls'
import type { ClusterTlsConfig } from './config.js'

// `cluster.tls`: the files for a TLS connection to Redis (rediss://). Checked once when the
// config is read, so a missing or wrong file refuses the config whole with its path; read
// again by each connection (the acceptor's and every worker's), which runs in threads that
// only get the config.

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

function readText (path: string): string | { error: string } {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    return { error: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }
  }
}

function certProblem (text: string): string | undefined {
  const blocks = text.match(PEM_CERT) ?? []
  if (blocks.length === 0) return 'no PEM certificate in the file'
  for (const b of blocks) {
    try { void new X509Certificate(b) } catch (err) { return `not a valid certificate: ${(err as Error).message}` }
  }
  return undefined
}

/**
 * Make the block's paths absolute (relative to the config file's directory, in place) and
 * check every file: readable, PEM, a key that parses. Returns `/cluster/tls/...: reason`
 * problems.
 */
export function checkClusterTls (tls: ClusterTlsConfig, dir: string): string[] {
  const problems: string[] = []
  for (const field of ['ca', 'cert', 'key'] as const) {
    const file = tls[field]
    if (file === undefined) continue
    const path = isAbsolute(file) ? file : resolve(dir, file)
    tls[field] = path
    const text = readText(path)
    if (typeof text !== 'string') {
      problems.push(`/cluster/tls/${field}: ${path}: ${text.error}`)
      continue
    }
    if (field === 'key') {
      try { createPrivateKey(text) } catch (err) { problems.push(`/cluster/tls/key: ${path}: not a private key: ${(err as Error).message}`) }
      continue
    }
    const p = certProblem(text)
    if (p !== undefined) problems.push(`/cluster/tls/${field}: ${path}: ${p}`)
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) problems.push(`/cluster/tls: a client certificate needs both cert and key (got only ${tls.cert === undefined ? 'key' : 'cert'})`)
  return problems
}

/**
 * tls.connect options for ioredis: certificates are always verified (against `ca`, else the
 * system store), never switched off. Throws if a file became unreadable since the check.
 */
export function clusterTlsOptions (tls: ClusterTlsConfig | undefined): ConnectionOptions {
  if (tls === undefined) return {}
  const read = (path: string | undefined): string | undefined => path === undefined ? undefined : readFileSync(path, 'utf8')
  const out: ConnectionOptions = { rejectUnauthorized: true }
  const ca = read(tls.ca)
  const cert = read(tls.cert)
  const key = read(tls.key)
  if (ca !== undefined) out.ca = ca
  if (cert !== undefined) out.cert = cert
  if (key !== undefined) out.key = key
  if (tls.servername !== undefined) out.servername = tls.servername
  return out
}

import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import type { Logger } from 'pino'
import type { GatewayConfig, RouteConfig, UpstreamTlsConfig } from '../config-schema.js'

/** undici `connect` options for an upstream's https:// targets (tls.connect options). */
export interface UpstreamConnectTls {
  ca?: string
  servername?: string
  rejectUnauthorized: boolean
}

/** The route's upstream TLS block, if it has one. */
export function upstreamTlsOf (route: RouteConfig): UpstreamTlsConfig | undefined {
  return typeof route.upstream === 'string' ? undefined : route.upstream.tls
}

/**
 * Connect options for https:// targets. Certificates are verified by default (against the
 * system store, or the block's `ca` file); undici sends the target host as SNI and checks
 * the certificate against it unless `servername` says otherwise. Throws when the CA file
 * cannot be read or holds no certificate, so a dry run refuses the config.
 */
export function upstreamConnectTls (tls: UpstreamTlsConfig | undefined, dir: string): UpstreamConnectTls | undefined {
  if (tls === undefined) return undefined
  const out: UpstreamConnectTls = { rejectUnauthorized: tls.insecureSkipVerify !== true }
  if (tls.ca !== undefined) {
    const path = isAbsolute(tls.ca) ? tls.ca : resolve(dir, tls.ca)
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw new Error(`upstream tls.ca ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`upstream tls.ca ${path}: no PEM certificate in the file`)
    out.ca = text
  }
  if (tls.servername !== undefined) out.servername = tls.servername
  return out
}

/** One warning per route that turns upstream certificate checks off, on every start and update. */
export function warnInsecureUpstreams (config: GatewayConfig, log: Logger): void {
  config.routes.forEach((r, i) => {
    if (upstreamTlsOf(r)?.insecureSkipVerify === true) {
      log.warn({ route: r.name, at: `/routes/${i}/upstream/tls/insecureSkipVerify` }, 'upstream TLS certificates are NOT verified on this route (insecureSkipVerify): anyone on the path can impersonate the upstream')
    }
  })
}

/** OpenSSL's verification failures as Node reports them (`err.code`), and a wrong host name. */
export function isCertificateError (code: string): boolean {
  return code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' || code === 'UNABLE_TO_GET_ISSUER_CERT' ||
    code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID' || code === 'CERT_UNTRUSTED' ||
    code === 'CERT_SIGNATURE_FAILURE' || code === 'CERT_REVOKED' || code === 'HOSTNAME_MISMATCH'
}

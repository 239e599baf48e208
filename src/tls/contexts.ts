import { createSecureContext } from 'node:tls'
import type { SecureContext, SecureContextOptions, TlsOptions } from 'node:tls'
import type { ListenTlsConfig } from '../config-schema.js'
import type { TlsMaterial } from './material.js'

/**
 * TLS 1.2 ciphers of Mozilla's "intermediate" profile that need no DH parameters: forward
 * secrecy (ECDHE) with an AEAD. The TLS 1.3 suites come first; OpenSSL prefers 1.3 whenever
 * the client offers it. No CBC, no RSA key exchange, no SHA-1 MACs (CHECKLIST I1).
 */
export const DEFAULT_CIPHERS = [
  'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'
].join(':')

/** What every secure context of the listener shares: protocol floor, ciphers, client CA. */
function common (cfg: ListenTlsConfig, m: TlsMaterial): SecureContextOptions {
  return {
    minVersion: cfg.minVersion,
    ciphers: cfg.ciphers ?? DEFAULT_CIPHERS,
    honorCipherOrder: true,
    ...(m.clientCa === undefined ? {} : { ca: m.clientCa })
  }
}

/**
 * The secure contexts of one version of the certificates, by SNI name. Built once per
 * worker when the certificates change, never per connection.
 */
export class SniTable {
  readonly #exact = new Map<string, SecureContext>()
  readonly #wildcard = new Map<string, SecureContext>()
  /** The default certificate's context, for SNI names no certificate serves. */
  readonly fallback: SecureContext | undefined

  constructor (cfg: ListenTlsConfig, m: TlsMaterial) {
    const base = common(cfg, m)
    m.certificates.forEach((c, i) => {
      const ctx = createSecureContext({ ...base, cert: c.cert, key: c.key })
      // The first certificate naming a host wins, in config order.
      for (const n of c.names) {
        const table = n.startsWith('*.') ? this.#wildcard : this.#exact
        const k = n.startsWith('*.') ? n.slice(2) : n
        if (!table.has(k)) table.set(k, ctx)
      }
      if (i === 0 && cfg.unknownServerName === 'default') (this as { fallback: SecureContext | undefined }).fallback = ctx
    })
  }

  /** The context for an SNI name: exact, then one-label wildcard, then the fallback. */
  find (servername: string): SecureContext | undefined {
    const name = servername.toLowerCase()
    const exact = this.#exact.get(name)
    if (exact !== undefined) return exact
    const dot = name.indexOf('.')
    if (dot > 0) {
      const wild = this.#wildcard.get(name.slice(dot + 1))
      if (wild !== undefined) return wild
    }
    return this.fallback
  }
}

/** Options for the default context (connections without SNI): `server.setSecureContext`. */
export function defaultContextOptions (cfg: ListenTlsConfig, m: TlsMaterial): SecureContextOptions {
  const first = m.certificates[0] as TlsMaterial['certificates'][number]
  return { ...common(cfg, m), cert: first.cert, key: first.key }
}

/**
 * The https server's options. `table` is read on every handshake through the holder, so a
 * reload swaps it for new connections while established ones keep theirs.
 */
export function serverTlsOptions (cfg: ListenTlsConfig, m: TlsMaterial, holder: { table: SniTable }): TlsOptions {
  const mtls = cfg.clientCertificates
  return {
    ...defaultContextOptions(cfg, m),
    handshakeTimeout: cfg.handshakeTimeout,
    // HTTP/1.1 only: HTTP/2 is not served, so its stream floods (CHECKLIST I4) cannot start.
    ALPNProtocols: ['http/1.1'],
    requestCert: mtls !== undefined,
    rejectUnauthorized: mtls?.mode === 'required',
    SNICallback (servername, cb) {
      const ctx = holder.table.find(servername)
      if (ctx === undefined) cb(new Error(`no certificate for server name ${servername}`), undefined)
      else cb(null, ctx)
    }
  }
}

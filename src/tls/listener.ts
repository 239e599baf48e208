import type { Server } from 'node:http'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import type { ListenTlsConfig } from '../config-schema.js'
import { defaultContextOptions, serverTlsOptions, SniTable } from './contexts.js'
import type { TlsMaterial } from './material.js'
import type { TlsOptions } from 'node:tls'

/**
 * A worker's side of a TLS listener: the options its https server starts with, and the swap
 * to new certificates (a watched file changed, or a policy update). A swap changes what new
 * handshakes get — the SNI table read by SNICallback and the default context via
 * setSecureContext — and never touches established connections.
 */
export class TlsListener {
  readonly #holder: { table: SniTable }
  #cfg: ListenTlsConfig
  #material: TlsMaterial
  #server: Server | undefined

  constructor (cfg: ListenTlsConfig, material: TlsMaterial, readonly log: Logger) {
    this.#cfg = cfg
    this.#material = material
    this.#holder = { table: new SniTable(cfg, material) }
  }

  options (): TlsOptions { return serverTlsOptions(this.#cfg, this.#material, this.#holder) }

  /** Hook the server's TLS events: failed handshakes logged, renegotiation off. */
  attach (server: Server): void {
    this.#server = server
    const tlsServer = server as unknown as TlsServer
    tlsServer.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      this.log.debug({ code: err.code, reason: err.message, peer: socket.remoteAddress }, 'TLS handshake failed')
    })
    // TLS 1.2 renegotiation started by the client is a CPU-exhaustion lever and serves no
    // purpose for HTTP/1.1 here: the connection is closed at the first attempt (CHECKLIST I3).
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      socket.disableRenegotiation()
      socket.on('error', () => {})
    })
  }

  /** New certificates (or new settings) for new connections. Throws if a context cannot be built. */
  update (cfg: ListenTlsConfig, material: TlsMaterial): void {
    if (material === this.#material && cfg === this.#cfg) return
    const table = new SniTable(cfg, material)
    const server = this.#server as unknown as (TlsServer & { requestCert?: boolean, rejectUnauthorized?: boolean }) | undefined
    server?.setSecureContext(defaultContextOptions(cfg, material))
    // Read by Node for each new connection; handshakeTimeout is fixed when the server starts.
    if (server !== undefined) {
      server.requestCert = cfg.clientCertificates !== undefined
      server.rejectUnauthorized = cfg.clientCertificates?.mode === 'required'
    }
    this.#holder.table = table
    this.#cfg = cfg
    this.#material = material
  }
}

import { consumersOf } from '../../src/auth/registry.js'
import type { PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import type { MtlsAuthConfig } from './schema.js'

const HEADER_SAFE = /^[\x20-\x7e]*$/

/**
 * Client certificates, verified by the TLS handshake against the listener's
 * `clientCertificates.ca`, mapped to consumers by `credentials.certificates`. The plugin
 * never looks at a certificate the handshake did not verify: with `mode: optional` a client
 * may present any certificate, and only `verified` ones count.
 */
export function createMtlsAuth (config: MtlsAuthConfig, api: PluginApi): PluginHooks {
  if (api.gateway.listen.tls?.clientCertificates === undefined) {
    throw new Error('mtls-auth needs a TLS listener that asks for client certificates: set listen.tls.clientCertificates (mode and ca)')
  }
  const registry = consumersOf(api.gateway)
  const forward = config.forwardSubject === false ? undefined : config.forwardSubject.toLowerCase()

  return {
    onRequest (ctx: RequestContext) {
      // A client must never be able to send this header itself.
      if (forward !== undefined) ctx.removeUpstreamHeader(forward)
      if (ctx.consumer !== undefined) return
      const peer = ctx.tls?.peerCertificate
      if (peer === undefined) {
        const detail = ctx.tls === undefined ? 'a client certificate is required, and this connection is not TLS' : 'a client certificate is required'
        ctx.authFailed({ code: 'MISSING_CLIENT_CERTIFICATE', detail, presented: false })
        return
      }
      if (!peer.verified) {
        ctx.authFailed({ code: 'UNTRUSTED_CLIENT_CERTIFICATE', detail: `the client certificate was not verified (${ctx.tls?.authorizationError ?? 'unknown reason'})`, presented: true })
        return
      }
      const consumer = registry.byCertificate(peer.subject, peer.san)
      if (consumer === undefined) {
        ctx.authFailed({ code: 'UNKNOWN_CLIENT_CERTIFICATE', detail: 'the client certificate is valid but names no consumer', presented: true })
        return
      }
      if (forward !== undefined) {
        // A CN is free text: one with control characters never goes into a header (A29).
        if (!HEADER_SAFE.test(peer.subject)) {
          ctx.authFailed({ code: 'UNTRUSTED_CLIENT_CERTIFICATE', detail: 'the client certificate subject cannot be sent in a header', presented: true })
          return
        }
        ctx.setUpstreamHeader(forward, peer.subject)
      }
      ctx.authenticate({ id: consumer.id, groups: consumer.groups, scopes: consumer.scopes })
    }
  }
}

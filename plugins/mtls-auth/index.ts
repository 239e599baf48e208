import { definePlugin } from '../../src/plugin.js'
import { createMtlsAuth } from './mtls-auth.js'
import { schema } from './schema.js'
import type { MtlsAuthConfig } from './schema.js'

/** The verified client certificate of a TLS connection (mTLS) identifies the consumer. */
export default definePlugin<MtlsAuthConfig>({
  name: 'mtls-auth',
  phase: 'authn',
  authenticates: true,
  tollgate: '>=0.1.0',
  schema,
  description: "A verified client certificate's subject (CN) or subjectAltName identifies the consumer (needs listen.tls.clientCertificates)",
  create: (config, api) => createMtlsAuth(config, api)
})

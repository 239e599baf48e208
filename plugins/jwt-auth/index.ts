import { definePlugin } from '../../src/plugin.js'
import { createJwtAuth } from './jwt-auth.js'
import { schema } from './schema.js'
import type { JwtAuthConfig } from './schema.js'

/** JWT bearer tokens (RFC 7519, RFC 6750, RFC 8725), verified with jose. */
export default definePlugin<JwtAuthConfig>({
  name: 'jwt-auth',
  phase: 'authn',
  tollgate: '>=0.1.0',
  authenticates: true,
  schema,
  description: 'JWT bearer tokens: algorithms pinned per issuer, static keys or a shared JWKS cache, claims to consumers and upstream headers',
  create: (config, api) => createJwtAuth(config, api)
})

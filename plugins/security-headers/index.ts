import { definePlugin } from '../../src/plugin.js'
import { createSecurityHeaders } from './security-headers.js'
import { schema } from './schema.js'
import type { SecurityHeadersConfig } from './schema.js'

/**
 * Browser security headers on every response, proxied or made by the gateway. Phase
 * `connect`, so that the headers are set before any plugin can deny: a 401, 403 or 429
 * carries them too.
 */
export default definePlugin<SecurityHeadersConfig>({
  name: 'security-headers',
  phase: 'connect',
  tollgate: '>=0.1.0',
  schema,
  description: 'HSTS, nosniff, X-Frame-Options / frame-ancestors, Referrer-Policy, CSP and Permissions-Policy on every response; Server and X-Powered-By removed',
  create: (config, api) => createSecurityHeaders(config, api)
})

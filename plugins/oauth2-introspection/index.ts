import { definePlugin } from '../../src/plugin.js'
import { createOAuth2Introspection } from './oauth2-introspection.js'
import { schema } from './schema.js'
import type { OAuth2IntrospectionConfig } from './schema.js'

/** Bearer tokens checked at the authorization server's introspection endpoint (RFC 7662). */
export default definePlugin<OAuth2IntrospectionConfig>({
  name: 'oauth2-introspection',
  phase: 'authn',
  tollgate: '>=0.1.0',
  authenticates: true,
  schema,
  description: 'Bearer tokens introspected at an OAuth2 authorization server (RFC 7662), cached per token digest, single-flight, fail closed',
  create: (config, api) => createOAuth2Introspection(config, api)
})

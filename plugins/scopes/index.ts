import { definePlugin } from '../../src/plugin.js'
import { createScopes } from './scopes.js'
import { schema } from './schema.js'
import type { ScopesConfig } from './schema.js'

/** Scopes the consumer's credential must carry, per route and method. */
export default definePlugin<ScopesConfig>({
  name: 'scopes',
  phase: 'authz',
  tollgate: '>=0.1.0',
  schema,
  description: 'Required scopes (any-of / all-of) per route and method (403 insufficient_scope; 401 without a consumer)',
  create: (config, api) => createScopes(config, api)
})

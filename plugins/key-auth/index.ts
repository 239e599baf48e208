import { definePlugin } from '../../src/plugin.js'
import { createKeyAuth } from './key-auth.js'
import { schema } from './schema.js'
import type { KeyAuthConfig } from './schema.js'

/** API keys of the configured consumers, in a header or a query parameter. */
export default definePlugin<KeyAuthConfig>({
  name: 'key-auth',
  phase: 'authn',
  authenticates: true,
  tollgate: '>=0.1.0',
  schema,
  description: 'API keys (stored as SHA-256 digests) in a header or query parameter identify the consumer',
  create: (config, api) => createKeyAuth(config, api)
})

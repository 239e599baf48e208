import { definePlugin } from '../../src/plugin.js'
import { createAcl } from './acl.js'
import { schema } from './schema.js'
import type { AclConfig } from './schema.js'

/** Consumer groups allowed or denied on a route, per method. */
export default definePlugin<AclConfig>({
  name: 'acl',
  phase: 'authz',
  tollgate: '>=0.1.0',
  schema,
  description: 'Allow or deny consumer groups per route and method (403; 401 without a consumer)',
  create: (config, api) => createAcl(config, api)
})

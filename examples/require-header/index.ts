// Inside the tollgate repo the example imports the API from source, so it builds with the
// project. A plugin in its own package writes instead:
//   import { definePlugin } from 'tollgate'
import { definePlugin } from '../../src/index.js'
import { createRequireHeader, NAME } from './require-header.js'
import { schema } from './schema.js'
import type { RequireHeaderConfig } from './schema.js'

/** Requires a request header (x-tenant by default), optionally matching a pattern or an allow-list. */
export default definePlugin<RequireHeaderConfig>({
  name: NAME,
  // After authn: a caller without credentials gets 401 first and learns nothing about the
  // header's rules; before access (rate limits), so denied requests spend no quota.
  phase: 'authz',
  // The host versions this was written and tested against (0.x: minor versions may break).
  tollgate: '>=0.1.0 <1',
  schema,
  description: 'Require a request header, optionally matching a pattern or an allow-list; 400 or 403 otherwise',
  create: (config) => createRequireHeader(config)
})

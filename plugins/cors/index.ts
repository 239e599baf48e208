import { definePlugin } from '../../src/plugin.js'
import { createCors } from './cors.js'
import { schema } from './schema.js'
import type { CorsConfig } from './schema.js'

/**
 * CORS at the gateway. Phase `connect`, so that preflights are answered before any
 * authentication (browsers send them without credentials) and so that the CORS headers are
 * set before a later plugin can deny: a 401 or a 429 must be readable by the page too.
 */
export default definePlugin<CorsConfig>({
  name: 'cors',
  phase: 'connect',
  tollgate: '>=0.1.0',
  schema,
  description: 'Answers CORS preflights at the gateway and sets Access-Control-* headers for allowed origins (exact, *.domain, anchored regex)',
  create: (config) => createCors(config)
})

import { definePlugin } from '../../src/plugin.js'
import { createRequestId } from './request-id.js'
import { schema } from './schema.js'
import type { RequestIdConfig } from './schema.js'

/** Gives every request an id (or keeps the client's), sends it upstream and back. */
export default definePlugin<RequestIdConfig>({
  name: 'request-id',
  phase: 'connect',
  tollgate: '>=0.1.0',
  schema,
  description: 'Generate or pass through X-Request-Id, send it upstream and echo it back',
  create: (config) => createRequestId(config)
})

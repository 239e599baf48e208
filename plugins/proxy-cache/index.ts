import { definePlugin } from '../../src/plugin.js'
import { createProxyCache } from './proxy-cache.js'
import { schema } from './schema.js'
import type { ProxyCacheConfig } from './schema.js'

/** GET/HEAD responses cached in memory per worker, after every policy admitted the request. */
export default definePlugin<ProxyCacheConfig>({
  name: 'proxy-cache',
  phase: 'proxy',
  tollgate: '>=0.1.0',
  schema,
  description: 'GET/HEAD responses cached per worker (Cache-Control, Vary, per-consumer keys, LRU, request coalescing), purged through the admin API',
  create: (config, api) => createProxyCache(config, api)
})

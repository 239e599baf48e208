import { definePlugin } from '../../src/plugin.js'
import { createRateLimit } from './rate-limit.js'
import { schema } from './schema.js'
import type { RateLimitConfig } from './schema.js'

/** Limits per client key, counted exactly across worker threads in shared memory. */
export default definePlugin<RateLimitConfig>({
  name: 'rate-limit',
  phase: 'access',
  tollgate: '>=0.1.0',
  schema,
  description: 'Fixed window, sliding window or GCRA limits per ip, consumer, route or header, shared by every worker',
  create: (config, api) => createRateLimit(config, api)
})

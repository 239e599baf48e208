/**
 * tollgate's public API for plugin authors. The gateway itself is run with the `tollgate`
 * binary; see the README.
 */
export { definePlugin, isPlugin } from './plugin.js'
export type { Plugin } from './plugin.js'
export { PHASES } from './types.js'
export type {
  Phase, PluginDefinition, PluginHooks, PluginApi, PrepareApi, SharedApi, RequestContext, ReplyOptions,
  ResponseInfo, RequestOutcome, ClientInfo, RouteInfo, HookResult, JsonSchema,
  Consumer, ConsumerIdentity, AuthFailure, ResponseHeaderMode, ResponseTap
} from './types.js'
// A cache a plugin keeps in its worker thread, reached by the admin API's DELETE /cache.
export { onCachePurge } from './cache-purge.js'
export type { PurgeSelector, Purger } from './cache-purge.js'
// The shared-memory hot path, for plugins that match IP sets (registered in prepare()) or
// count requests across worker threads.
export { createIpMatcher } from './ip/matcher.js'
export type { IpMatcher } from './ip/matcher.js'
export { RateLimitCounters, newRateLimitResult } from './rate-limit/counters.js'
export type { RateLimitRule, CompiledRule, RateLimitResult } from './rate-limit/counters.js'
export { parseIp, parseCidr } from './ip/parse.js'
export { codes, GatewayError } from './errors.js'
export type { GatewayConfig, RouteConfig, PluginRef } from './config-schema.js'
export { gatewaySchema } from './config-schema.js'
export { VERSION } from './version.js'
// Cluster mode: the fleet-wide auto-block list (any thread; see src/cluster/blocks.ts).
export { publishBlock, onBlock } from './cluster/blocks.js'

/**
 * tollgate's public API for plugin authors. The gateway itself is run with the `tollgate`
 * binary; see the README.
 */
export { definePlugin, isPlugin } from './plugin.js'
export type { Plugin } from './plugin.js'
export { PHASES } from './types.js'
export type {
  Phase, PluginDefinition, PluginHooks, PluginApi, RequestContext, ReplyOptions, ResponseInfo,
  RequestOutcome, ClientInfo, RouteInfo, HookResult, JsonSchema
} from './types.js'
export { codes, GatewayError } from './errors.js'
export type { GatewayConfig, RouteConfig, PluginRef } from './config-schema.js'
export { gatewaySchema } from './config-schema.js'
export { VERSION } from './version.js'

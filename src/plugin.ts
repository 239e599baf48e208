import semver from 'semver'
import { codes } from './errors.js'
import { kPluginMeta } from './symbols.js'
import { PHASES } from './types.js'
import type { PluginDefinition, PluginHooks, JsonSchema } from './types.js'
import { VERSION } from './version.js'

/** A plugin definition after `definePlugin` checked its shape. */
export interface Plugin<C = Record<string, unknown>> extends Readonly<PluginDefinition<C>> {
  readonly [kPluginMeta]: true
}

/**
 * Declare a tollgate plugin. Checks the object's shape only (a TypeError on a bad one, at
 * import time, where the author sees it) and brands it; the gateway checks version range,
 * dependencies and config when it registers the plugin.
 */
export function definePlugin<C = Record<string, unknown>> (def: PluginDefinition<C>): Plugin<C> {
  if (def === null || typeof def !== 'object') throw new TypeError('definePlugin() expects an object')
  if (typeof def.name !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/.test(def.name)) {
    throw new TypeError(`definePlugin(): name must be a lower-case string of [a-z0-9._-], got ${JSON.stringify(def.name)}`)
  }
  if (!(PHASES as readonly string[]).includes(def.phase)) {
    throw new TypeError(`definePlugin('${def.name}'): phase must be one of ${PHASES.join(', ')}, got ${JSON.stringify(def.phase)}`)
  }
  if (def.schema === null || typeof def.schema !== 'object' || Array.isArray(def.schema)) {
    throw new TypeError(`definePlugin('${def.name}'): schema must be a JSON Schema object`)
  }
  if (typeof def.create !== 'function') throw new TypeError(`definePlugin('${def.name}'): create must be a function`)
  if (def.tollgate !== undefined && (typeof def.tollgate !== 'string' || semver.validRange(def.tollgate) === null)) {
    throw new TypeError(`definePlugin('${def.name}'): tollgate must be a semver range, got ${JSON.stringify(def.tollgate)}`)
  }
  if (def.dependencies !== undefined && (!Array.isArray(def.dependencies) || def.dependencies.some((d) => typeof d !== 'string'))) {
    throw new TypeError(`definePlugin('${def.name}'): dependencies must be an array of plugin names`)
  }
  if (def.preparedKeys !== undefined && (!Array.isArray(def.preparedKeys) || def.preparedKeys.some((k) => typeof k !== 'string'))) {
    throw new TypeError(`definePlugin('${def.name}'): preparedKeys must be an array of config key names`)
  }
  if (def.authenticates !== undefined && typeof def.authenticates !== 'boolean') throw new TypeError(`definePlugin('${def.name}'): authenticates must be a boolean`)
  if (def.authenticates === true && def.phase !== 'authn') throw new TypeError(`definePlugin('${def.name}'): a plugin that authenticates must run in phase 'authn'`)
  if (def.prepare !== undefined && typeof def.prepare !== 'function') throw new TypeError(`definePlugin('${def.name}'): prepare must be a function`)
  return Object.freeze({ ...def, schema: def.schema as JsonSchema, [kPluginMeta]: true as const })
}

export function isPlugin (value: unknown): value is Plugin {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kPluginMeta] === true
}

/** Take the plugin out of an imported module (default export, or the module itself). */
export function pluginFromModule (name: string, mod: unknown): Plugin {
  const candidate = (mod as { default?: unknown })?.default ?? mod
  if (!isPlugin(candidate)) {
    throw codes.GW_ERR_PLUGIN_INVALID(name, 'its default export must be made by definePlugin() from tollgate')
  }
  return candidate
}

/**
 * Check that a plugin can join a pipeline: host version range and dependencies (which must
 * be in `pipeline`, the names of every plugin the route runs, global ones included).
 * Modelled on fastify's registerPlugin -> checkVersion/checkDependencies.
 */
export function registerPlugin (plugin: Plugin, pipeline: readonly string[]): void {
  if (plugin.tollgate !== undefined && !semver.satisfies(VERSION, plugin.tollgate, { includePrerelease: true })) {
    throw codes.GW_ERR_PLUGIN_VERSION(plugin.name, plugin.tollgate, VERSION)
  }
  for (const dep of plugin.dependencies ?? []) {
    if (!pipeline.includes(dep)) throw codes.GW_ERR_PLUGIN_DEPENDENCY(plugin.name, dep)
  }
}

const HOOK_NAMES = ['onRequest', 'onResponse', 'onLog', 'close'] as const

/** Check what create() returned: an object whose known members are functions. */
export function checkHooks (name: string, hooks: unknown): PluginHooks {
  if (hooks === undefined || hooks === null) return {}
  if (typeof hooks !== 'object') throw codes.GW_ERR_PLUGIN_HOOK(name, typeof hooks)
  for (const h of HOOK_NAMES) {
    const fn = (hooks as Record<string, unknown>)[h]
    if (fn !== undefined && typeof fn !== 'function') throw codes.GW_ERR_PLUGIN_HOOK(name, h)
  }
  return hooks as PluginHooks
}

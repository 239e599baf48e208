import { createRequire } from 'node:module'
import { isAbsolute, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { ValidateFunction } from 'ajv'
import { builtinPlugins } from '../plugins/index.js'
import { createConfigAjv } from './ajv.js'
import type { GatewayConfig, PluginRef } from './config-schema.js'
import { codes, GatewayError } from './errors.js'
import { pluginFromModule, registerPlugin } from './plugin.js'
import type { Plugin } from './plugin.js'
import { formatSchemaErrors } from './schema-errors.js'
import { PHASES } from './types.js'

/** Plugins a config uses: name -> definition, and name -> module URL for the workers. */
export interface LoadedPlugins {
  plugins: Map<string, Plugin>
  modules: Record<string, string>
}

/** One plugin instance in a pipeline, with the JSON path of its entry for error lines. */
export interface PipelineEntry {
  plugin: Plugin
  ref: PluginRef
  /** `/plugins/0` or `/routes/2/plugins/1` */
  path: string
  /** Shared by every route that uses this global instance. */
  global: boolean
}

const schemaAjv = createConfigAjv()
const validators = new WeakMap<Plugin, ValidateFunction>()

/** Where a plugin module is: a built-in's URL, or a path / package name from the config. */
export function resolvePluginModule (ref: { name: string, module?: string }, dir: string): string {
  if (ref.module === undefined) {
    const url = builtinPlugins[ref.name]
    if (url === undefined) {
      throw codes.GW_ERR_PLUGIN_NOT_FOUND(ref.name, `no built-in plugin has this name (built-ins: ${Object.keys(builtinPlugins).join(', ')}); give a 'module' path for your own`)
    }
    return url
  }
  const spec = ref.module
  if (spec.startsWith('file:')) return spec
  if (spec.startsWith('.') || isAbsolute(spec)) return pathToFileURL(resolve(dir, spec)).href
  try {
    return pathToFileURL(createRequire(join(dir, 'noop.js')).resolve(spec)).href
  } catch (err) {
    throw codes.GW_ERR_PLUGIN_NOT_FOUND(ref.name, `cannot resolve package '${spec}' from ${dir}: ${(err as Error).message.split('\n')[0] ?? ''}`)
  }
}

/** Import a plugin module and take its definition. */
export async function importPlugin (name: string, url: string): Promise<Plugin> {
  let mod: unknown
  try {
    mod = await import(url)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(url.replace(/^file:\/\//, ''))) {
      throw codes.GW_ERR_PLUGIN_NOT_FOUND(name, `no file at ${url}`)
    }
    throw codes.GW_ERR_PLUGIN_LOAD(name, e.message, { cause: err })
  }
  return pluginFromModule(name, mod)
}

function allRefs (cfg: GatewayConfig): Array<{ ref: PluginRef, path: string }> {
  const out = cfg.plugins.map((ref, i) => ({ ref, path: `/plugins/${i}` }))
  cfg.routes.forEach((r, ri) => r.plugins.forEach((ref, i) => out.push({ ref, path: `/routes/${ri}/plugins/${i}` })))
  return out
}

/**
 * Find and import every plugin the config names, check each entry's config against its
 * plugin's schema (filling in defaults), and check each route's pipeline (duplicates,
 * dependencies, version ranges). All problems are collected and thrown together as
 * GW_ERR_CONFIG_INVALID with `source: /json/path: reason` lines.
 */
export async function loadPlugins (cfg: GatewayConfig, source: string, dir: string): Promise<LoadedPlugins> {
  const problems: string[] = []
  const plugins = new Map<string, Plugin>()
  const modules: Record<string, string> = {}

  for (const { ref, path } of allRefs(cfg)) {
    try {
      const url = resolvePluginModule(ref, dir)
      const known = modules[ref.name]
      if (known !== undefined && known !== url) throw codes.GW_ERR_PLUGIN_NAME_TAKEN(ref.name, known, url)
      let plugin = plugins.get(ref.name)
      if (plugin === undefined) {
        plugin = await importPlugin(ref.name, url)
        if (plugin.name !== ref.name) {
          throw codes.GW_ERR_PLUGIN_INVALID(ref.name, `the module at ${url} defines plugin '${plugin.name}'; use that name`)
        }
        plugins.set(ref.name, plugin)
        modules[ref.name] = url
      }
      // A disabled entry only switches a plugin off; its config is not used, so not checked.
      if (ref.enabled !== false) problems.push(...checkPluginConfig(plugin, ref, path).map((l) => `${source}: ${l}`))
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err
      problems.push(`${source}: ${path}: ${err.message}`)
    }
  }
  if (problems.length === 0) {
    for (let ri = 0; ri < cfg.routes.length; ri++) {
      try {
        pipelineFor(cfg, ri, plugins)
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err
        problems.push(`${source}: /routes/${ri}: ${err.message}`)
      }
    }
  }
  if (problems.length > 0) throw codes.GW_ERR_CONFIG_INVALID(source, problems.length, { details: problems })
  return { plugins, modules }
}

/** Validate one entry's config in place (defaults filled in); returns problem lines. */
export function checkPluginConfig (plugin: Plugin, ref: PluginRef, path: string): string[] {
  let validate = validators.get(plugin)
  if (validate === undefined) {
    try {
      validate = schemaAjv.compile(plugin.schema)
    } catch (err) {
      return [`${path}: plugin '${plugin.name}' has an invalid schema: ${(err as Error).message}`]
    }
    validators.set(plugin, validate)
  }
  ref.config ??= {}
  if (validate(ref.config)) return []
  return formatSchemaErrors(validate.errors ?? [], ref.config).map((l) => {
    const [p, ...rest] = l.split(': ')
    return `${path}/config${p === '/' ? '' : p}: ${rest.join(': ')}`
  })
}

/** The global entries alone, in run order: the pipeline of requests that match no route. */
export function globalPipeline (cfg: GatewayConfig, plugins: Map<string, Plugin>): PipelineEntry[] {
  const entries = cfg.plugins
    .map((ref, i) => ({ plugin: plugins.get(ref.name) as Plugin, ref, path: `/plugins/${i}`, global: true }))
    .filter((e) => e.ref.enabled !== false)
  return entries.sort((a, b) => PHASES.indexOf(a.plugin.phase) - PHASES.indexOf(b.plugin.phase))
}

/**
 * The plugins a route runs, in run order: by phase, then in config order. Global entries
 * come first; a route entry with the same name replaces the global one in its place (its
 * config wins; `enabled: false` removes it from this route), as Kong's route-level plugins do.
 */
export function pipelineFor (cfg: GatewayConfig, ri: number, plugins: Map<string, Plugin>): PipelineEntry[] {
  // By index, not by name: a lookup by name per route made building 1,000 routes quadratic.
  const route = cfg.routes[ri]
  if (route === undefined) throw new Error(`no route #${ri}`)
  const entries: PipelineEntry[] = []
  const seenGlobal = new Set<string>()
  cfg.plugins.forEach((ref, i) => {
    if (seenGlobal.has(ref.name)) throw codes.GW_ERR_PLUGIN_DUPLICATE(ref.name, 'the global plugin list')
    seenGlobal.add(ref.name)
    entries.push({ plugin: plugins.get(ref.name) as Plugin, ref, path: `/plugins/${i}`, global: true })
  })
  const seenRoute = new Set<string>()
  route.plugins.forEach((ref, i) => {
    if (seenRoute.has(ref.name)) throw codes.GW_ERR_PLUGIN_DUPLICATE(ref.name, `route '${route.name}'`)
    seenRoute.add(ref.name)
    const entry = { plugin: plugins.get(ref.name) as Plugin, ref, path: `/routes/${ri}/plugins/${i}`, global: false }
    const at = entries.findIndex((e) => e.ref.name === ref.name)
    if (at >= 0) entries[at] = entry
    else entries.push(entry)
  })
  const enabled = entries.filter((e) => e.ref.enabled !== false)
  const order = (e: PipelineEntry): number => PHASES.indexOf(e.plugin.phase)
  // Array.prototype.sort is stable, so config order holds within a phase.
  enabled.sort((a, b) => order(a) - order(b))
  const names = enabled.map((e) => e.ref.name)
  for (const e of enabled) registerPlugin(e.plugin, names)
  return enabled
}

import type { Logger } from 'pino'
import type { GatewayConfig } from './config-schema.js'
import { codes, GatewayError } from './errors.js'
import { CidrError, parseCidr } from './ip/parse.js'
import { compileIpSets, IpTableError } from './ip/table-writer.js'
import type { CompiledIpTable } from './ip/table-writer.js'
import type { Plugin } from './plugin.js'
import { globalPipeline, pipelineFor } from './plugin-loader.js'
import type { PipelineEntry } from './plugin-loader.js'

/** What the acceptor's prepare step produced for one generation. */
export interface PrepareResult {
  /** Entry path -> what that entry's prepare() returned. */
  prepared: Record<string, unknown>
  /** CIDR lists to compile into the IP table, in set-id order. */
  ipSets: Array<readonly string[]>
  /**
   * The same, compiled and checked: ready for writeIpTable(). Throws GW_ERR_CONFIG_INVALID
   * naming every bad entry. Separate from prepare() so that a live update can compile while
   * the workers build (they need only the set ids).
   */
  compileIpTable: () => CompiledIpTable
}

/** Every enabled entry once (global entries are shared by the routes that run them). */
function entriesOf (cfg: GatewayConfig, plugins: Map<string, Plugin>): Array<{ entry: PipelineEntry, route: string | undefined }> {
  const out = new Map<string, { entry: PipelineEntry, route: string | undefined }>()
  for (const e of globalPipeline(cfg, plugins)) out.set(e.path, { entry: e, route: undefined })
  cfg.routes.forEach((r, ri) => {
    for (const e of pipelineFor(cfg, ri, plugins)) if (!out.has(e.path)) out.set(e.path, { entry: e, route: e.global ? undefined : r.name })
  })
  return [...out.values()]
}

/**
 * Run every plugin's prepare() once for a generation, in the acceptor. CIDR lists a plugin
 * registers are checked here (every bad entry reported with its JSON path) and numbered in
 * registration order; the caller writes them into the shared IP table with those ids.
 */
export async function runPrepare (cfg: GatewayConfig, plugins: Map<string, Plugin>, source: string, dir: string, log: Logger): Promise<PrepareResult> {
  const prepared: Record<string, unknown> = {}
  const ipSets: Array<readonly string[]> = []
  const origins: Array<{ path: string, pointer: string }> = []
  const problems: string[] = []
  for (const { entry, route } of entriesOf(cfg, plugins)) {
    const prepare = entry.plugin.prepare
    if (prepare === undefined) continue
    const api = {
      log: log.child({ plugin: entry.plugin.name }),
      route,
      configDir: dir,
      path: entry.path,
      ipSet (cidrs: readonly string[], pointer = '') {
        ipSets.push(cidrs)
        origins.push({ path: entry.path, pointer })
        return ipSets.length - 1
      }
    }
    try {
      prepared[entry.path] = await prepare(entry.ref.config, api)
    } catch (err) {
      const reason = (err as Error)?.message ?? String(err)
      const inner = err instanceof GatewayError ? err.details.map((d) => `${source}: ${d}`) : []
      problems.push(`${source}: ${entry.path}: plugin '${entry.plugin.name}' failed in prepare(): ${reason}`, ...inner)
    }
  }
  if (problems.length > 0) throw codes.GW_ERR_CONFIG_INVALID(source, problems.length, { details: problems })
  return { prepared, ipSets, compileIpTable: () => compileChecked(ipSets, origins, source) }
}

/**
 * Compiling checks every CIDR (the fast path of a 100k list); only when it fails are the
 * lists walked entry by entry, to report every bad entry at its own JSON path.
 */
function compileChecked (ipSets: Array<readonly string[]>, origins: Array<{ path: string, pointer: string }>, source: string): CompiledIpTable {
  try {
    return compileIpSets(ipSets)
  } catch (err) {
    if (!(err instanceof IpTableError)) throw err
    const problems: string[] = []
    ipSets.forEach((cidrs, s) => {
      const o = origins[s] as { path: string, pointer: string }
      cidrs.forEach((c, i) => {
        try {
          parseCidr(c)
        } catch (e) {
          if (!(e instanceof CidrError)) throw e
          problems.push(`${source}: ${o.path}/config${o.pointer}/${i}: ${e.message}`)
        }
      })
    })
    if (problems.length === 0) problems.push(`${source}: ${err.message}`)
    throw codes.GW_ERR_CONFIG_INVALID(source, problems.length, { details: problems })
  }
}

import { createIpMatcher } from '../../src/ip/matcher.js'
import { parseIp } from '../../src/ip/parse.js'
import type { PluginApi, PluginHooks, PrepareApi, RequestContext } from '../../src/types.js'
import { readList } from './list-file.js'
import type { IpFilterConfig, IpFilterPrepared } from './schema.js'

/** In the acceptor: the lists (inline and from files) go into the shared IP table once. */
export async function prepareIpFilter (config: IpFilterConfig, api: PrepareApi): Promise<IpFilterPrepared> {
  const list = async (inline: string[], file: string | undefined, name: string): Promise<number> => {
    if (file === undefined) return inline.length === 0 ? -1 : api.ipSet(inline, `/${name}`)
    const fromFile = await readList(file, api.configDir)
    // Inline entries first, so a bad inline entry is reported at its own index.
    const all = inline.length === 0 ? fromFile : [...inline, ...fromFile]
    return all.length === 0 ? -1 : api.ipSet(all, `/${name}`)
  }
  return {
    allow: await list(config.allow, config.allowFile, 'allow'),
    deny: await list(config.deny, config.denyFile, 'deny')
  }
}

/**
 * In each worker: two lookups in the shared table per request at most. Deny wins; an empty
 * allow list allows every address; an address that cannot be parsed is denied (the client
 * address is resolved by the gateway, so this only happens on a bug: fail closed).
 */
export function createIpFilter (config: IpFilterConfig, api: PluginApi): PluginHooks {
  const sets = api.prepared as IpFilterPrepared | undefined
  if (sets === undefined) throw new Error('ip-filter: no prepared sets (prepare() did not run)')
  const matcher = createIpMatcher(api.shared.hotPath, api.shared.ipRegion)
  const { allow, deny } = sets
  const status = config.status
  // The address is parsed once per request into this scratch, then matched against both lists.
  const words = new Uint32Array(4)
  return {
    onRequest (ctx: RequestContext) {
      const family = parseIp(ctx.client.ip, words)
      if (deny >= 0) {
        const hit = matcher.containsParsed(deny, family, words)
        if (hit !== false) return ctx.reply(status, { code: hit === undefined ? 'IP_INVALID' : 'IP_DENIED', detail: 'the client address is not allowed' })
      }
      if (allow >= 0) {
        const hit = matcher.containsParsed(allow, family, words)
        if (hit !== true) return ctx.reply(status, { code: hit === undefined ? 'IP_INVALID' : 'IP_NOT_ALLOWED', detail: 'the client address is not allowed' })
      }
    }
  }
}

import { perMethod } from '../../src/auth/per-method.js'
import type { PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import type { AclConfig, AclRule } from './schema.js'

interface Compiled { allow: ReadonlySet<string> | undefined, deny: ReadonlySet<string> | undefined }

function compile (r: AclRule): Compiled {
  return { allow: r.allow === undefined ? undefined : new Set(r.allow), deny: r.deny === undefined ? undefined : new Set(r.deny) }
}

/** Allow and deny by consumer group, per route and method. Deny wins over allow. */
export function createAcl (config: AclConfig, _api: PluginApi): PluginHooks {
  if (config.allow === undefined && config.deny === undefined && config.methods === undefined) {
    throw new Error('acl needs allow, deny or methods: a rule that checks nothing is a mistake')
  }
  const ruleFor = perMethod(config, compile)

  return {
    onRequest (ctx: RequestContext) {
      const rule = ruleFor(ctx.method)
      if (rule.allow === undefined && rule.deny === undefined) return
      const c = ctx.consumer
      if (c === undefined) {
        ctx.reply(401, { code: 'NOT_AUTHENTICATED', detail: 'this route needs an authenticated consumer' })
        return
      }
      if (rule.deny !== undefined) {
        for (const g of c.groups) {
          if (rule.deny.has(g)) {
            ctx.reply(403, { code: 'GROUP_DENIED', detail: 'the consumer is not allowed here' })
            return
          }
        }
      }
      if (rule.allow !== undefined) {
        for (const g of c.groups) if (rule.allow.has(g)) return
        ctx.reply(403, { code: 'GROUP_NOT_ALLOWED', detail: 'the consumer is not in a group allowed here' })
      }
    }
  }
}

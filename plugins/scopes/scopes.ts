import { perMethod } from '../../src/auth/per-method.js'
import type { PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import type { ScopeRule, ScopesConfig } from './schema.js'

interface Compiled { anyOf: readonly string[] | undefined, allOf: readonly string[] | undefined, challenge: string }

/** Required scopes per route and method: 403 with an RFC 6750 insufficient_scope challenge. */
export function createScopes (config: ScopesConfig, _api: PluginApi): PluginHooks {
  if (config.anyOf === undefined && config.allOf === undefined && config.methods === undefined) {
    throw new Error('scopes needs anyOf, allOf or methods: a rule that requires nothing is a mistake')
  }
  const compile = (r: ScopeRule): Compiled => {
    const named = [...(r.allOf ?? []), ...(r.anyOf ?? [])]
    return { anyOf: r.anyOf, allOf: r.allOf, challenge: `Bearer realm="${config.realm}", error="insufficient_scope", scope="${named.join(' ')}"` }
  }
  const ruleFor = perMethod(config, compile)

  return {
    onRequest (ctx: RequestContext) {
      const rule = ruleFor(ctx.method)
      if (rule.anyOf === undefined && rule.allOf === undefined) return
      const c = ctx.consumer
      if (c === undefined) {
        ctx.reply(401, { code: 'NOT_AUTHENTICATED', detail: 'this route needs an authenticated consumer' })
        return
      }
      const has = c.scopes
      const ok = (rule.allOf === undefined || rule.allOf.every((s) => has.includes(s))) &&
        (rule.anyOf === undefined || rule.anyOf.some((s) => has.includes(s)))
      if (!ok) ctx.reply(403, { code: 'INSUFFICIENT_SCOPE', detail: 'the credential lacks a scope this route requires', headers: { 'www-authenticate': rule.challenge } })
    }
  }
}

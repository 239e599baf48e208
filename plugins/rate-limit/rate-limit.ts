import { toMs } from '../../src/duration.js'
import { newRateLimitResult, RateLimitCounters } from '../../src/rate-limit/counters.js'
import type { CompiledRule, RateLimitResult } from '../../src/rate-limit/counters.js'
import type { HotPath } from '../../src/shared-memory.js'
import type { PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import type { RateLimitConfig } from './schema.js'

// One counters object per thread: they all count in the same shared table.
const countersByHotPath = new WeakMap<HotPath, RateLimitCounters>()

function countersFor (hot: HotPath): RateLimitCounters {
  let c = countersByHotPath.get(hot)
  if (c === undefined) {
    c = new RateLimitCounters(hot)
    countersByHotPath.set(hot, c)
  }
  return c
}

type KeyPart = (ctx: RequestContext) => string

function keyPart (spec: string): KeyPart {
  if (spec === 'ip') return (ctx) => ctx.client.ip
  if (spec === 'route') return (ctx) => ctx.route.name
  if (spec === 'consumer') {
    // No consumer (an anonymous request): count by address, as Kong does.
    return (ctx) => {
      const c = ctx.consumer
      return c !== undefined && !c.anonymous ? 'c:' + c.id : 'ip:' + ctx.client.ip
    }
  }
  const header = spec.slice('header:'.length).toLowerCase()
  return (ctx) => {
    const v = ctx.headers[header]
    if (typeof v === 'string' && v !== '') return 'h:' + v
    return 'ip:' + ctx.client.ip
  }
}

function windowText (ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

interface Limit { name: string, rule: CompiledRule, windowS: number, result: RateLimitResult }

/**
 * Builds the limits once per generation: each is a rule in the shared counter table under
 * a policy id made of the scope (the `id` option, else the route's name) and everything
 * that defines the limit, never its position. An unchanged limit keeps its counters
 * across a reload; a changed one starts afresh.
 */
export function createRateLimit (config: RateLimitConfig, api: PluginApi): PluginHooks {
  const counters = countersFor(api.shared.hotPath)
  const scope = config.id ?? `route:${api.route ?? '*'}`
  const keySpecs = Array.isArray(config.key) ? config.key : [config.key]
  const parts = keySpecs.map(keyPart)
  const keyOf: KeyPart = parts.length === 1 ? parts[0] as KeyPart : (ctx) => parts.map((p) => p(ctx)).join('\u001f')

  const limits: Limit[] = config.limits.map((l) => {
    const windowMs = toMs(l.window)
    const burst = l.algorithm === 'gcra' ? (l.burst ?? l.limit) : undefined
    const policyId = [scope, keySpecs.join('+'), l.algorithm, l.limit, windowMs, burst ?? ''].join('|')
    return {
      name: l.name ?? `${l.limit}-per-${windowText(windowMs)}`,
      rule: counters.rule(policyId, { algorithm: l.algorithm, limit: l.limit, windowMs, burst, whenFull: config.whenFull }),
      windowS: Math.max(1, Math.round(windowMs / 1000)),
      result: newRateLimitResult()
    }
  })
  const policyHeader = limits.map((l) => `"${l.name}";q=${l.rule.limit};w=${l.windowS}`).join(', ')
  const { headers: sendHeaders, status } = config

  const setHeaders = (ctx: RequestContext, l: Limit, r: RateLimitResult): void => {
    const resetS = Math.ceil(r.resetMs / 1000)
    ctx.setResponseHeader('ratelimit-policy', policyHeader)
    ctx.setResponseHeader('ratelimit', `"${l.name}";r=${r.remaining};t=${resetS}`)
    ctx.setResponseHeader('ratelimit-limit', l.rule.limit)
    ctx.setResponseHeader('ratelimit-remaining', r.remaining)
    ctx.setResponseHeader('ratelimit-reset', resetS)
  }

  return {
    onRequest (ctx: RequestContext) {
      const key = keyOf(ctx)
      const now = Date.now()
      let tightest: Limit | undefined
      for (let i = 0; i < limits.length; i++) {
        const l = limits[i] as Limit
        const r = counters.hit(l.rule, key, now, l.result)
        if (!r.admitted) {
          // Limits before this one admitted and counted the request: give that back, so a
          // rejected request consumes no quota anywhere.
          for (let j = 0; j < i; j++) counters.refund((limits[j] as Limit).rule, key, now)
          if (r.tableFull) ctx.log.warn({ policy: l.rule.policyId }, 'rate-limit counter table full')
          const retry = Math.max(1, Math.ceil(r.retryAfterMs / 1000))
          if (sendHeaders) setHeaders(ctx, l, r)
          return ctx.reply(status, {
            code: r.tableFull ? 'RATE_LIMIT_TABLE_FULL' : 'RATE_LIMITED',
            detail: `rate limit ${l.name} exceeded; retry in ${retry} s`,
            headers: { 'retry-after': retry }
          })
        }
        if (tightest === undefined || r.remaining < tightest.result.remaining) tightest = l
      }
      if (sendHeaders && tightest !== undefined) setHeaders(ctx, tightest, tightest.result)
    }
  }
}

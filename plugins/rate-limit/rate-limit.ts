import { toMs } from '../../src/duration.js'
import { newRateLimitResult, RateLimitCounters } from '../../src/rate-limit/counters.js'
import type { CompiledRule, RateLimitResult } from '../../src/rate-limit/counters.js'
import type { HotPath } from '../../src/shared-memory.js'
import type { PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import type { RateLimitConfig } from './schema.js'
import { clusterKeys, redisDownReply, strictArgv } from './cluster.js'
import type { ClusterConfig } from '../../src/cluster/config.js'

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

interface Limit { name: string, rule: CompiledRule, windowS: number, result: RateLimitResult, policyId: string }

/**
 * Builds the limits once per generation: each is a rule in the shared counter table under
 * a policy id made of the scope (the `id` option, else the route's name) and everything
 * that defines the limit, never its position. An unchanged limit keeps its counters
 * across a reload; a changed one starts afresh.
 */
export async function createRateLimit (config: RateLimitConfig, api: PluginApi): Promise<PluginHooks> {
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
      result: newRateLimitResult(),
      policyId
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

  // Cluster mode (src/cluster): in a worker, limits are fleet-wide. A dry run decides
  // nothing, so it never connects.
  const cluster = (api.gateway as { cluster?: ClusterConfig }).cluster
  // Loaded only in cluster mode: a single instance never loads the Redis client.
  const link = cluster !== undefined && api.mode === 'worker' ? await (await import('../../src/cluster/worker-link.js')).workerLink(cluster, api.log) : undefined

  const reject = (ctx: RequestContext, l: Limit, r: RateLimitResult): void => {
    const retry = Math.max(1, Math.ceil(r.retryAfterMs / 1000))
    if (sendHeaders) setHeaders(ctx, l, r)
    ctx.reply(status, {
      code: r.tableFull ? 'RATE_LIMIT_TABLE_FULL' : 'RATE_LIMITED',
      detail: `rate limit ${l.name} exceeded; retry in ${retry} s`,
      headers: { 'retry-after': retry }
    })
  }

  if (link !== undefined && link.cfg.mode === 'strict') {
    // strict: one atomic script on Redis decides every limit of the request, in Redis time.
    const cfg = link.cfg
    link.warm()
    const keysOf = clusterKeys(cfg.prefix, limits.map((l) => l.policyId))
    const argv = strictArgv(limits.map((l) => l.rule))
    const decided = (ctx: RequestContext, r: number[] | undefined): void => {
      if (r === undefined) return redisDownReply(ctx, cfg.onRedisDown)
      const out = newRateLimitResult()
      if (r[0] === 0) {
        const l = limits[(r[1] as number) - 1] as Limit
        out.retryAfterMs = r[2] as number
        out.resetMs = r[3] as number
        return reject(ctx, l, out)
      }
      if (!sendHeaders) return
      let best = 0
      for (let i = 1; i < limits.length; i++) if ((r[2 * i + 1] as number) < (r[2 * best + 1] as number)) best = i
      out.admitted = true
      out.remaining = r[2 * best + 1] as number
      out.resetMs = r[2 * best + 2] as number
      setHeaders(ctx, limits[best] as Limit, out)
    }
    return {
      onRequest (ctx: RequestContext) {
        // The reply is handled in the callback that receives it; the request waits on the
        // returned promise (undefined: Redis known down, already answered).
        return link.strict(keysOf(keyOf(ctx)), argv, (r) => decided(ctx, r))
      }
    }
  }
  const fast = link
  // fast: one admit counter per limit, made here once (worker-link.ts recorder()).
  const recorders = fast === undefined ? undefined : limits.map((l) => fast.recorder(l.policyId, l.rule.algorithm, l.rule.limit, l.rule.windowMs, l.rule.algorithm === 'gcra' ? l.rule.burst : undefined))

  return {
    ...(recorders === undefined ? {} : { close () { for (const r of recorders) r.close() } }),
    onRequest (ctx: RequestContext) {
      // fast: Redis down and fail closed; with allow, the local counters go on deciding.
      if (fast !== undefined && !fast.fastUp && fast.cfg.onRedisDown === 'deny') return redisDownReply(ctx, 'deny')
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
          return reject(ctx, l, r)
        }
        if (tightest === undefined || r.remaining < tightest.result.remaining) tightest = l
      }
      if (recorders !== undefined) for (let i = 0; i < recorders.length; i++) (recorders[i] as (typeof recorders)[number]).record(key)
      if (sendHeaders && tightest !== undefined) setHeaders(ctx, tightest, tightest.result)
    }
  }
}

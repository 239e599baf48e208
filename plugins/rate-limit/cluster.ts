import type { CompiledRule } from '../../src/rate-limit/counters.js'
import type { RequestContext } from '../../src/types.js'
import { countCluster } from '../../src/cluster/stats.js'
import { clientKeyPart, policyDigest } from '../../src/cluster/keys.js'

const ALG = { 'fixed-window': 1, 'sliding-window': 2, gcra: 3 } as const

/**
 * The Redis keys of one client's counters, one per limit: `<prefix>rl:{<client>}:<policy>`.
 * The client part is the hash tag, so one request's keys share a slot on Redis Cluster and
 * its script runs there whole.
 */
export function clusterKeys (prefix: string, policyIds: readonly string[]): (key: string) => string[] {
  const tails = policyIds.map((id) => '}:' + policyDigest(id))
  const head = prefix + 'rl:{'
  return (key) => {
    const k = head + clientKeyPart(key)
    return tails.map((t) => k + t)
  }
}

/** STRICT_LIMIT's ARGV for a rule list (src/cluster/scripts.ts). */
export function strictArgv (rules: readonly CompiledRule[]): number[] {
  return rules.flatMap((r) => [ALG[r.algorithm], r.limit, r.windowMs, r.burst])
}

/** Redis could not decide: onRedisDown says what happens. */
export function redisDownReply (ctx: RequestContext, onRedisDown: 'allow' | 'deny'): void {
  if (onRedisDown === 'allow') {
    countCluster('redisDownAllowed')
    return
  }
  countCluster('redisDownDenied')
  ctx.reply(503, {
    code: 'GW_RATE_LIMIT_UNAVAILABLE',
    detail: 'the fleet-wide rate-limit store (Redis) is unavailable; try again shortly',
    headers: { 'retry-after': 1 }
  })
}

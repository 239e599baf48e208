import { BlockList } from '../../src/block-list.js'
import { publishBlock } from '../../src/cluster/blocks.js'
import type { ReasonCount } from '../../src/block-list.js'
import { toMs } from '../../src/duration.js'
import { codes } from '../../src/errors.js'
import { createIpMatcher } from '../../src/ip/matcher.js'
import { INVALID, parseIp } from '../../src/ip/parse.js'
import { newRateLimitResult, RateLimitCounters } from '../../src/rate-limit/counters.js'
import type { CompiledRule } from '../../src/rate-limit/counters.js'
import type { HotPath } from '../../src/shared-memory.js'
import type { PluginApi, PluginHooks, PrepareApi, RequestContext } from '../../src/types.js'
import type { ThreatGuardConfig, ThreatGuardPrepared } from './schema.js'

const NAME = 'threat-guard'
/** The per-status counters only report; their limit is never what decides. */
const REPORT_LIMIT = 2 ** 22 - 1
/** Reason words a block entry holds (layout.ts BLOCK_REASONS). */
const REASONS_KEPT = 4

// One of each per thread: every instance counts in the same shared tables.
const perThread = new WeakMap<HotPath, { counters: RateLimitCounters, blocks: BlockList }>()

function tablesFor (hot: HotPath): { counters: RateLimitCounters, blocks: BlockList } {
  let t = perThread.get(hot)
  if (t === undefined) {
    t = { counters: new RateLimitCounters(hot), blocks: new BlockList(hot) }
    perThread.set(hot, t)
  }
  return t
}

/** In the acceptor: the allow list goes into the shared IP table once per generation. */
export function prepareThreatGuard (config: ThreatGuardConfig, api: PrepareApi): ThreatGuardPrepared {
  return { allow: config.allow.length === 0 ? -1 : api.ipSet(config.allow, '/allow') }
}

/**
 * In each worker. Two hooks:
 *  - onRequest (connect phase): one lookup in the shared block list; a blocked address is
 *    answered `status` (403) with GW_IP_AUTO_BLOCKED and Retry-After.
 *  - onLog (after the response): the final status is known here, whoever produced it (a
 *    plugin's denial, the gateway's own 400/404/413..., or the upstream). A bad one is
 *    counted per address in the shared rate-limit counter table (sliding window, exact
 *    across workers); the one that reaches `threshold` places the block.
 * The strike counters are keyed by (address, epoch): the block list bumps an address's
 * epoch when a block is placed or lifted, so counting starts afresh after either.
 */
export function createThreatGuard (config: ThreatGuardConfig, api: PluginApi): PluginHooks {
  const prepared = api.prepared as ThreatGuardPrepared | undefined
  if (prepared === undefined) throw new Error('threat-guard: no prepared allow list (prepare() did not run)')
  const { counters, blocks } = tablesFor(api.shared.hotPath)
  const matcher = createIpMatcher(api.shared.hotPath, api.shared.ipRegion)
  const allowSet = prepared.allow
  const windowMs = toMs(config.window)
  const blockMs = toMs(config.blockFor)
  if (windowMs > 2 ** 32 - 1 || blockMs > 2 ** 32 - 1) throw new RangeError('threat-guard: window and blockFor must be under 49 days')
  const { threshold, status: deniedStatus } = config
  const scope = config.id ?? `route:${api.route ?? '*'}`
  const total: CompiledRule = counters.rule(`${NAME}|${scope}|total|${threshold}`, { algorithm: 'sliding-window', limit: threshold, windowMs, whenFull: 'allow' })
  const perStatus = new Map<number, CompiledRule>()
  for (const s of config.statuses) {
    perStatus.set(s, counters.rule(`${NAME}|${scope}|status|${s}`, { algorithm: 'sliding-window', limit: REPORT_LIMIT, windowMs, whenFull: 'allow' }))
  }
  const result = newRateLimitResult()
  const words = new Uint32Array(4)
  const log = api.log
  const fleet = api.gateway.cluster !== undefined

  /** The address parsed into `words`, unless it is invalid or allow-listed. */
  const guarded = (ip: string): typeof INVALID | 4 | 6 => {
    const family = parseIp(ip, words)
    // The gateway resolved the address, so INVALID is a bug: nothing to key a block on.
    if (family === INVALID) return INVALID
    if (allowSet >= 0 && matcher.containsParsed(allowSet, family, words) === true) return INVALID
    return family
  }

  const place = (ctx: RequestContext, family: 4 | 6, key: string, now: number, count: number): void => {
    const reasons: ReasonCount[] = []
    for (const [s, rule] of perStatus) {
      const c = Math.round(counters.count(rule, key, now))
      if (c > 0) reasons.push({ status: s, count: c })
    }
    reasons.sort((a, b) => b.count - a.count)
    const until = now + blockMs
    const placed = blocks.placeParsed(family, words, now, until, count, reasons.slice(0, REASONS_KEPT))
    const ip = ctx.client.ip
    if (placed === 'placed') {
      // In cluster mode the block goes to every instance (src/cluster/blocks.ts).
      if (fleet) publishBlock(ip, until)
      // The security event: one line per block, whichever worker placed it.
      log.warn({ securityEvent: 'ip-auto-blocked', code: codes.GW_IP_AUTO_BLOCKED.code, ip, count, windowMs, reasons: Object.fromEntries(reasons.map((r) => [r.status, r.count])), until: new Date(until).toISOString(), route: ctx.route.name }, 'threat-guard: client address blocked')
    } else if (placed === 'table-full' || placed === 'busy') {
      log.error({ ip, result: placed }, 'threat-guard: could not place a block')
    }
  }

  return {
    onRequest (ctx: RequestContext) {
      const family = guarded(ctx.client.ip)
      if (family === INVALID) return
      const now = Date.now()
      const until = blocks.lookupParsed(family, words, now)
      if (until > now) {
        return ctx.reply(deniedStatus, {
          code: codes.GW_IP_AUTO_BLOCKED.code,
          detail: 'this client address is blocked for a while after too many refused requests',
          headers: { 'retry-after': Math.max(1, Math.ceil((until - now) / 1000)) }
        })
      }
    },
    onLog (ctx: RequestContext) {
      const outcome = ctx.outcome
      const rule = perStatus.get(outcome.status)
      // Our own refusals are not strikes: a blocked client would otherwise stay blocked.
      if (rule === undefined || outcome.repliedBy === NAME) return
      const family = guarded(ctx.client.ip)
      if (family === INVALID) return
      const now = Date.now()
      const found = blocks.lookupParsed(family, words, now)
      if (found > now) return
      const key = ctx.client.ip + '\u001f' + String(-found - 1)
      counters.hit(rule, key, now, result)
      const r = counters.hit(total, key, now, result)
      // remaining 0: this strike reached the threshold. Not admitted: it was reached before
      // and placing the block did not succeed then (lock busy, table full): try again.
      if (r.tableFull || (r.admitted && r.remaining > 0)) return
      place(ctx, family, key, now, threshold)
    }
  }
}

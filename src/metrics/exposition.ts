import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import {
  BUCKETS_MS, CACHE_RESULTS, FIXED, HIST_SLOTS, HIST_SUM, INTROSPECTION_RESULTS, JWKS_RESULTS, METHOD_NAMES, ROUTE_BLOCK_SLOTS,
  ROUTE_DURATION, ROUTE_UPSTREAM, SPAN_RESULTS, STATUS_CLASS_NAMES, UPSTREAM_ERROR_KINDS
} from './layout.js'
import { RegionReader } from './reader.js'
import type { ClusterStats } from '../cluster/stats.js'

type Labels = Record<string, string>
interface Value { labels: Labels, value: number, metricName?: string }
interface Collected { name: string, help: string, type: string, values: Value[], aggregator: 'sum' }

/**
 * A metric family whose values are read from the workers' regions at scrape time. It is
 * handed to prom-client's Registry as a metric (registerMetric needs `name` and `get()`),
 * so prom-client does the text exposition (escaping, HELP/TYPE lines, content type).
 */
class SharedFamily {
  constructor (readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' | 'histogram', readonly read: () => Value[]) {}
  async get (): Promise<Collected> {
    return { name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: 'sum' }
  }
}

/** Sum of every worker's route blocks, by route name (a name may sit at different blocks per worker). */
function sumRoutes (regions: RegionReader[]): Map<string, number[]> {
  const out = new Map<string, number[]>()
  for (const r of regions) {
    const names = r.routes()
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string
      let acc = out.get(name)
      if (acc === undefined) out.set(name, acc = new Array<number>(ROUTE_BLOCK_SLOTS).fill(0))
      for (let k = 0; k < ROUTE_BLOCK_SLOTS; k++) acc[k] = (acc[k] as number) + r.routeSlot(i, k)
    }
  }
  return out
}

function histogram (name: string, blocks: Map<string, number[]>, base: number): Value[] {
  const out: Value[] = []
  for (const [route, acc] of blocks) {
    let count = 0
    for (let k = 0; k < HIST_SLOTS - 1; k++) count += acc[base + k] as number
    if (count === 0) continue
    let cumulative = 0
    for (let k = 0; k < BUCKETS_MS.length; k++) {
      cumulative += acc[base + k] as number
      out.push({ metricName: `${name}_bucket`, labels: { route, le: String((BUCKETS_MS[k] as number) / 1000) }, value: cumulative })
    }
    out.push({ metricName: `${name}_bucket`, labels: { route, le: '+Inf' }, value: count })
    out.push({ metricName: `${name}_sum`, labels: { route }, value: (acc[base + HIST_SUM] as number) / 1e6 })
    out.push({ metricName: `${name}_count`, labels: { route }, value: count })
  }
  return out
}

/** What the acceptor feeds in: per-slot regions and its own events. */
export interface MetricsSources {
  regions: readonly SharedArrayBuffer[]
  generation: () => number
  /** threat-guard's block list in shared memory (src/block-list.ts blockStats). */
  blocks?: () => { autoblocksTotal: number, blockedIps: number, tableFull: number }
  /** Cluster mode's counters (src/cluster/stats.ts clusterStats). */
  cluster?: () => ClusterStats
}

/**
 * The gateway's /metrics: prom-client's Registry with the acceptor's own counters (worker
 * restarts, config updates) and families summed from every worker's shared-memory region.
 */
export class GatewayMetrics {
  readonly registry = new Registry()
  readonly #restarts: Counter
  readonly #updates: Counter<'result'>

  constructor (src: MetricsSources) {
    const regions = src.regions.map((r) => new RegionReader(r))
    const reg = this.registry
    collectDefaultMetrics({ register: reg })
    this.#restarts = new Counter({ name: 'tollgate_worker_restarts_total', help: 'Worker threads that died and were replaced', registers: [reg] })
    this.#updates = new Counter({ name: 'tollgate_config_updates_total', help: 'Policy updates by result: applied, refused (invalid, conflict; nothing changed), rolled_back (built, then aborted on every worker)', labelNames: ['result'], registers: [reg] })
    for (const result of ['applied', 'refused', 'rolled_back']) this.#updates.inc({ result }, 0)
    const generation = src.generation
    // eslint-disable-next-line no-new
    new Gauge({ name: 'tollgate_config_generation', help: 'The config generation new requests run under', registers: [reg], collect () { this.set(generation()) } })

    const fixed = (slot: number): number => regions.reduce((a, r) => a + r.slot(slot), 0)
    const byLabel = (label: string, names: readonly string[], base: number): Value[] => names.map((n, i) => ({ labels: { [label]: n }, value: fixed(base + i) }))
    let routes: Map<string, number[]> | undefined
    // One pass over the route blocks serves the three route families of a scrape: the first
    // of them reads, the last drops the snapshot.
    const blocks = (): Map<string, number[]> => (routes ??= sumRoutes(regions))
    const families = [
      new SharedFamily('tollgate_requests_total', 'Requests answered, by route, method and status class', 'counter', () => {
        const out: Value[] = []
        for (const [route, acc] of blocks()) {
          for (let m = 0; m < METHOD_NAMES.length; m++) {
            for (let c = 0; c < STATUS_CLASS_NAMES.length; c++) {
              const v = acc[m * 5 + c] as number
              if (v > 0) out.push({ labels: { route, method: METHOD_NAMES[m] as string, status_class: STATUS_CLASS_NAMES[c] as string }, value: v })
            }
          }
        }
        return out
      }),
      new SharedFamily('tollgate_request_duration_seconds', 'Time from the request head to the end of the response, by route', 'histogram', () => histogram('tollgate_request_duration_seconds', blocks(), ROUTE_DURATION)),
      new SharedFamily('tollgate_upstream_duration_seconds', 'Time from sending upstream to the upstream response headers, by route', 'histogram', () => {
        const out = histogram('tollgate_upstream_duration_seconds', blocks(), ROUTE_UPSTREAM)
        routes = undefined
        return out
      }),
      new SharedFamily('tollgate_denials_total', 'Requests refused, by the plugin that refused them (gateway: HTTP hardening, routing, auth gate) and reason code', 'counter', () => {
        const sums = new Map<string, Value>()
        for (const r of regions) {
          const keys = r.denials()
          for (let i = 0; i < keys.length; i++) {
            const { plugin, code } = keys[i] as { plugin: string, code: string }
            const k = `${plugin}\n${code}`
            const v = sums.get(k)
            if (v === undefined) sums.set(k, { labels: { plugin, code }, value: r.denialSlot(i) })
            else v.value += r.denialSlot(i)
          }
        }
        return [...sums.values()]
      }),
      new SharedFamily('tollgate_upstream_errors_total', 'Upstream requests that failed, by kind', 'counter', () => byLabel('kind', UPSTREAM_ERROR_KINDS, FIXED.upstreamErrors)),
      new SharedFamily('tollgate_active_connections', 'Open client connections, all workers', 'gauge', () => [{ labels: {}, value: fixed(FIXED.activeConnections) }]),
      new SharedFamily('tollgate_jwks_fetches_total', 'JWKS fetches by jwt-auth, by result', 'counter', () => byLabel('result', JWKS_RESULTS, FIXED.jwksFetches)),
      new SharedFamily('tollgate_introspection_requests_total', 'Token introspection calls to the authorization server, by result', 'counter', () => byLabel('result', INTROSPECTION_RESULTS, FIXED.introspection)),
      new SharedFamily('tollgate_introspection_cache_total', 'Introspection cache lookups, by result (hit ratio = hit / (hit + miss))', 'counter', () => byLabel('result', CACHE_RESULTS, FIXED.introspectionCache)),
      new SharedFamily('tollgate_trace_spans_total', 'Spans given to the OTLP exporter, by result', 'counter', () => byLabel('result', SPAN_RESULTS, FIXED.spans)),
      new SharedFamily('tollgate_security_events_total', 'Security events written (one per denial, when the security log is on)', 'counter', () => [{ labels: {}, value: fixed(FIXED.securityEvents) }])
    ]
    const blockList = src.blocks
    if (blockList !== undefined) {
      // blockedIps walks the whole block table: read once per scrape (the first family of
      // the three reads, the last drops it), as with the route blocks above.
      let snap: ReturnType<typeof blockList> | undefined
      const stats = (): ReturnType<typeof blockList> => (snap ??= blockList())
      families.push(
        new SharedFamily('tollgate_autoblocks_total', 'Addresses threat-guard put on its temporary deny list', 'counter', () => [{ labels: {}, value: stats().autoblocksTotal }]),
        new SharedFamily('tollgate_blocked_ips', 'Addresses on the temporary deny list now', 'gauge', () => [{ labels: {}, value: stats().blockedIps }]),
        new SharedFamily('tollgate_autoblock_table_full_total', 'Blocks not placed because the block table had no free slot near the address', 'counter', () => {
          const value = stats().tableFull
          snap = undefined
          return [{ labels: {}, value }]
        })
      )
    }
    const cluster = src.cluster
    if (cluster !== undefined) {
      const c = (name: string, help: string, pick: (s: ClusterStats) => number, type: 'counter' | 'gauge' = 'counter'): SharedFamily =>
        new SharedFamily(name, help, type, () => { const s = cluster(); return s.enabled ? [{ labels: {}, value: pick(s) }] : [] })
      families.push(
        c('tollgate_cluster_redis_up', 'Cluster mode: 1 while the connection to Redis is ready', (s) => s.redisUp, 'gauge'),
        c('tollgate_cluster_redis_errors_total', 'Cluster mode: Redis calls that failed or timed out', (s) => s.redisErrors),
        c('tollgate_cluster_redis_down_allowed_total', 'Cluster mode: requests let through while Redis was down (onRedisDown: allow)', (s) => s.redisDownAllowed),
        c('tollgate_cluster_redis_down_denied_total', 'Cluster mode: requests refused while Redis was down (onRedisDown: deny)', (s) => s.redisDownDenied),
        c('tollgate_cluster_strict_decisions_total', 'Cluster mode: rate-limit decisions made by Redis (strict)', (s) => s.strictDecisions),
        c('tollgate_cluster_fast_syncs_total', 'Cluster mode: counter synchronisations with Redis (fast)', (s) => s.fastSyncs),
        c('tollgate_cluster_policy_version', 'Cluster mode: the fleet policy version this instance runs', (s) => s.policyVersion, 'gauge'),
        c('tollgate_cluster_policy_applied_total', 'Cluster mode: fleet policy versions applied here', (s) => s.policyApplied),
        c('tollgate_cluster_policy_refused_total', 'Cluster mode: fleet policy versions this instance refused', (s) => s.policyRefused),
        c('tollgate_cluster_blocks_published_total', 'Cluster mode: auto-blocks this instance announced to the fleet', (s) => s.blocksPublished),
        c('tollgate_cluster_blocks_received_total', 'Cluster mode: fleet auto-blocks placed here from another instance', (s) => s.blocksReceived),
        c('tollgate_cluster_unblocks_published_total', 'Cluster mode: block lifts (DELETE /blocks/:ip) this instance announced to the fleet', (s) => s.unblocksPublished),
        c('tollgate_cluster_unblocks_received_total', 'Cluster mode: fleet block lifts applied here', (s) => s.unblocksReceived)
      )
    }
    for (const f of families) reg.registerMetric(f as never)
  }

  workerRestarted (): void { this.#restarts.inc() }

  configUpdate (result: 'applied' | 'refused' | 'rolled_back'): void { this.#updates.inc({ result }) }

  get contentType (): string { return this.registry.contentType }

  async text (): Promise<string> { return await this.registry.metrics() }
}

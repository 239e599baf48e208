/*
 * The metrics region of one worker slot: a SharedArrayBuffer the acceptor makes once per
 * slot at start and hands to whichever thread serves that slot (a replacement thread goes on
 * counting where the dead one stopped, so counters never go backwards). Only that thread
 * writes it; the acceptor reads every region when /metrics is scraped and sums them. A
 * scrape never waits for, or sends anything to, a worker.
 *
 *   +0      header, Int32 words (Atomics):
 *             HDR_ROUTES    route blocks published (entries 0 .. HDR_ROUTES-1 are valid)
 *             HDR_DENIALS   denial keys published
 *             HDR_HEAP      bytes of the name heap in use (writer's own bookkeeping)
 *   +64     entry table: (MAX_ROUTES + MAX_DENIALS) x (u32 heap offset, u32 byte length)
 *           route r is entry r; denial key d is entry MAX_ROUTES + d
 *   +...    name heap: UTF-8 names (a route's name; a denial's `plugin\ncode`)
 *   +...    slots: BigInt64 counters, 8-byte aligned, updated with Atomics.add
 *             fixed slots (FIXED_*), then MAX_DENIALS denial counters, then MAX_ROUTES
 *             route blocks of ROUTE_BLOCK_SLOTS
 *
 * Publication is race-free without locks: the writer fills a name and its entry with plain
 * stores, then raises the count with Atomics.store; the reader loads the count with
 * Atomics.load and reads only entries below it. Atomics are sequentially consistent, so the
 * plain stores before the store are visible after the load (the same pattern as
 * HDR_IP_LIVE in wasm/layout.ts). Counters are BigInt64 and only ever touched with
 * Atomics, so a read never tears (the JS memory model lets plain Float64 reads tear).
 */

/** Methods with a label of their own; anything else counts as OTHER (bounded cardinality). */
export const METHOD_NAMES = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'] as const
export const METHOD_OTHER = 7
export const STATUS_CLASS_NAMES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const

/** Histogram upper bounds in milliseconds (exposed in seconds): a gateway's latencies start well under 1 ms. */
export const BUCKETS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const
/** Buckets, then +Inf, then the sum in microseconds (the count is the sum of the buckets). */
export const HIST_SLOTS = BUCKETS_MS.length + 2
export const HIST_SUM = BUCKETS_MS.length + 1

/** A route block: requests by method x status class, then the two histograms. */
export const ROUTE_REQUESTS = 0
export const ROUTE_DURATION = METHOD_NAMES.length * STATUS_CLASS_NAMES.length
export const ROUTE_UPSTREAM = ROUTE_DURATION + HIST_SLOTS
export const ROUTE_BLOCK_SLOTS = ROUTE_UPSTREAM + HIST_SLOTS

/** Route blocks per worker; routes past it share the `_overflow` block (its name is entry MAX_ROUTES - 1). */
export const MAX_ROUTES = 4096
/** Distinct (plugin, code) denial keys per worker; more share `_overflow`/`_overflow`. */
export const MAX_DENIALS = 1024
/** Bytes for names: route names and denial keys. */
export const HEAP_BYTES = 1 << 20

export const HDR_ROUTES = 0
export const HDR_DENIALS = 1
export const HDR_HEAP = 2
const HEADER_BYTES = 64
export const ENTRY_OFFSET = HEADER_BYTES
export const ENTRIES = MAX_ROUTES + MAX_DENIALS
export const HEAP_OFFSET = ENTRY_OFFSET + ENTRIES * 8
export const SLOTS_OFFSET = HEAP_OFFSET + HEAP_BYTES

/** Upstream error kinds (tollgate_upstream_errors_total{kind}). */
export const UPSTREAM_ERROR_KINDS = ['refused', 'reset', 'timeout', 'bad_framing', 'dns', 'other'] as const
export type UpstreamErrorKind = typeof UPSTREAM_ERROR_KINDS[number]

/** Fixed counters: one slot per label value, at these indexes. */
export const FIXED = {
  activeConnections: 0,
  upstreamErrors: 1, // + kind index
  jwksFetches: 16, // ok, error
  introspection: 20, // active, inactive, error
  introspectionCache: 24, // hit, miss
  spans: 28, // exported, dropped, failed
  securityEvents: 32, // written
  accessLines: 33 // written
} as const
export const JWKS_RESULTS = ['ok', 'error'] as const
export const INTROSPECTION_RESULTS = ['active', 'inactive', 'error'] as const
export const CACHE_RESULTS = ['hit', 'miss'] as const
export const SPAN_RESULTS = ['exported', 'dropped', 'failed'] as const
export const FIXED_SLOTS = 64

export const DENIAL_SLOTS = FIXED_SLOTS
export const ROUTE_SLOTS = DENIAL_SLOTS + MAX_DENIALS
export const TOTAL_SLOTS = ROUTE_SLOTS + MAX_ROUTES * ROUTE_BLOCK_SLOTS
/** Bytes of one worker's region (about 3.5 MiB of address space; untouched pages cost no memory). */
export const REGION_BYTES = SLOTS_OFFSET + TOTAL_SLOTS * 8

/** The label of requests that matched no route (404, 405, refusals before routing). */
export const NO_ROUTE = ''
export const OVERFLOW = '_overflow'

import { duration } from '../../src/schema-parts.js'

/** RFC 9110 §15.1: the status codes heuristically cacheable (206 left out: no ranges here). */
export const DEFAULT_STATUSES = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] as const

// maxEntries is bounded because lru-cache allocates its index arrays for `max` slots up
// front, per cache, per worker thread.
export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    defaultTtl: { ...duration, default: 0, description: 'Freshness of a cacheable response that gives none (no max-age, s-maxage or Expires). 0: such responses are not stored' },
    maxTtl: { ...duration, default: '1h', description: 'Upper bound on any freshness lifetime, whatever the upstream says' },
    maxEntries: { type: 'integer', minimum: 1, maximum: 1000000, default: 10000, description: 'Responses kept per worker thread (least recently used dropped first)' },
    maxBytes: { type: 'integer', minimum: 1024, maximum: 17179869184, default: 67108864, description: 'Bytes kept per worker thread (bodies, headers and keys)' },
    maxEntrySize: { type: 'integer', minimum: 1, maximum: 1073741824, default: 1048576, description: 'A response larger than this (body bytes) is not stored; collecting stops once it is passed' },
    statuses: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'integer', minimum: 200, maximum: 599, not: { enum: [206, 304] } }, default: [...DEFAULT_STATUSES], description: 'Status codes that may be stored (206 and 304 cannot: they are not whole responses)' },
    authorized: { type: 'string', enum: ['rfc', 'consumer'], default: 'rfc', description: "Requests with Authorization: 'rfc' stores their responses only when marked public or s-maxage (RFC 9111 §3.5); 'consumer' also stores them when the gateway authenticated the request (the key holds the consumer)" },
    sortQuery: { type: 'boolean', default: false, description: 'Key on the query parameters sorted by name (a=1&b=2 and b=2&a=1 share an entry)' },
    header: { type: 'string', pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]{1,64}$', default: 'X-Cache', description: 'Response header that says HIT, MISS or BYPASS' },
    lockTimeout: { ...duration, default: '5s', description: 'How long a request waits for a concurrent request for the same key to fill the entry before going upstream itself. 0: no coalescing' }
  }
} as const

export interface ProxyCacheConfig {
  defaultTtl: number | string
  maxTtl: number | string
  maxEntries: number
  maxBytes: number
  maxEntrySize: number
  statuses: number[]
  authorized: 'rfc' | 'consumer'
  sortQuery: boolean
  header: string
  lockTimeout: number | string
}

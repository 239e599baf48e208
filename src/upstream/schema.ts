/**
 * The JSON Schema of a route's `upstream` block and of its path rewrite. Kept apart from
 * src/config-schema.ts because it is large; no defaults here (an `anyOf` with a plain URL
 * cannot carry them): src/upstream/spec.ts fills them in, in one place.
 */
import { duration, httpUrl } from '../schema-parts.js'

const healthCheck = {
  type: 'object',
  additionalProperties: false,
  required: ['path'],
  description: 'Active HTTP probes, run once per gateway (in the acceptor); every worker reads the result',
  properties: {
    path: { type: 'string', pattern: '^/[\\x21-\\x7e]*$', description: 'Path probed on every target' },
    interval: { ...duration, description: 'Time between probes of a target; default 5s' },
    timeout: { ...duration, description: 'A probe without an answer in this time failed; default 2s' },
    healthyThreshold: { type: 'integer', minimum: 1, maximum: 100, description: 'Consecutive good probes that bring an unhealthy target back; default 2' },
    unhealthyThreshold: { type: 'integer', minimum: 1, maximum: 100, description: 'Consecutive failed probes that take a target out; default 3' },
    statuses: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'integer', minimum: 100, maximum: 599 }, description: 'Statuses that count as healthy; default any 2xx' }
  }
} as const

const passive = {
  type: 'object',
  additionalProperties: false,
  description: "Outlier detection (Envoy's defaults): eject a target after consecutive 5xx or connect failures",
  properties: {
    consecutiveFailures: { type: 'integer', minimum: 0, maximum: 1000, description: '5xx answers or connect failures in a row that eject a target; 0 turns passive checks off; default 5' },
    baseEjectionTime: { ...duration, description: 'First ejection lasts this long, the nth n times as long; default 30s' },
    maxEjectionTime: { ...duration, description: 'Longest ejection; default 300s' },
    maxEjectionPercent: { type: 'integer', minimum: 0, maximum: 100, description: 'Most targets ejected at once, in percent (at least one may always be); default 10' }
  }
} as const

const retries = {
  type: 'object',
  additionalProperties: false,
  description: 'Retries of failed attempts, on another target when there is one',
  properties: {
    attempts: { type: 'integer', minimum: 0, maximum: 10, description: 'Retries after the first attempt; default 2 (0: none)' },
    backoff: { ...duration, description: 'Base of the exponential backoff with full jitter; default 25ms' },
    maxBackoff: { ...duration, description: 'Longest backoff; default 250ms' },
    statuses: { type: 'array', uniqueItems: true, items: { type: 'integer', minimum: 500, maximum: 599 }, description: 'Upstream statuses retried (idempotent methods only); default [502, 503, 504]' },
    budgetPercent: { type: 'integer', minimum: 0, maximum: 100, description: 'Retries in flight at most this percent of requests in flight to the upstream; default 20' },
    minRetryConcurrency: { type: 'integer', minimum: 0, maximum: 10000, description: 'Retries always allowed in flight whatever the percent; default 3' }
  }
} as const

const breaker = {
  type: 'object',
  additionalProperties: false,
  description: 'Circuit breaker for the whole upstream, across every worker: over a limit the gateway answers 503',
  properties: {
    maxConnections: { type: 'integer', minimum: 1, maximum: 1000000, description: 'Open connections to the upstream; default 1024' },
    maxPending: { type: 'integer', minimum: 0, maximum: 1000000, description: 'Requests waiting for a connection; default 1024' },
    maxRequests: { type: 'integer', minimum: 1, maximum: 1000000, description: 'Requests in flight to the upstream; default 1024' }
  }
} as const

/** `header:x-user` names a header; `ip` and `consumer` are the resolved client and consumer. */
const hashOn = { type: 'string', pattern: "^(ip|consumer|header:[A-Za-z0-9!#$%&'*+.^_`|~-]+)$", description: 'What consistent-hash keys on: ip, consumer or header:NAME; default ip' } as const

/** How https:// targets of an upstream are verified (src/tls/upstream.ts). */
const upstreamTls = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ca: { type: 'string', minLength: 1, description: 'PEM file of the CA certificate(s) the upstream certificate must chain to (relative to the config file); default: the system CA store' },
    servername: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.-]+$', description: 'SNI name sent and checked against the certificate; default: the target host' },
    insecureSkipVerify: { type: 'boolean', description: 'Accept any upstream certificate (default false). Logged as a warning on every start and update' }
  }
} as const

export const upstreamSchema = {
  anyOf: [
    httpUrl,
    {
      type: 'object',
      additionalProperties: false,
      required: ['targets'],
      properties: {
        targets: {
          type: 'array',
          minItems: 1,
          maxItems: 256,
          items: {
            anyOf: [
              httpUrl,
              {
                type: 'object',
                additionalProperties: false,
                required: ['url'],
                properties: { url: httpUrl, weight: { type: 'integer', minimum: 1, maximum: 1000, description: 'Relative share of requests; default 1' } }
              }
            ]
          }
        },
        balance: { type: 'string', enum: ['round-robin', 'least-request', 'consistent-hash'], description: 'How a target is chosen; default round-robin (smooth, weighted)' },
        hashOn,
        connections: { type: 'integer', minimum: 1, maximum: 10000, description: 'Max connections per target per worker; default 128' },
        bufferBody: { type: 'integer', minimum: 0, maximum: 16777216, description: 'Request bodies with a Content-Length up to this many bytes are read before proxying, and only such bodies can be retried; default 65536' },
        healthCheck,
        passive,
        retries,
        breaker,
        tls: upstreamTls
      }
    }
  ]
} as const

export const rewriteSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['pattern', 'replacement'],
  description: "Regex replace on the upstream path (after stripPrefix), run on V8's linear-time engine: patterns it cannot run in linear time are refused",
  properties: {
    pattern: { type: 'string', minLength: 1, maxLength: 1024 },
    replacement: { type: 'string', maxLength: 1024, pattern: "^([A-Za-z0-9._~!&'()*+,;=:@/%-]|\\$[0-9]{1,2}|\\$<[A-Za-z_][A-Za-z0-9_]*>|\\$\\$)*$", description: 'Path characters, and $1 or $<name> for groups' }
  }
} as const

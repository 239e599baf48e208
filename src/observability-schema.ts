import { positiveDuration as duration } from './schema-parts.js'

/**
 * Config blocks for what the gateway reports about itself (top-level keys `metrics`,
 * `tracing` and `securityLog`). GET /metrics is on the admin API (admin/schema.ts).
 */

export const metricsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean', default: true, description: 'Count requests per route (tollgate_requests_total and the duration histograms); off only to measure their cost' }
  },
  default: {}
} as const

export const tracingSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    propagate: { type: 'boolean', default: true, description: 'W3C traceparent/tracestate: continue a valid one, start a trace when absent, replace a malformed one; the gateway span is the upstream parent' },
    otlp: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      description: 'Export one span per request as OTLP/HTTP JSON (off unless set)',
      properties: {
        url: { type: 'string', format: 'http-url', description: 'The collector endpoint, used as given, e.g. http://127.0.0.1:4318/v1/traces' },
        headers: { type: 'object', additionalProperties: { type: 'string' }, default: {}, description: 'Extra request headers (an API key for the collector)' },
        sampleRate: { type: 'number', minimum: 0, maximum: 1, default: 1, description: 'Share of new traces recorded; a continued trace keeps its caller\'s sampled flag' },
        batchSize: { type: 'integer', minimum: 1, maximum: 10000, default: 512, description: 'Spans per POST' },
        flushInterval: { ...duration, default: 1000, description: 'Longest time a span waits for its batch' },
        maxQueue: { type: 'integer', minimum: 1, maximum: 1000000, default: 8192, description: 'Spans held per worker; more are dropped (counted), never waited for' },
        timeout: { ...duration, default: 10000, description: 'Time a POST to the collector may take' }
      }
    }
  },
  default: {}
} as const

export const securityLogSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    destination: { type: 'string', minLength: 1, description: "Where security events go: 'stdout', 'stderr' or a file path (relative to the config file); off when unset" }
  },
  default: {}
} as const

export interface TracingConfig {
  propagate: boolean
  otlp?: { url: string, headers: Record<string, string>, sampleRate: number, batchSize: number, flushInterval: number, maxQueue: number, timeout: number }
}

export interface MetricsConfig { enabled: boolean }

export interface SecurityLogConfig { destination?: string }

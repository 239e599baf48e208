import type { Logger } from 'pino'
import { pino } from 'pino'
import type { Context } from './context.js'
import { codes } from './errors.js'
import type { GatewayConfig } from './config-schema.js'
import { destinationFor } from './log-destination.js'
import { FIXED } from './metrics/layout.js'
import { methodIndex, threadMetrics } from './metrics/writer.js'
import type { OtlpAttribute, OtlpExporter, OtlpSpan } from './tracing/otlp.js'
import { exporterFor } from './tracing/otlp.js'
import { startTrace } from './tracing/traceparent.js'
import type { TraceContext } from './tracing/traceparent.js'

/**
 * Whether a finished request was a denial: refused by a plugin, or by the gateway with a
 * 4xx (hardening, routing, auth gate, body limits). A proxied answer is the upstream's,
 * never a denial; the gateway's own 5xx (upstream down, plugin bug) are errors, not denials.
 */
export function isDenial (status: number, repliedBy: string | undefined, code: string | undefined): boolean {
  if (status < 400) return false
  if (status < 500) return repliedBy !== undefined || code !== undefined
  // Hardening refusals that HTTP puts in 5xx: what the client sent, not a gateway failure.
  if (code === codes.GW_NOT_IMPLEMENTED.code || code === codes.GW_VERSION_NOT_SUPPORTED.code) return true
  return repliedBy !== undefined && repliedBy !== 'gateway' && code !== codes.GW_PLUGIN_FAILURE.code
}

const NO_TRACE = (): undefined => undefined

/** ms on the monotonic clock -> OTLP's unix nanoseconds as a decimal string. */
function unixNano (perfMs: number): string {
  const ms = performance.timeOrigin + perfMs
  const whole = Math.floor(ms)
  return (BigInt(whole) * 1000000n + BigInt(Math.round((ms - whole) * 1e6))).toString()
}

const str = (key: string, v: string): OtlpAttribute => ({ key, value: { stringValue: v } })
const int = (key: string, v: number): OtlpAttribute => ({ key, value: { intValue: String(v) } })
const dbl = (key: string, v: number): OtlpAttribute => ({ key, value: { doubleValue: v } })

/**
 * What a generation does at the start and end of every request besides the policies:
 * trace context, metrics, the security event log and the OTLP span. Built once per
 * generation per worker (dry runs get the inert one: no file is opened in the acceptor).
 */
export class Observer {
  readonly trace: (ctx: Context) => TraceContext | undefined
  readonly #security: Logger | undefined
  readonly #exporter: OtlpExporter | undefined
  readonly #count: boolean

  constructor (config: GatewayConfig, configDir: string, log: Logger, live: boolean) {
    this.#count = config.metrics?.enabled !== false
    const t = config.tracing
    const otlp = live ? t?.otlp : undefined
    this.#exporter = otlp === undefined ? undefined : exporterFor(otlp, log)
    const rate = otlp?.sampleRate ?? 0
    const sample = rate >= 1 ? () => true : rate <= 0 ? () => false : () => Math.random() < rate
    this.trace = t?.propagate === false
      ? NO_TRACE
      : (ctx) => {
          const h = ctx.headers
          const trace = startTrace(h.traceparent, h.tracestate, sample)
          // Plugin timings are kept only for a span that will be exported.
          if (trace.sampled && this.#exporter !== undefined) ctx.hookTimes = []
          return trace
        }
    const dest = live ? config.securityLog?.destination : undefined
    this.#security = dest === undefined
      ? undefined
      : pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' }, destinationFor(dest, configDir))
  }

  /** The request is over: count it, and write its security event and span. */
  end (ctx: Context, block: number): void {
    const o = ctx.outcome
    const m = threadMetrics()
    const duration = ctx.elapsed()
    if (this.#count) m.request(block, methodIndex(ctx.method), o.status, duration, o.upstreamMs)
    if (isDenial(o.status, o.repliedBy, o.code)) {
      const plugin = o.repliedBy ?? 'gateway'
      const code = o.code ?? 'UNSPECIFIED'
      m.denial(plugin, code)
      if (this.#security !== undefined) {
        m.add(FIXED.securityEvents)
        this.#security.warn({
          event: 'denial', code, status: o.status, plugin, route: ctx.route.name, method: ctx.method, path: ctx.path,
          client: ctx.client.ip, peer: ctx.client.peerIp !== ctx.client.ip ? ctx.client.peerIp : undefined,
          consumer: ctx.consumer?.id, id: ctx.id === '' ? undefined : ctx.id, traceId: ctx.trace?.traceId, generation: ctx.generation
        }, 'security')
      }
    }
    const trace = ctx.trace
    if (trace !== undefined && trace.sampled && this.#exporter !== undefined) this.#exporter.add(this.#span(ctx, trace, duration))
  }

  /** A request the HTTP parser refused before it had a route (400, 431, 408...). */
  refused (status: number, code: string, client: string | undefined): void {
    threadMetrics().denial('gateway', code)
    if (this.#security !== undefined) {
      threadMetrics().add(FIXED.securityEvents)
      this.#security.warn({ event: 'denial', code, status, plugin: 'gateway', route: '', client }, 'security')
    }
  }

  #span (ctx: Context, trace: TraceContext, duration: number): OtlpSpan {
    const o = ctx.outcome
    const start = ctx.startedAt
    const attributes: OtlpAttribute[] = [
      str('http.request.method', ctx.method), str('url.path', ctx.path), str('http.route', ctx.route.name),
      int('http.response.status_code', o.status), str('client.address', ctx.client.ip), int('tollgate.generation', ctx.generation)
    ]
    if (ctx.consumer !== undefined) attributes.push(str('tollgate.consumer', ctx.consumer.id))
    if (o.repliedBy !== undefined) attributes.push(str('tollgate.replied_by', o.repliedBy))
    if (o.code !== undefined) attributes.push(str('tollgate.code', o.code))
    if (o.upstream !== undefined) attributes.push(str('tollgate.upstream', o.upstream))
    if (o.aborted) attributes.push({ key: 'tollgate.aborted', value: { boolValue: true } })
    const events: OtlpSpan['events'] = []
    const times = ctx.hookTimes ?? []
    // Flat triples: plugin name, start, end (ms on the monotonic clock).
    for (let i = 0; i + 2 < times.length; i += 3) {
      const name = times[i] as string
      const t0 = times[i + 1] as number
      const t1 = times[i + 2] as number
      events.push({ timeUnixNano: unixNano(t0), name: `plugin ${name}`, attributes: [str('tollgate.plugin', name), dbl('tollgate.duration_ms', t1 - t0)] })
    }
    if (o.upstreamMs !== undefined) attributes.push(dbl('tollgate.upstream_ms', o.upstreamMs))
    const span: OtlpSpan = {
      traceId: trace.traceId,
      spanId: trace.spanId,
      name: ctx.route.name === '' ? ctx.method : `${ctx.method} ${ctx.route.name}`,
      kind: 2, // SPAN_KIND_SERVER
      startTimeUnixNano: unixNano(start),
      endTimeUnixNano: unixNano(start + duration),
      attributes,
      events,
      status: o.status >= 500 ? { code: 2, message: o.code ?? String(o.status) } : { code: 0 }
    }
    if (trace.parentSpanId !== undefined) span.parentSpanId = trace.parentSpanId
    return span
  }
}

import { Pool } from 'undici'
import type { Logger } from 'pino'
import { FIXED } from '../metrics/layout.js'
import { threadMetrics } from '../metrics/writer.js'
import { VERSION } from '../version.js'

/** `tracing.otlp` after validation. */
export interface OtlpConfig {
  url: string
  headers: Record<string, string>
  sampleRate: number
  batchSize: number
  flushInterval: number
  maxQueue: number
  timeout: number
}

/** One span in OTLP/JSON form (ids hex, times as decimal-string nanoseconds). */
export interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  startTimeUnixNano: string
  endTimeUnixNano: string
  attributes: OtlpAttribute[]
  events: Array<{ timeUnixNano: string, name: string, attributes: OtlpAttribute[] }>
  status: { code: number, message?: string }
}

export interface OtlpAttribute { key: string, value: { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean } }

const SPANS_EXPORTED = FIXED.spans
const SPANS_DROPPED = FIXED.spans + 1
const SPANS_FAILED = FIXED.spans + 2

/**
 * Batches spans and POSTs them as OTLP/HTTP JSON (`/v1/traces` body) to the configured URL.
 * Never blocks a request: `add` pushes onto a bounded queue (full: the span is dropped and
 * counted); sending happens on a timer or when a batch is full, one POST in flight at a
 * time; a failed POST drops its batch (counted, logged at most every 10 s). One exporter
 * per URL and thread, shared by the generations that use it.
 */
export class OtlpExporter {
  readonly #cfg: OtlpConfig
  readonly #log: Logger
  readonly #pool: Pool
  readonly #path: string
  #queue: OtlpSpan[] = []
  #timer: NodeJS.Timeout | undefined
  #inFlight: Promise<void> | undefined
  #lastWarn = 0

  constructor (cfg: OtlpConfig, log: Logger) {
    this.#cfg = cfg
    this.#log = log
    const u = new URL(cfg.url)
    this.#pool = new Pool(u.origin, { connections: 2 })
    this.#path = u.pathname + u.search
  }

  add (span: OtlpSpan): void {
    if (this.#queue.length >= this.#cfg.maxQueue) {
      threadMetrics().add(SPANS_DROPPED)
      return
    }
    this.#queue.push(span)
    if (this.#queue.length >= this.#cfg.batchSize) this.#kick()
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => { this.#timer = undefined; this.#kick() }, this.#cfg.flushInterval)
      this.#timer.unref()
    }
  }

  #kick (): void {
    if (this.#inFlight !== undefined || this.#queue.length === 0) return
    const batch = this.#queue.splice(0, this.#cfg.batchSize)
    this.#inFlight = this.#send(batch).finally(() => {
      this.#inFlight = undefined
      if (this.#queue.length >= this.#cfg.batchSize) this.#kick()
      else if (this.#queue.length > 0 && this.#timer === undefined) {
        this.#timer = setTimeout(() => { this.#timer = undefined; this.#kick() }, this.#cfg.flushInterval)
        this.#timer.unref()
      }
    })
  }

  async #send (spans: OtlpSpan[]): Promise<void> {
    const body = JSON.stringify({
      resourceSpans: [{
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'tollgate' } }, { key: 'service.version', value: { stringValue: VERSION } }] },
        scopeSpans: [{ scope: { name: 'tollgate', version: VERSION }, spans }]
      }]
    })
    try {
      const res = await this.#pool.request({
        method: 'POST',
        path: this.#path,
        headers: { ...this.#cfg.headers, 'content-type': 'application/json' },
        body,
        headersTimeout: this.#cfg.timeout,
        bodyTimeout: this.#cfg.timeout
      })
      await res.body.dump()
      if (res.statusCode >= 300) throw new Error(`collector answered ${res.statusCode}`)
      threadMetrics().add(SPANS_EXPORTED, BigInt(spans.length))
    } catch (err) {
      threadMetrics().add(SPANS_FAILED, BigInt(spans.length))
      const now = Date.now()
      if (now - this.#lastWarn > 10_000) {
        this.#lastWarn = now
        this.#log.warn({ url: this.#cfg.url, reason: (err as Error).message, spans: spans.length }, 'OTLP export failed; spans dropped')
      }
    }
  }

  /** Send what is queued (at shutdown), waiting at most `ms`. */
  async flush (ms = 2000): Promise<void> {
    const deadline = Date.now() + ms
    if (this.#timer !== undefined) { clearTimeout(this.#timer); this.#timer = undefined }
    while (Date.now() < deadline && (this.#queue.length > 0 || this.#inFlight !== undefined)) {
      this.#kick()
      const wait = this.#inFlight ?? Promise.resolve()
      await Promise.race([wait, new Promise((resolve) => setTimeout(resolve, Math.max(1, deadline - Date.now())).unref())])
    }
  }

  async close (): Promise<void> {
    await this.flush()
    await this.#pool.close().catch(() => {})
  }
}

const exporters = new Map<string, OtlpExporter>()

/** This thread's exporter for a config (same URL and settings: the same one). */
export function exporterFor (cfg: OtlpConfig, log: Logger): OtlpExporter {
  const key = JSON.stringify(cfg)
  let e = exporters.get(key)
  if (e === undefined) exporters.set(key, e = new OtlpExporter(cfg, log))
  return e
}

/** At shutdown: every exporter of this thread sends what it holds. */
export async function closeExporters (): Promise<void> {
  await Promise.all([...exporters.values()].map(async (e) => await e.close()))
  exporters.clear()
}

import { randomFillSync } from 'node:crypto'

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/), as a gateway takes part in it:
 * a valid incoming `traceparent` is continued (same trace id, the client's span as parent),
 * an absent one starts a new trace, and a malformed one is replaced by a new trace, never
 * forwarded (with its `tracestate`, which the spec says to ignore then). Upstream always
 * gets the gateway's own span id as the parent.
 */
export interface TraceContext {
  /** 32 lower-case hex digits. */
  readonly traceId: string
  /** The gateway's span for this request: 16 hex digits, sent upstream as the parent. */
  readonly spanId: string
  /** The client's span, when the trace came in with the request. */
  readonly parentSpanId: string | undefined
  /** W3C trace-flags bit 0: the trace is recorded (and exported, when OTLP is on). */
  readonly sampled: boolean
  /** The incoming tracestate, passed on only with a valid traceparent. */
  readonly tracestate: string | undefined
  /** What the incoming header was: continued, started (none came), replaced (malformed). */
  readonly origin: 'continued' | 'started' | 'replaced'
}

// Random ids from a pool refilled 4 KiB at a time: one randomFillSync per ~170 requests
// instead of a crypto call per id.
const POOL_BYTES = 4096
const pool = Buffer.alloc(POOL_BYTES)
let at = POOL_BYTES

function randomHex (bytes: number): string {
  for (;;) {
    if (at + bytes > POOL_BYTES) {
      randomFillSync(pool)
      at = 0
    }
    const s = pool.toString('hex', at, at + bytes)
    at += bytes
    // All zeros is invalid for both ids (2^-64 at worst): draw again.
    if (!/^0+$/.test(s)) return s
  }
}

const HEX = /^[0-9a-f]+$/
const ZERO_TRACE = '00000000000000000000000000000000'
const ZERO_SPAN = '0000000000000000'

/** The fields of a valid traceparent, or undefined (spec section 3.2 and 4.3). */
export function parseTraceparent (v: string | string[] | undefined): { traceId: string, parentId: string, flags: number } | undefined {
  if (typeof v !== 'string') return undefined
  // version "00" is exactly 55 characters; a later version may append fields after a '-'.
  if (v.length < 55 || (v.length > 55 && v[55] !== '-')) return undefined
  if (v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return undefined
  const version = v.slice(0, 2)
  if (!HEX.test(version) || version === 'ff' || (version === '00' && v.length !== 55)) return undefined
  const traceId = v.slice(3, 35)
  const parentId = v.slice(36, 52)
  const flags = v.slice(53, 55)
  if (!HEX.test(traceId) || !HEX.test(parentId) || !HEX.test(flags)) return undefined
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined
  return { traceId, parentId, flags: parseInt(flags, 16) }
}

/** A list of at most 32 members, bounded in length; anything else is dropped (spec 3.3). */
function cleanTracestate (v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v.join(',') : v
  if (s === undefined || s.length > 8192 || /[^\x20-\x7e]/.test(s)) return undefined
  const members = s.split(',').map((m) => m.trim()).filter((m) => m !== '')
  if (members.length === 0 || members.length > 32) return undefined
  return members.join(',')
}

/**
 * The trace of one request. `sample` decides a new trace's sampled flag (a continued trace
 * keeps the caller's decision: parent-based sampling).
 */
export function startTrace (traceparent: string | string[] | undefined, tracestate: string | string[] | undefined, sample: () => boolean): TraceContext {
  const spanId = randomHex(8)
  const p = parseTraceparent(traceparent)
  if (p !== undefined) {
    return { traceId: p.traceId, spanId, parentSpanId: p.parentId, sampled: (p.flags & 1) === 1, tracestate: cleanTracestate(tracestate), origin: 'continued' }
  }
  return { traceId: randomHex(16), spanId, parentSpanId: undefined, sampled: sample(), tracestate: undefined, origin: traceparent === undefined ? 'started' : 'replaced' }
}

/** The traceparent the upstream gets: this trace, with the gateway's span as the parent. */
export function traceparentOf (t: TraceContext): string {
  return `00-${t.traceId}-${t.spanId}-${t.sampled ? '01' : '00'}`
}

/**
 * One access-log line, as pino writes it (`{"level":30,"time":"<ISO>",...fields,"msg":"access"}`
 * and a newline), built with one JSON.stringify of an object whose keys are already in
 * order. pino's generic path serializes key by key and costs more per line; the access log
 * writes a line per request. Fields that are `undefined` are left out, as pino leaves them
 * out. (A hand-built serializer was tried: in a running gateway it was no faster than
 * JSON.stringify, 3.8 against 4.0 µs a line.)
 */
export function accessLine (fields: AccessFields): string {
  return JSON.stringify(fields) + '\n'
}

export interface AccessFields {
  level: 30
  time: string
  id: string
  method: string
  path: string
  query: Record<string, string | string[]> | undefined
  status: number
  durationMs: number
  client: string
  route: string
  consumer: string | undefined
  upstream: string | undefined
  upstreamMs: number | undefined
  bytesIn: number
  bytesOut: number
  generation: number
  repliedBy: string | undefined
  code: string | undefined
  traceId: string | undefined
  spanId: string | undefined
  aborted: true | undefined
  headers: Record<string, string> | undefined
  msg: 'access'
}

let isoMs = -1
let iso = ''

/**
 * The time as pino's isoTime writes it, made once per millisecond: a busy gateway logs many
 * lines within one, and Date#toISOString was a good part of building a line (measured in a
 * running gateway: the fields took 2.7 µs with it, 1.2 µs with this).
 */
export function isoNow (): string {
  const now = Date.now()
  if (now !== isoMs) {
    isoMs = now
    iso = new Date(now).toISOString()
  }
  return iso
}

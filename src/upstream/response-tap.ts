import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

/**
 * An observer of a proxied response, added by a plugin with `ctx.tapResponse(tap)` before
 * the request goes upstream (a cache filling an entry). It sees the response as it streams
 * to the client and never holds it up: the proxy calls it synchronously, and nothing is
 * buffered on its behalf. Returning false from `headers` or `data` detaches it (a response
 * that is not cacheable, or one that grew over the entry size cap), so a tap costs nothing
 * for the rest of such a response.
 *
 * Exactly one of `end` and `abort` is called for every tap that was not detached: `end`
 * once the upstream's body is complete, `abort` when the exchange ended any other way
 * (upstream error, client gone, the gateway answered itself).
 */
export interface ResponseTap {
  /**
   * The upstream's status and headers, hop-by-hop ones removed, before the request's own
   * response headers and the route's response hooks are applied. Valid during the call only:
   * copy what you keep.
   */
  headers: (status: number, headers: Readonly<IncomingHttpHeaders | OutgoingHttpHeaders>) => boolean
  /** A body chunk as it goes to the client. Do not change it; keep a reference if needed. */
  data: (chunk: Buffer) => boolean
  end: () => void
  abort: (reason: string) => void
}

/** Where a request's taps live: on its Context, undefined until a plugin adds one. */
export interface Tapped { responseTaps: Array<ResponseTap | undefined> | undefined }

/** Detached and finished taps are set to undefined in place, so the loops stay index loops. */
export function tapHeaders (ctx: Tapped, status: number, headers: IncomingHttpHeaders | OutgoingHttpHeaders): void {
  const taps = ctx.responseTaps
  if (taps === undefined) return
  for (let i = 0; i < taps.length; i++) {
    const t = taps[i]
    if (t !== undefined && !t.headers(status, headers)) taps[i] = undefined
  }
}

export function tapData (ctx: Tapped, chunk: Buffer): void {
  const taps = ctx.responseTaps
  if (taps === undefined) return
  for (let i = 0; i < taps.length; i++) {
    const t = taps[i]
    if (t !== undefined && !t.data(chunk)) taps[i] = undefined
  }
}

export function tapEnd (ctx: Tapped): void {
  const taps = ctx.responseTaps
  if (taps === undefined) return
  ctx.responseTaps = undefined
  for (const t of taps) t?.end()
}

/** Every tap not yet ended hears why the exchange stopped; called when the response closes. */
export function tapAbort (ctx: Tapped, reason: string): void {
  const taps = ctx.responseTaps
  if (taps === undefined) return
  ctx.responseTaps = undefined
  for (const t of taps) t?.abort(reason)
}

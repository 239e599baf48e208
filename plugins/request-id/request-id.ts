import { randomUUID } from 'node:crypto'
import type { PluginHooks, RequestContext } from '../../src/types.js'
import type { RequestIdConfig } from './schema.js'

// An incoming id is passed on only if it is short and plain: it ends up in logs and in
// upstream headers, so no CR/LF, no spaces, nothing a log parser could trip on.
const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/

export function createRequestId (config: RequestIdConfig): PluginHooks {
  const header = config.header.toLowerCase()
  return {
    onRequest (ctx: RequestContext) {
      const incoming = config.trustIncoming ? ctx.headers[header] : undefined
      const id = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID()
      ctx.id = id
      ctx.setUpstreamHeader(header, id)
      if (config.echo) ctx.setResponseHeader(header, id)
    }
  }
}

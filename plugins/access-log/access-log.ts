import { isAbsolute, resolve } from 'node:path'
import { pino } from 'pino'
import type { Logger } from 'pino'
import { flushDestination } from '../../src/flush.js'
import type { PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import type { AccessLogConfig } from './schema.js'

const ALWAYS_REDACTED = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'apikey']

// One destination per file per worker thread, shared by every generation: a reload must
// not reopen the file or lose buffered lines.
const destinations = new Map<string, ReturnType<typeof pino.destination>>()

function destinationFor (dest: string, configDir: string): ReturnType<typeof pino.destination> {
  const key = dest === 'stdout' || dest === 'stderr' ? dest : (isAbsolute(dest) ? dest : resolve(configDir, dest))
  let d = destinations.get(key)
  if (d === undefined) {
    const fd = key === 'stdout' ? 1 : key === 'stderr' ? 2 : key
    d = pino.destination({ dest: fd, sync: false, mkdir: true, minLength: 0 })
    destinations.set(key, d)
  }
  return d
}

export function createAccessLog (config: AccessLogConfig, api: PluginApi): PluginHooks {
  const include = config.headers.map((h) => h.toLowerCase())
  const redacted = new Set([...ALWAYS_REDACTED, ...config.redact.map((h) => h.toLowerCase())])
  const dest = destinationFor(config.destination, api.configDir)
  const log: Logger = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' }, dest)

  return {
    onLog (ctx: RequestContext) {
      const o = ctx.outcome
      let headers: Record<string, string> | undefined
      if (include.length > 0) {
        headers = {}
        for (const h of include) {
          const v = ctx.headers[h]
          if (v !== undefined) headers[h] = redacted.has(h) ? '[redacted]' : Array.isArray(v) ? v.join(', ') : v
        }
      }
      log.info({
        id: ctx.id,
        method: ctx.method,
        path: ctx.path,
        status: o.status,
        durationMs: Math.round(ctx.elapsed() * 1000) / 1000,
        client: ctx.client.ip,
        route: ctx.route.name,
        consumer: ctx.consumer?.id,
        upstream: o.upstream,
        upstreamMs: o.upstreamMs === undefined ? undefined : Math.round(o.upstreamMs * 1000) / 1000,
        bytesIn: o.bytesIn,
        bytesOut: o.bytesOut,
        generation: ctx.generation,
        repliedBy: o.repliedBy,
        code: o.code,
        aborted: o.aborted || undefined,
        headers
      }, 'access')
    },
    async close () {
      // The destination outlives this instance (the next generation writes to it too); write
      // out what is buffered, so a stopping worker loses no line.
      await flushDestination(dest)
    }
  }
}

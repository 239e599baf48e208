import { createHash } from 'node:crypto'
import { Pool } from 'undici'
import type { UpstreamConnectTls } from '../tls/upstream.js'

export interface PoolOptions {
  connections: number
  connectTimeout: number
  /** https:// targets: CA, SNI name, verification (src/tls/upstream.ts). */
  tls?: UpstreamConnectTls
}

/** Pools with other TLS settings are other pools: a CA change must not reuse old connections. */
function tlsKey (tls: UpstreamConnectTls | undefined): string {
  return tls === undefined ? '' : createHash('sha256').update(JSON.stringify(tls)).digest('hex').slice(0, 16)
}

/**
 * One undici Pool per upstream origin per worker, kept across config generations while an
 * origin with the same options is still in use, so a reload does not drop warm connections.
 */
export class PoolRegistry {
  #pools = new Map<string, Pool>()

  get (origin: string, opts: PoolOptions): Pool {
    const key = `${origin}|${opts.connections}|${opts.connectTimeout}|${tlsKey(opts.tls)}`
    let pool = this.#pools.get(key)
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: opts.connections,
        connect: { timeout: opts.connectTimeout, ...opts.tls },
        // Ours are per request (route timeouts); these are only upper bounds.
        headersTimeout: 300_000,
        bodyTimeout: 300_000,
        keepAliveTimeout: 4_000,
        pipelining: 1,
        strictContentLength: true
      })
      this.#pools.set(key, pool)
    }
    return pool
  }

  /** Close pools no live generation uses. */
  async retain (keep: ReadonlySet<Pool>): Promise<void> {
    const closing: Array<Promise<void>> = []
    for (const [key, pool] of this.#pools) {
      if (!keep.has(pool)) {
        this.#pools.delete(key)
        closing.push(pool.close().catch(() => {}))
      }
    }
    await Promise.all(closing)
  }

  async closeAll (): Promise<void> {
    await this.retain(new Set())
  }
}

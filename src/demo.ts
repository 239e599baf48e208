import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { RawConfig } from './config.js'

export interface Demo {
  raw: RawConfig
  banner: (port: number, host: string) => string
  close: () => Promise<void>
}

/**
 * `tollgate` with no upstream and no config: a small upstream on a free loopback port (in
 * this thread; it is only a demo) and a sample policy set in front of it.
 */
export async function startDemo (opts: { host?: string, port?: number, workers?: number, logLevel: string }): Promise<Demo> {
  const upstream = createServer((req, res) => {
    const body = JSON.stringify({
      hello: 'from the demo upstream',
      method: req.method,
      url: req.url,
      requestId: req.headers['x-request-id'],
      forwardedFor: req.headers['x-forwarded-for']
    }) + '\n'
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  await new Promise<void>((resolve, reject) => {
    upstream.once('error', reject)
    upstream.listen(0, '127.0.0.1', resolve)
  })
  const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  const value = {
    listen: { host: opts.host ?? '127.0.0.1', port: opts.port ?? 8080 },
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    logLevel: opts.logLevel,
    plugins: [{ name: 'request-id' }, { name: 'access-log' }],
    routes: [
      { name: 'orders', match: { path: '/orders', methods: ['GET', 'POST'] }, upstream: origin },
      { name: 'order', match: { path: '/orders/:id', methods: ['GET'] }, upstream: origin },
      { name: 'hello', match: { path: '/hello', exact: true }, upstream: origin }
    ]
  }
  return {
    raw: { source: '<demo>', dir: process.cwd(), value },
    banner: (port, host) => {
      const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
      return `
tollgate demo: the gateway is on ${base}, in front of a demo upstream on ${origin}.
Try:
  curl -i ${base}/hello                      # proxied; note the X-Request-Id header
  curl -i ${base}/orders/42                  # a :id route
  curl -i -X POST -d '{"n":1}' ${base}/orders
  curl -i -X DELETE ${base}/orders            # 405, problem+json
  curl -i ${base}/nowhere                    # 404, problem+json
Each request writes one access-log line to stdout. Ctrl-C drains and stops.

`
    },
    close: () => new Promise<void>((resolve) => { upstream.closeAllConnections(); upstream.close(() => resolve()) })
  }
}

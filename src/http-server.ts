import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { GatewayConfig } from './config-schema.js'

/**
 * The worker's HTTP server: Node's strict llhttp parser (never `insecureHTTPParser`) with
 * every limit set explicitly rather than left at Node's defaults (CHECKLIST B):
 *
 *   maxHeaderSize 16 KiB      -> 431, and the connection closes
 *   headersTimeout 10 s       -> 408 for a client that trickles its headers (slowloris)
 *   requestTimeout 30 s       -> 408 for a client that trickles its body
 *   keepAliveTimeout 5 s      -> idle keep-alive connections are closed
 *   connectionsCheckingInterval 1 s, so the two timeouts above fire within 1 s of expiring
 *   requireHostHeader         -> HTTP/1.1 without Host is a 400
 *   joinDuplicateHeaders off  -> duplicates stay visible in rawHeaders for policies
 *
 * The header-count limit is checked by the request handler, because Node's own
 * maxHeadersCount silently drops extra headers instead of refusing the request; Node is told
 * to keep one more than the limit, so "over the limit" is visible.
 */
export function createHttpServer (config: GatewayConfig): Server {
  const l = config.limits
  const server = createServer({
    maxHeaderSize: l.maxHeaderSize,
    requireHostHeader: true,
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
    headersTimeout: l.headersTimeout,
    requestTimeout: l.requestTimeout,
    keepAliveTimeout: l.keepAliveTimeout,
    connectionsCheckingInterval: 1000,
    noDelay: true
  })
  server.maxHeadersCount = l.maxHeadersCount + 1
  server.maxRequestsPerSocket = l.maxRequestsPerSocket
  return server
}

// Peer: fastify + @fastify/http-proxy in front of the upstream, no policy, logger off, the
// plugin's defaults (undici pool) - the way its README sets it up.
//   node dist/bench/peers/fastify-proxy.js http://127.0.0.1:PORT [--host 127.0.0.1] [--port 0]
import proxy from '@fastify/http-proxy'
import Fastify from 'fastify'
import { serveArgs } from '../lib/serve.js'

const args = serveArgs()
const upstream = args.positionals[0]
if (upstream === undefined) throw new Error('usage: fastify-proxy.js <upstream-url> [--host H] [--port P]')

const app = Fastify({ logger: false, keepAliveTimeout: 30_000 })
await app.register(proxy, { upstream, prefix: '/', http2: false })
const exit = (): void => { void app.close().finally(() => process.exit(0)) }
process.once('SIGTERM', exit)
process.once('SIGINT', exit)
if (process.env.TOLLGATE_BENCH_CHILD === '1') {
  process.stdin.once('end', exit)
  process.stdin.resume()
}
await app.listen({ host: args.host, port: args.port })
const address = app.server.address()
process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`)

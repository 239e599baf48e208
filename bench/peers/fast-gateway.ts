// Peer: fast-gateway 3 (restana + fast-proxy-lite) in front of the upstream, one route '/',
// no middlewares. 3.x is the line that installs on Node 20.
//   node dist/bench/peers/fast-gateway.js http://127.0.0.1:PORT [--host 127.0.0.1] [--port 0]
import gateway from 'fast-gateway'
import { serveArgs } from '../lib/serve.js'

const args = serveArgs()
const target = args.positionals[0]
if (target === undefined) throw new Error('usage: fast-gateway.js <upstream-url> [--host H] [--port P]')

const server = gateway({ routes: [{ prefix: '/', target }] })
const exit = (): void => process.exit(0)
process.once('SIGTERM', exit)
process.once('SIGINT', exit)
if (process.env.TOLLGATE_BENCH_CHILD === '1') {
  process.stdin.once('end', exit)
  process.stdin.resume()
}
const http = await server.start(args.port, args.host)
const address = (http as { address(): unknown }).address() as { port: number }
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`)

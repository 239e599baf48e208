// The bench upstream: as fast as node:http gets, so that whatever sits in front of it is
// what the figures measure. Every path answers 200 with the same small JSON body.
//   node dist/bench/upstream.js [--host 127.0.0.1] [--port 0]   -> prints {"port":N}
import http from 'node:http'
import { serve, serveArgs } from './lib/serve.js'

const body = Buffer.from(
  JSON.stringify({ ok: true, service: 'tollgate-bench-upstream', message: 'hello from the upstream' }),
)
const headers = {
  'content-type': 'application/json',
  'content-length': String(body.length),
}

const server = http.createServer((req, res) => {
  req.resume()
  res.writeHead(200, headers)
  res.end(body)
})
server.keepAliveTimeout = 30_000

serve(server, serveArgs())

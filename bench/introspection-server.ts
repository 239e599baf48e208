// A stand-in authorization server for the introspection bench subject: every token is
// active for an hour with two scopes. It counts calls on GET /calls, so the bench can show
// the cache was warm (one call per worker) during the measurement.
//   node dist/bench/introspection-server.js [--host 127.0.0.1] [--port 0]   -> prints {"port":N}
import http from 'node:http'
import { serve, serveArgs } from './lib/serve.js'

let calls = 0
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/calls') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ calls }))
    return
  }
  req.resume()
  req.on('end', () => {
    calls++
    const body = JSON.stringify({ active: true, sub: 'bench-user', client_id: 'bench', scope: 'orders:read orders:write', exp: Math.floor(Date.now() / 1000) + 3600 })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
})

serve(server, serveArgs())

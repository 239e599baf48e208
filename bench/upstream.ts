// The bench upstream: as fast as node:http gets, so that whatever sits in front of it is
// what the figures measure. Every path answers 200 with the same small JSON body.
//   node dist/bench/upstream.js [--host 127.0.0.1] [--port 0] [--listeners N]   -> prints {"port":N[,"ports":[...]]}
import http from 'node:http'
import { serve, serveArgs } from './lib/serve.js'

const body = Buffer.from(
  JSON.stringify({ ok: true, service: 'tollgate-bench-upstream', message: 'hello from the upstream' }),
)
const headers = {
  'content-type': 'application/json',
  'content-length': String(body.length),
}

function answer (req: http.IncomingMessage, res: http.ServerResponse): void {
  req.resume()
  res.writeHead(200, headers)
  res.end(body)
}

function server (): http.Server {
  const s = http.createServer(answer)
  s.keepAliveTimeout = 30_000
  return s
}

// `--listeners N`: N ports, one process: balancing subjects get N targets whose serving
// cost is the same as one target's (bench/upstream-subjects.ts).
const args = serveArgs()
serve(server(), args, Array.from({ length: args.listeners - 1 }, server))

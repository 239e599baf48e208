// The floor every Node gateway stands on: node:http in, one undici Pool out, streamed,
// hop-by-hop headers dropped. No routing, no policy, no logging.
//   node dist/bench/bare-proxy.js http://127.0.0.1:PORT [--host 127.0.0.1] [--port 0]
import http from 'node:http'
import { Pool } from 'undici'
import { serve, serveArgs } from './lib/serve.js'

type Headers = Record<string, string | string[] | undefined>
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate',
  'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

function strip(headers: Headers, alsoDrop?: string): Record<string, string | string[]> {
  const named = headers.connection === undefined ? undefined
    : String(headers.connection).toLowerCase().split(',').map((t) => t.trim())
  const out: Record<string, string | string[]> = {}
  for (const key in headers) {
    const value = headers[key]
    if (value === undefined || HOP.has(key) || key === alsoDrop || named?.includes(key)) continue
    out[key] = value
  }
  return out
}

const args = serveArgs()
const target = args.positionals[0]
if (target === undefined) throw new Error('usage: bare-proxy.js <upstream-url> [--host H] [--port P]')
const pool = new Pool(new URL(target).origin)

const server = http.createServer((req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
  pool.stream(
    { path: req.url ?? '/', method: req.method ?? 'GET', headers: strip(req.headers, 'host'), body: hasBody ? req : null },
    ({ statusCode, headers }) => res.writeHead(statusCode, strip(headers)),
    (err) => {
      if (err === null) return
      if (res.headersSent) res.destroy(err)
      else res.writeHead(502).end()
    },
  )
})
server.keepAliveTimeout = 30_000

serve(server, args)

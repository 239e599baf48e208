// Shared plumbing for the bench's own server processes (upstream.ts, bare-proxy.ts):
// read --host/--port, listen, announce the port as one JSON line on stdout, and exit
// cleanly when the runner stops us.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'

export interface ServeArgs {
  host: string
  port: number
  positionals: string[]
}

export function serveArgs(argv: string[] = process.argv.slice(2)): ServeArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
    },
  })
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port: ${values.port}`)
  return { host: values.host ?? '127.0.0.1', port, positionals }
}

/**
 * Listen, then print `{"port":N}` on stdout. Exits on SIGTERM/SIGINT, and, when started
 * by the bench runner (TOLLGATE_BENCH_CHILD=1), when stdin closes: the runner holds the
 * other end, so a runner killed with SIGKILL does not leave us behind.
 */
export function serve(server: Server, args: ServeArgs): void {
  const exit = (): void => process.exit(0)
  process.once('SIGTERM', exit)
  process.once('SIGINT', exit)
  if (process.env.TOLLGATE_BENCH_CHILD === '1') {
    process.stdin.once('end', exit)
    process.stdin.once('close', exit)
    process.stdin.resume()
  }
  server.once('error', (err) => {
    process.stderr.write(`${err.stack ?? err.message}\n`)
    process.exit(1)
  })
  server.listen(args.port, args.host, () => {
    const { port } = server.address() as AddressInfo
    process.stdout.write(`${JSON.stringify({ port })}\n`)
  })
}

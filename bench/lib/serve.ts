// Shared plumbing for the bench's own server processes (upstream.ts, bare-proxy.ts):
// read --host/--port, listen, announce the port as one JSON line on stdout, and exit
// cleanly when the runner stops us.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'

export interface ServeArgs {
  host: string
  port: number
  /** How many ports serve the same handler (`--listeners N`, default 1). */
  listeners: number
  positionals: string[]
}

export function serveArgs(argv: string[] = process.argv.slice(2)): ServeArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      listeners: { type: 'string', default: '1' },
    },
  })
  const listeners = Number(values.listeners)
  if (!Number.isInteger(listeners) || listeners < 1 || listeners > 16) throw new Error(`bad --listeners: ${values.listeners}`)
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port: ${values.port}`)
  return { host: values.host ?? '127.0.0.1', port, listeners, positionals }
}

/**
 * Listen, then print `{"port":N}` on stdout (with `"ports":[N, ...]` when `extra` servers,
 * each on a free port, serve the same handler: several targets in one process). Exits on SIGTERM/SIGINT, and, when started
 * by the bench runner (TOLLGATE_BENCH_CHILD=1), when stdin closes: the runner holds the
 * other end, so a runner killed with SIGKILL does not leave us behind.
 */
export function serve(server: Server, args: ServeArgs, extra: readonly Server[] = []): void {
  const exit = (): void => process.exit(0)
  process.once('SIGTERM', exit)
  process.once('SIGINT', exit)
  if (process.env.TOLLGATE_BENCH_CHILD === '1') {
    process.stdin.once('end', exit)
    process.stdin.once('close', exit)
    process.stdin.resume()
  }
  for (const s of [server, ...extra]) {
    s.once('error', (err) => {
      process.stderr.write(`${err.stack ?? err.message}\n`)
      process.exit(1)
    })
  }
  const listening = (s: Server): Promise<number> => new Promise((resolve) => {
    s.listen(s === server ? args.port : 0, args.host, () => resolve((s.address() as AddressInfo).port))
  })
  void Promise.all([server, ...extra].map(listening)).then((ports) => {
    const port = ports[0] as number
    process.stdout.write(`${JSON.stringify(extra.length === 0 ? { port } : { port, ports })}\n`)
  })
}

import { lookup } from 'node:dns/promises'
import { createRequire } from 'node:module'
import { isIP, isIPv4, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { codes } from './errors.js'

/*
 * How worker threads share the port (DESIGN.md "Threads and memory"; docs in README):
 *
 * Every worker gets a listening socket of its own, all bound to the same address with
 * SO_REUSEPORT, and the kernel spreads new connections across them. We measured the
 * alternative the design card describes, one fd shared by every thread, and it fails the
 * crash requirement on Node 20: a thread that dies closes its handles, which closes the
 * shared fd number for every other thread (0 of 60 requests served after one worker was
 * terminated, against 60 of 60 with a socket per worker). Node 20 has no `reusePort` option
 * (it came in 22.12), so the fds are made by node-unix-socket's prebuilt N-API binding
 * (`socketNewSoReuseportFd`: socket, SO_REUSEADDR + SO_REUSEPORT, bind, listen); each worker
 * then calls `server.listen({ fd })`. We load the platform package directly: the wrapper
 * package names optional platform packages that were never published, which breaks `npm ci`.
 * The acceptor only creates the fds and never polls them, so it never accepts.
 */

/** Host names are resolved once here: the socket API wants an address. */
export async function resolveListenHost (host: string): Promise<string> {
  if (isIP(host) !== 0) return host
  const { address } = await lookup(host)
  return address
}

interface ReuseportBinding {
  socketNewSoReuseportFd: (domain: 'ipv4' | 'ipv6', port: number, host: string) => number
  socketClose: (fd: number) => void
}

let binding: ReuseportBinding | undefined

function reuseport (host = '', port = 0): ReuseportBinding {
  if (binding !== undefined) return binding
  const require = createRequire(import.meta.url)
  const errors: string[] = []
  for (const name of ['node-unix-socket-linux-x64-gnu', 'node-unix-socket-linux-x64-musl']) {
    try {
      binding = require(name) as ReuseportBinding
      return binding
    } catch (err) {
      errors.push(`${name}: ${(err as Error).message.split('\n')[0] ?? ''}`)
    }
  }
  throw codes.GW_ERR_LISTEN(host, port, `per-thread SO_REUSEPORT sockets need Linux x64 (node-unix-socket-linux-x64-*), not found on ${process.platform}-${process.arch}: ${errors.join('; ')}`)
}

export function openListenFd (host: string, port: number): number {
  const b = reuseport(host, port)
  try {
    return b.socketNewSoReuseportFd(isIPv4(host) ? 'ipv4' : 'ipv6', port, host)
  } catch (err) {
    throw codes.GW_ERR_LISTEN(host, port, (err as Error).message)
  }
}

export function closeListenFd (fd: number): void {
  try { reuseport().socketClose(fd) } catch {}
}

/**
 * With port 0 the kernel picks the port when the first socket binds, and every other worker
 * must bind that same port. Bind one socket, read its port, open the workers' sockets on it,
 * then close the probe. Nobody can know the port before this returns, so the probe cannot
 * have accepted a connection.
 */
export async function choosePort (host: string, port: number): Promise<number> {
  if (port !== 0) return port
  const fd = openListenFd(host, 0)
  const probe = createServer()
  const address = await new Promise<AddressInfo>((resolve, reject) => {
    probe.once('error', reject)
    probe.listen({ fd }, () => resolve(probe.address() as AddressInfo))
  })
  // Keep the probe bound until a worker socket holds the port too (see the acceptor).
  pendingProbes.set(address.port, probe)
  return address.port
}

const pendingProbes = new Map<number, ReturnType<typeof createServer>>()

/** Close the port-0 probe once at least one worker socket is bound to the port. */
export function releaseProbe (port: number): void {
  const probe = pendingProbes.get(port)
  if (probe === undefined) return
  pendingProbes.delete(port)
  probe.close()
}

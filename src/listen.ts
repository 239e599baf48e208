import { lookup } from 'node:dns/promises'
import { isIP, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { closeFd, createReuseportFd } from 'node-unix-socket'
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
 * (it came in 22.12), so the fds are made by node-unix-socket's createReuseportFd, a small
 * N-API addon that ships prebuilt; each worker then calls `server.listen({ fd })`.
 * The acceptor only creates the fds and never polls them, so it never accepts.
 */

/** Host names are resolved once here: the socket API wants an address. */
export async function resolveListenHost (host: string): Promise<string> {
  if (isIP(host) !== 0) return host
  const { address } = await lookup(host)
  return address
}

export function openListenFd (host: string, port: number): number {
  try {
    return createReuseportFd(port, host)
  } catch (err) {
    throw codes.GW_ERR_LISTEN(host, port, (err as Error).message)
  }
}

export function closeListenFd (fd: number): void {
  try { closeFd(fd) } catch {}
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

import { BroadcastChannel } from 'node:worker_threads'

// One BroadcastChannel joins the acceptor and every worker thread of a process for cluster
// traffic that is not tied to a generation: fast-mode counts going to the acceptor (which
// syncs them with Redis once for the process; on DELTAS_CHANNEL_NAME), Redis's state coming back, workers' counters
// for the metrics, and auto-block entries both ways. A BroadcastChannel reaches every other
// object of that name in the process, whatever thread made it, with no port plumbing.

export const CHANNEL_NAME = 'tollgate:cluster'

/**
 * fast mode's deltas (workers -> acceptor) go on a channel of their own, which only the
 * acceptor's cluster node listens to: a BroadcastChannel message is delivered to (and wakes
 * the thread of) every other channel of its name, and deltas are posted many times a second
 * by every worker, for one reader.
 */
export const DELTAS_CHANNEL_NAME = 'tollgate:cluster:deltas'

/** A fast-mode counter: policy id, algorithm, limit, window ms, burst, client key, admits. */
export type DeltaItem = [string, string, number, number, number | undefined, string, number]

export type ClusterMessage =
  | { type: 'deltas', items: DeltaItem[] }
  | { type: 'redis', up: boolean }
  | { type: 'stats', counts: Record<string, number> }
  | { type: 'block-publish', ip: string, until: number }
  | { type: 'block', ip: string, until: number }
  | { type: 'unblock', ip: string }
  | { type: 'blocks-in-force', ips: string[], askedAt: number }

/** A channel that does not keep the thread alive. */
export function openChannel (onMessage?: (m: ClusterMessage) => void, name = CHANNEL_NAME): BroadcastChannel {
  const ch = new BroadcastChannel(name)
  ch.unref()
  if (onMessage !== undefined) ch.onmessage = (ev) => onMessage((ev as { data: unknown }).data as ClusterMessage)
  return ch
}

import { openChannel } from './channel.js'

// The fleet-wide auto-block list: a seam for the anomaly auto-block (threat-guard). Any
// thread of any instance calls publishBlock(); the acceptor's cluster node stores the entry
// in Redis (a sorted set `<prefix>blocks`, score = until) and publishes it on the channel
// `<prefix>blocks`; every instance's node then hands it to onBlock() callbacks in every
// thread of its process (its own blocks included), and on (re)connect replays the entries
// still in force. Without a cluster block, publishBlock() reaches this process's threads
// only through the same channel, and nothing is stored.
//
// A lift (the admin API's DELETE /blocks/:ip on any instance) goes the other way: that
// instance's node removes the entry from the sorted set and announces the lift on the same
// Redis channel, and every instance's node hands it to onUnblock() callbacks, so the block
// ends everywhere and is not replayed by a later (re)connect. An instance whose
// subscription was down when a lift was announced learns of it at its next (re)connect:
// the replay also hands onFleetSync() the addresses Redis still holds, and a block this
// process took from the fleet before that question was asked, and that Redis no longer
// holds, was lifted (or has expired) meanwhile.

type BlockCallback = (ip: string, until: number) => void
type UnblockCallback = (ip: string) => void
type SyncCallback = (ips: ReadonlySet<string>, askedAt: number) => void

let channel: ReturnType<typeof openChannel> | undefined
const callbacks = new Set<BlockCallback>()
const unblockCallbacks = new Set<UnblockCallback>()
const syncCallbacks = new Set<SyncCallback>()

function ensure (): ReturnType<typeof openChannel> {
  channel ??= openChannel((m) => {
    if (m.type === 'block') for (const cb of callbacks) cb(m.ip, m.until)
    else if (m.type === 'unblock') for (const cb of unblockCallbacks) cb(m.ip)
    else if (m.type === 'blocks-in-force') {
      const ips = new Set(m.ips)
      for (const cb of syncCallbacks) cb(ips, m.askedAt)
    }
  })
  return channel
}

function release (): void {
  if (callbacks.size === 0 && unblockCallbacks.size === 0 && syncCallbacks.size === 0 && channel !== undefined) {
    channel.close()
    channel = undefined
  }
}

/** Block `ip` on every instance until `until` (ms since the epoch). Any thread. */
export function publishBlock (ip: string, until: number): void {
  ensure().postMessage({ type: 'block-publish', ip, until })
}

/** Be told of every fleet-wide block in this thread. Returns a function that stops it. */
export function onBlock (cb: BlockCallback): () => void {
  ensure()
  callbacks.add(cb)
  return () => {
    callbacks.delete(cb)
    release()
  }
}

/** Be told of every fleet-wide lift in this thread. Returns a function that stops it. */
export function onUnblock (cb: UnblockCallback): () => void {
  ensure()
  unblockCallbacks.add(cb)
  return () => {
    unblockCallbacks.delete(cb)
    release()
  }
}

/**
 * Be told, after each (re)connect's replay, which addresses the fleet's list holds
 * (`askedAt`: when Redis was asked, ms). Returns a function that stops it.
 */
export function onFleetSync (cb: SyncCallback): () => void {
  ensure()
  syncCallbacks.add(cb)
  return () => {
    syncCallbacks.delete(cb)
    release()
  }
}

import { openChannel } from './channel.js'

// The fleet-wide auto-block list: a seam for the anomaly auto-block (threat-guard). Any
// thread of any instance calls publishBlock(); the acceptor's cluster node stores the entry
// in Redis (a sorted set `<prefix>blocks`, score = until) and publishes it on the channel
// `<prefix>blocks`; every instance's node then hands it to onBlock() callbacks in every
// thread of its process (its own blocks included), and on (re)connect replays the entries
// still in force. Without a cluster block, publishBlock() reaches this process's threads
// only through the same channel, and nothing is stored.

type BlockCallback = (ip: string, until: number) => void

let channel: ReturnType<typeof openChannel> | undefined
const callbacks = new Set<BlockCallback>()

function ensure (): ReturnType<typeof openChannel> {
  channel ??= openChannel((m) => {
    if (m.type !== 'block') return
    for (const cb of callbacks) cb(m.ip, m.until)
  })
  return channel
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
    if (callbacks.size === 0 && channel !== undefined) {
      channel.close()
      channel = undefined
    }
  }
}

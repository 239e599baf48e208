import { ServerResponse } from 'node:http'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

// Responses whose socket is handed over to a tunnel once the 101 is written.
const handedOver = new WeakSet<ServerResponse>()

/**
 * A ServerResponse for a request that came through the server's 'upgrade' event. Node frees
 * the parser and gives such a request only its raw socket; the gateway still answers it as
 * any other (a policy's denial, a plain proxied answer, the upstream's refusal), so it gets
 * the same response object, set up as Node's server would (its 'finish' handler), and the
 * connection ends with it: the parser that could read a next request is gone.
 */
export function responseForUpgrade (req: IncomingMessage, socket: Duplex): ServerResponse {
  const res = new ServerResponse(req)
  res.shouldKeepAlive = false
  res.assignSocket(socket as Socket)
  res.once('finish', () => {
    res.detachSocket(socket as Socket)
    process.nextTick(() => res.emit('close'))
    if (handedOver.has(res)) return
    // Ends the connection once the response is written, as Node's server does (destroySoon).
    if (socket.writableFinished) socket.destroy()
    else socket.once('finish', () => socket.destroy())
    socket.end()
  })
  return res
}

/** Keep the socket open after this response (a 101): a tunnel owns it from now on. */
export function handOver (res: ServerResponse): void {
  handedOver.add(res)
}

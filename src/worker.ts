import { threadId } from 'node:worker_threads'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { codes, GatewayError } from './errors.js'
import { buildGeneration, closeInstances } from './generation.js'
import type { Generation } from './generation.js'
import { createHttpServer } from './http-server.js'
import { createLogger, flushLogger } from './log.js'
import { createRequestHandler } from './request-handler.js'
import { loadHotPath } from './shared-memory.js'
import type { HandlerState, LiveGeneration } from './request-handler.js'
import type { AcceptorToWorker, GenerationMessage, ServeTask, WorkerToAcceptor } from './types.js'
import { PoolRegistry } from './upstream/pools.js'

function live (gen: Generation): LiveGeneration {
  return { gen, inFlight: 0, onIdle: undefined }
}

function listen (server: Server, fd: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ fd }, () => {
      server.off('error', reject)
      resolve(server.address() as AddressInfo)
    })
  })
}

/**
 * The serve task: piscina runs one per worker thread, for the thread's whole life. It builds
 * the pipeline for the current generation, serves its own SO_REUSEPORT socket, swaps
 * generations between requests when the acceptor sends one, and resolves when drained.
 */
export default async function serve (task: ServeTask): Promise<{ served: number }> {
  const log = createLogger(task.logLevel, { role: 'worker', threadId, slot: task.slot })
  const pools = new PoolRegistry()
  const port = task.port
  const send = (m: WorkerToAcceptor): void => port.postMessage(m)

  const hotPath = await loadHotPath(task.memory)
  const first = await buildGeneration(task.generation, { mode: 'worker', log, pools, hotPath })
  const state: HandlerState = { current: live(first), draining: false, maxHeadersCount: first.config.limits.maxHeadersCount, log }
  const server = createHttpServer(first.config)
  let served = 0
  const handler = createRequestHandler(state)
  server.on('request', (req, res) => { served++; handler(req, res) })

  let address: AddressInfo
  try {
    address = await listen(server, task.fd)
  } catch (err) {
    throw codes.GW_ERR_WORKER_START(`listen on fd ${task.fd}: ${(err as Error).message}`)
  }
  send({ type: 'ready', slot: task.slot, threadId, address: { address: address.address, port: address.port, family: address.family } })

  const retire = (old: LiveGeneration): void => {
    const close = (): void => {
      void closeInstances(old.gen.instances, log)
      const inUse = new Set(state.current.gen.pools)
      void pools.retain(inUse)
    }
    if (old.inFlight === 0) close()
    else old.onIdle = close
  }

  const apply = async (msg: GenerationMessage): Promise<void> => {
    try {
      const gen = await buildGeneration(msg, { mode: 'worker', log, pools, hotPath })
      const old = state.current
      state.current = live(gen)
      state.maxHeadersCount = gen.config.limits.maxHeadersCount
      retire(old)
      send({ type: 'generation-applied', number: msg.number })
    } catch (err) {
      const e = err instanceof GatewayError ? err : codes.GW_ERR_PLUGIN_CREATE('?', (err as Error).message)
      send({ type: 'generation-failed', number: msg.number, error: e.toJSON() })
    }
  }

  return await new Promise((resolve) => {
    port.on('message', (m: AcceptorToWorker) => {
      if (m.type === 'generation') {
        void apply(m.generation)
      } else if (m.type === 'drain') {
        state.draining = true
        // Stop accepting (this closes only our own socket), and let idle keep-alive
        // connections go now; busy ones close after their response (Connection: close).
        server.close()
        server.closeIdleConnections()
        const deadline = setTimeout(() => server.closeAllConnections(), m.deadlineMs)
        deadline.unref()
        const check = setInterval(() => {
          if (state.current.inFlight === 0) server.closeIdleConnections()
        }, 50)
        server.once('close', () => {
          clearTimeout(deadline)
          clearInterval(check)
          void (async () => {
            send({ type: 'drained', inFlight: state.current.inFlight })
            await closeInstances(state.current.gen.instances, log)
            await pools.closeAll()
            await flushLogger(log)
            port.close()
            resolve({ served })
          })()
        })
      }
    })
  })
}

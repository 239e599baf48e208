import './test-clock.js'
import { threadId } from 'node:worker_threads'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { purgeCaches } from './cache-purge.js'
import { codes, GatewayError } from './errors.js'
import { buildGeneration, closeInstances } from './generation.js'
import type { Generation } from './generation.js'
import { applyServerLimits, createHttpServer } from './http-server.js'
import { createLogger, flushLogger } from './log.js'
import { createRequestHandler } from './request-handler.js'
import { loadHotPath } from './shared-memory.js'
import { WorkerStats } from './worker-stats.js'
import type { HandlerState, LiveGeneration } from './request-handler.js'
import type { AcceptorToWorker, GenerationMessage, ServeTask, WorkerToAcceptor } from './types.js'
import { PoolRegistry } from './upstream/pools.js'
import { MetricsWriter, setThreadMetrics } from './metrics/writer.js'
import { openDestinations } from './log-destination.js'
import { flushDestination } from './flush.js'
import { closeExporters } from './tracing/otlp.js'
import { responseForUpgrade } from './upgrade-response.js'
import { Tunnels } from './upstream/websocket.js'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { TlsListener } from './tls/listener.js'

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
  const metrics = new MetricsWriter(task.metrics)
  metrics.resetGauges()
  setThreadMetrics(metrics)
  const stats = new WorkerStats(task.memory, task.slot)
  stats.reset()
  const first = await buildGeneration(task.generation, { mode: 'worker', log, pools, hotPath })
  const tunnels = new Tunnels()
  const state: HandlerState = { current: live(first), draining: false, log, stats, tunnels }
  // A TLS listener terminates TLS here, in the worker, on its own socket (src/tls/).
  const tlsCfg = first.config.listen.tls
  const tls = tlsCfg !== undefined && first.tls !== undefined ? new TlsListener(tlsCfg, first.tls, log) : undefined
  const server = createHttpServer(first.config, log, (status, code, client) => state.current.gen.observer.refused(status, code, client), tls?.options())
  tls?.attach(server)
  server.on('connection', (socket: import('node:net').Socket) => {
    metrics.connectionOpened()
    socket.once('close', () => metrics.connectionClosed())
  })
  let served = 0
  const handler = createRequestHandler(state)
  server.on('request', (req, res) => { served++; handler(req, res) })
  // Node hands a request with Connection: Upgrade to 'upgrade' listeners as a raw socket
  // (the parser stops at the end of its head), and to 'request' as an ordinary request when
  // there is none. So the listener is there only while some route proxies WebSocket: without
  // one, every upgrade request is parsed and answered exactly as before (body included).
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    served++
    socket.on('error', () => {})
    handler(req, responseForUpgrade(req, socket), { socket, head })
  }
  const takeUpgrades = (gen: Generation): void => {
    server.off('upgrade', onUpgrade)
    if (gen.websocket) server.on('upgrade', onUpgrade)
  }
  takeUpgrades(first)

  let address: AddressInfo
  try {
    address = await listen(server, task.fd)
  } catch (err) {
    throw codes.GW_ERR_WORKER_START(`listen on fd ${task.fd}: ${(err as Error).message}`)
  }
  stats.setGeneration(first.number)
  send({ type: 'ready', slot: task.slot, threadId, generation: first.number, address: { address: address.address, port: address.port, family: address.family } })

  // A replaced generation lives on until its last request ends; then its plugin instances
  // close, pools no live generation uses close, and the acceptor hears it is retired (its IP
  // table region may then be rewritten).
  const retire = (old: LiveGeneration): void => {
    const close = (): void => {
      void closeInstances(old.gen.instances, log).then(() => send({ type: 'generation-retired', number: old.gen.number }))
      void pools.retain(new Set(state.current.gen.pools))
    }
    if (old.inFlight === 0) close()
    else old.onIdle = close
  }

  const applyTls = (cfg: Generation['config']['listen']['tls'], material: Generation['tls']): void => {
    if (tls === undefined || cfg === undefined || material === undefined) return
    try {
      tls.update(cfg, material)
    } catch (err) {
      // Checked by the acceptor first; if this thread still cannot build it, it keeps the old.
      log.error({ err }, 'new certificates could not be used; the old ones stay')
    }
  }

  const switchTo = (gen: Generation): void => {
    const old = state.current
    state.current = live(gen)
    applyServerLimits(server, gen.config)
    takeUpgrades(gen)
    applyTls(gen.config.listen.tls, gen.tls)
    stats.setGeneration(gen.number)
    retire(old)
    send({ type: 'generation-applied', number: gen.number })
  }

  const failed = (number: number, err: unknown): void => {
    const e = err instanceof GatewayError ? err : codes.GW_ERR_PLUGIN_CREATE('?', (err as Error)?.message ?? String(err))
    send({ type: 'generation-failed', number, error: e.toJSON() })
  }

  // Two-phase switch (DESIGN.md "Policy updates"): build and hold, then switch on commit,
  // so either every worker moves to the new generation or none does.
  const pending = new Map<number, Generation>()
  const build = async (msg: GenerationMessage): Promise<Generation> => await buildGeneration(msg, { mode: 'worker', log, pools, hotPath })

  return await new Promise((resolve) => {
    port.on('message', (m: AcceptorToWorker) => {
      if (m.type === 'prepare-generation') {
        build(m.generation).then((gen) => {
          pending.set(gen.number, gen)
          send({ type: 'generation-built', number: gen.number })
        }, (err: unknown) => failed(m.generation.number, err))
      } else if (m.type === 'commit-generation') {
        const gen = pending.get(m.number)
        pending.delete(m.number)
        if (gen === undefined) failed(m.number, new Error(`generation ${m.number} was not built here`))
        else switchTo(gen)
      } else if (m.type === 'abort-generation') {
        const gen = pending.get(m.number)
        pending.delete(m.number)
        if (gen !== undefined) void closeInstances(gen.instances, log)
      } else if (m.type === 'generation') {
        // Catch-up for a thread that started while an update was being applied.
        build(m.generation).then(switchTo, (err: unknown) => failed(m.generation.number, err))
      } else if (m.type === 'purge-cache') {
        send({ type: 'cache-purged', number: m.number, entries: purgeCaches(m.selector) })
      } else if (m.type === 'tls-material') {
        applyTls(state.current.gen.config.listen.tls, m.tls)
      } else if (m.type === 'drain') {
        state.draining = true
        // Stop accepting (this closes only our own socket), and let idle keep-alive
        // connections go now; busy ones close after their response (Connection: close).
        server.close()
        server.closeIdleConnections()
        // WebSocket tunnels are no longer the server's connections: they run until the drain
        // period ends, and are closed with everything else then.
        const deadline = setTimeout(() => { server.closeAllConnections(); tunnels.closeAll() }, m.deadlineMs)
        deadline.unref()
        const check = setInterval(() => {
          if (stats.read().inFlight === 0) server.closeIdleConnections()
        }, 50)
        server.once('close', () => {
          clearTimeout(deadline)
          clearInterval(check)
          void (async () => {
            send({ type: 'drained', inFlight: stats.read().inFlight })
            stats.reset()
            await closeInstances(state.current.gen.instances, log)
            await pools.closeAll()
            // Spans and security events of the last requests go out before the thread ends.
            await closeExporters()
            for (const d of openDestinations()) await flushDestination(d)
            // Only if cluster mode loaded it (import() of a loaded module is cached).
            if (first.config.cluster !== undefined || state.current.gen.config.cluster !== undefined) (await import('./cluster/worker-link.js')).closeWorkerLinks()
            await flushLogger(log)
            port.close()
            resolve({ served })
          })()
        })
      }
    })
  })
}

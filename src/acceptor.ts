import { MessageChannel } from 'node:worker_threads'
import type { MessagePort } from 'node:worker_threads'
import { Piscina } from 'piscina'
import type { Logger } from 'pino'
import type { RawConfig } from './config.js'
import { validateGatewayConfig } from './config.js'
import type { GatewayConfig } from './config-schema.js'
import { codes, GatewayError, reviveError } from './errors.js'
import { buildGeneration, closeInstances } from './generation.js'
import { choosePort, closeListenFd, openListenFd, releaseProbe, resolveListenHost } from './listen.js'
import { loadPlugins } from './plugin-loader.js'
import { IpTableError, nextIpRegion, switchIpRegion, writeIpTable } from './ip/table-writer.js'
import type { IpRegion } from './ip/table-writer.js'
import { runPrepare } from './prepare.js'
import { createSharedMemory, loadHotPath, setCounterEntries, setGeneration } from './shared-memory.js'
import type { HotPath } from './shared-memory.js'
import type { GenerationMessage, ServeTask, WorkerToAcceptor } from './types.js'

/** A validated config with its plugins resolved and prepared: what a generation is made from. */
export interface PreparedConfig {
  config: GatewayConfig
  source: string
  dir: string
  modules: Record<string, string>
  prepared: Record<string, unknown>
  /** The IP table region its sets were written to. */
  ipRegion: IpRegion
}

/** The shared memory and the acceptor's own WASM instance on it. */
export interface SharedState {
  memory: WebAssembly.Memory
  hotPath: HotPath
}

export async function createSharedState (): Promise<SharedState> {
  const memory = createSharedMemory()
  return { memory, hotPath: await loadHotPath(memory) }
}

/**
 * Validate a raw config whole: the gateway schema, every plugin's schema, every route's
 * pipeline, every plugin's prepare() (their CIDR lists written into IP table `region`, which
 * no running generation may be reading), and every plugin's create() in a dry run (then
 * closed). Throws GW_ERR_CONFIG_INVALID with `file: /path: reason` details.
 */
export async function prepareConfig (raw: RawConfig, log: Logger, shared: SharedState, region: IpRegion = nextIpRegion(shared.memory)): Promise<PreparedConfig> {
  const config = validateGatewayConfig(raw)
  const { modules, plugins } = await loadPlugins(config, raw.source, raw.dir)
  const { prepared, ipSets } = await runPrepare(config, plugins, raw.source, raw.dir, log)
  try {
    writeIpTable(shared.memory, region, ipSets)
  } catch (err) {
    if (!(err instanceof IpTableError)) throw err
    throw codes.GW_ERR_CONFIG_INVALID(raw.source, 1, { details: [`${raw.source}: ${err.message}`] })
  }
  const msg: GenerationMessage = { number: 0, config, configDir: raw.dir, modules, prepared, ipRegion: region }
  try {
    const gen = await buildGeneration(msg, { mode: 'dry-run', log, hotPath: shared.hotPath })
    await closeInstances(gen.instances, log)
  } catch (err) {
    if (err instanceof GatewayError) {
      const details = err.details.map((d) => `${raw.source}: ${d}`)
      throw codes.GW_ERR_CONFIG_INVALID(raw.source, details.length, { details, cause: err })
    }
    throw err
  }
  return { config, source: raw.source, dir: raw.dir, modules, prepared, ipRegion: region }
}

interface Slot {
  index: number
  fd: number
  port: MessagePort | undefined
  ready: boolean
  task: Promise<unknown> | undefined
  /** Starts in a row that died before serving; a slot that cannot start is given up. */
  failedStarts: number
}

export interface ListeningInfo { host: string, port: number, workers: number }

const MAX_FAILED_STARTS = 3

/**
 * The acceptor (main thread): owns the config, the shared memory and the listening sockets,
 * and runs one long-lived serve task per worker thread through piscina. A thread that dies
 * is replaced by piscina (minThreads); we then give the new thread a fresh socket and serve
 * task, while the other threads keep serving.
 */
export class Acceptor {
  readonly memory: WebAssembly.Memory
  readonly #log: Logger
  #prepared: PreparedConfig
  #generation = 1
  #pool: Piscina | undefined
  #slots: Slot[] = []
  #host = ''
  #port = 0
  #closing = false
  #started = false
  #readyWaiters = new Map<number, { resolve: () => void, reject: (e: Error) => void }>()

  constructor (prepared: PreparedConfig, shared: SharedState, log: Logger) {
    this.#prepared = prepared
    this.#log = log
    this.memory = shared.memory
    setGeneration(this.memory, this.#generation)
    switchIpRegion(this.memory, prepared.ipRegion)
    // Before any worker exists: the mask is fixed for the life of the memory.
    setCounterEntries(this.memory, prepared.config.counters.entries)
  }

  get generation (): number { return this.#generation }

  #message (): GenerationMessage {
    const p = this.#prepared
    return { number: this.#generation, config: p.config, configDir: p.dir, modules: p.modules, prepared: p.prepared, ipRegion: p.ipRegion }
  }

  async start (): Promise<ListeningInfo> {
    const { config } = this.#prepared
    this.#host = await resolveListenHost(config.listen.host)
    this.#port = await choosePort(this.#host, config.listen.port)
    const n = config.workers
    this.#pool = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: n,
      maxThreads: n,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      // The serve task never returns until shutdown; piscina's Atomics.wait between tasks
      // would only matter after that.
      atomics: 'disabled'
    })
    this.#pool.on('error', (err: Error) => this.#log.error({ err }, 'worker pool error'))
    const ready: Array<Promise<void>> = []
    for (let i = 0; i < n; i++) {
      const slot: Slot = { index: i, fd: -1, port: undefined, ready: false, task: undefined, failedStarts: 0 }
      this.#slots.push(slot)
      ready.push(this.#startSlot(slot))
    }
    try {
      await Promise.all(ready)
      this.#started = true
    } catch (err) {
      await this.close(0)
      throw err
    }
    return { host: this.#host, port: this.#port, workers: n }
  }

  #startSlot (slot: Slot): Promise<void> {
    const pool = this.#pool as Piscina
    slot.fd = openListenFd(this.#host, this.#port)
    releaseProbe(this.#port)
    slot.ready = false
    const { port1, port2 } = new MessageChannel()
    slot.port = port1
    const readyP = this.#started
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => this.#readyWaiters.set(slot.index, { resolve, reject }))
    port1.on('message', (m: WorkerToAcceptor) => this.#onWorkerMessage(slot, m))
    const task: ServeTask = { slot: slot.index, fd: slot.fd, memory: this.memory, port: port2, generation: this.#message(), logLevel: this.#prepared.config.logLevel }
    slot.task = pool.run(task, { transferList: [port2] }).then(
      () => { port1.close() },
      (err: unknown) => this.#onSlotDied(slot, err)
    )
    return readyP
  }

  #onWorkerMessage (slot: Slot, m: WorkerToAcceptor): void {
    if (m.type === 'ready') {
      slot.ready = true
      slot.failedStarts = 0
      this.#log.info({ slot: slot.index, threadId: m.threadId }, 'worker serving')
      this.#readyWaiters.get(slot.index)?.resolve()
      this.#readyWaiters.delete(slot.index)
    } else if (m.type === 'generation-failed') {
      this.#log.error({ slot: slot.index, error: m.error }, 'worker could not apply generation')
    }
  }

  #onSlotDied (slot: Slot, err: unknown): void {
    slot.port?.close()
    const wasReady = slot.ready
    slot.ready = false
    // A thread that never listened did not take ownership of its fd; close it here.
    if (!wasReady) closeListenFd(slot.fd)
    if (this.#closing) return
    const e = err instanceof Error ? err : (err !== null && typeof err === 'object' && 'code' in err) ? reviveError(err as never) : new Error(String(err))
    const waiter = this.#readyWaiters.get(slot.index)
    if (waiter !== undefined) {
      // Still starting up: a thread that cannot start fails the start, whole.
      this.#readyWaiters.delete(slot.index)
      waiter.reject(e instanceof GatewayError ? e : codes.GW_ERR_WORKER_START(e.message))
      return
    }
    if (!wasReady && ++slot.failedStarts >= MAX_FAILED_STARTS) {
      this.#log.fatal({ err: e, slot: slot.index }, 'worker thread keeps failing to start; slot given up')
      return
    }
    this.#log.error({ err: e, slot: slot.index }, 'worker thread died; replacing it')
    // piscina has already started a fresh thread (minThreads); give it a socket and a task.
    this.#startSlot(slot).catch((e2: Error) => this.#log.error({ err: e2, slot: slot.index }, 'replacement worker failed'))
  }

  /** Stop accepting, let in-flight requests finish up to `deadlineMs`, stop the threads. */
  async close (deadlineMs: number): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    for (const s of this.#slots) {
      if (s.ready) s.port?.postMessage({ type: 'drain', deadlineMs })
      else closeListenFd(s.fd)
    }
    // Serve tasks resolve once their server has closed and their logs are flushed.
    const hardStop = new Promise((resolve) => setTimeout(resolve, deadlineMs + 2000).unref())
    await Promise.race([Promise.allSettled(this.#slots.map((s) => s.task)), hardStop])
    await this.#pool?.destroy()
  }
}

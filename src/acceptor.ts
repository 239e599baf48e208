import { MessageChannel } from 'node:worker_threads'
import type { MessagePort } from 'node:worker_threads'
import { Piscina } from 'piscina'
import type { Logger } from 'pino'
import type { RawConfig } from './config.js'
import { validateGatewayConfig } from './config.js'
import type { GatewayConfig, PluginRef } from './config-schema.js'
import type { Plugin } from './plugin.js'
import type { PurgeSelector } from './cache-purge.js'
import { codes, GatewayError, reviveError } from './errors.js'
import { buildGeneration, closeInstances } from './generation.js'
import { choosePort, closeListenFd, openListenFd, releaseProbe, resolveListenHost } from './listen.js'
import { loadPlugins } from './plugin-loader.js'
import { IpTableError, nextIpRegion, switchIpRegion, writeIpTable } from './ip/table-writer.js'
import { WorkerStats } from './worker-stats.js'
import { blockStats } from './block-list.js'
import { clusterStats } from './cluster/stats.js'
import { GatewayMetrics } from './metrics/exposition.js'
import { createMetricsRegion } from './metrics/writer.js'
import type { IpRegion } from './ip/table-writer.js'
import { runPrepare } from './prepare.js'
import { createSharedMemory, loadHotPath, setCounterEntries, setGeneration } from './shared-memory.js'
import type { HotPath } from './shared-memory.js'
import type { GenerationMessage, ServeTask, WorkerToAcceptor } from './types.js'
import { UpstreamRegistry } from './upstream/registry.js'
import type { UpstreamStatus } from './upstream/status.js'
import { loadTlsMaterial, TlsFileError } from './tls/material.js'
import type { TlsMaterial } from './tls/material.js'
import { CertWatcher } from './tls/reload.js'
import { warnInsecureUpstreams } from './tls/upstream.js'

/** A validated config with its plugins resolved and prepared: what a generation is made from. */
export interface PreparedConfig {
  config: GatewayConfig
  source: string
  dir: string
  modules: Record<string, string>
  prepared: Record<string, unknown>
  /** The IP table region its sets were written to. */
  ipRegion: IpRegion
  /** What worker threads get: the config without the keys plugins' prepare() consumed. */
  workerConfig: GatewayConfig
  /** The listener's certificates, read from their files (listen.tls). */
  tls?: TlsMaterial
  /** Set when the IP sets are not yet in `ipRegion`: compiles and writes them (publish). */
  writeIpTable?: () => void
}

/** The config minus every plugin entry's `preparedKeys` (see PluginDefinition). */
function configForWorkers (config: GatewayConfig, plugins: Map<string, Plugin>): GatewayConfig {
  const slim = (refs: PluginRef[]): PluginRef[] => refs.map((ref) => {
    const keys = plugins.get(ref.name)?.preparedKeys
    if (keys === undefined || keys.length === 0) return ref
    const c = { ...ref.config }
    for (const k of keys) delete c[k]
    return { ...ref, config: c }
  })
  return { ...config, plugins: slim(config.plugins), routes: config.routes.map((r) => ({ ...r, plugins: slim(r.plugins) })) }
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
export async function prepareConfig (raw: RawConfig, log: Logger, shared: SharedState, region: IpRegion = nextIpRegion(shared.memory), opts: { dryRun?: boolean } = {}): Promise<PreparedConfig> {
  const config = validateGatewayConfig(raw, { warn: (msg) => log.warn(msg) })
  const { modules, plugins } = await loadPlugins(config, raw.source, raw.dir)
  const { prepared, compileIpTable } = await runPrepare(config, plugins, raw.source, raw.dir, log)
  const writeTable = (): void => {
    const table = compileIpTable()
    try {
      writeIpTable(shared.memory, region, table)
    } catch (err) {
      if (!(err instanceof IpTableError)) throw err
      throw codes.GW_ERR_CONFIG_INVALID(raw.source, 1, { details: [`${raw.source}: ${err.message}`] })
    }
  }
  const workerConfig = configForWorkers(config, plugins)
  let tls: TlsMaterial | undefined
  if (config.listen.tls !== undefined) {
    try {
      tls = loadTlsMaterial(config.listen.tls, raw.dir)
    } catch (err) {
      if (!(err instanceof TlsFileError)) throw err
      throw codes.GW_ERR_CONFIG_INVALID(raw.source, 1, { details: [`${raw.source}: ${err.at}: ${codes.GW_ERR_TLS_CERT(err.file, err.reason).message}`] })
    }
  }
  warnInsecureUpstreams(config, log)
  const out: PreparedConfig = { config, source: raw.source, dir: raw.dir, modules, prepared, ipRegion: region, workerConfig, tls }
  // A live update skips the dry run: every worker builds the generation before any switches
  // to it (publish), which is the same check, so a failure there is reported the same way.
  // Its IP table is compiled there too, while the workers build (they need only set ids).
  if (opts.dryRun === false) return { ...out, writeIpTable: writeTable }
  writeTable()
  // The dry run sees exactly what the workers will see.
  const msg: GenerationMessage = { number: 0, config: workerConfig, configDir: raw.dir, modules, prepared, ipRegion: region, tls }
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
  return out
}

interface Slot {
  index: number
  fd: number
  port: MessagePort | undefined
  ready: boolean
  task: Promise<unknown> | undefined
  /** Starts in a row that died before serving; a slot that cannot start is given up. */
  failedStarts: number
  threadId: number | undefined
  /** Generations this worker may still run requests under (current + not yet retired). */
  live: Set<number>
  stats: WorkerStats
  /** This slot's metrics region: kept across thread replacements (counters never go back). */
  metrics: SharedArrayBuffer
}

/** A generation the acceptor has published, and the IP region it pins. */
interface GenerationRecord { number: number, prepared: PreparedConfig }

/** How long workers get to build a new generation before the update is refused. */
const BUILD_TIMEOUT_MS = 30_000
/** How long an update waits for the other IP region to be released by an old generation. */
const REGION_WAIT_MS = 60_000

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
  #generations = new Map<number, GenerationRecord>()
  #shared: SharedState
  /** Updates run one at a time, in arrival order. */
  #queue: Promise<unknown> = Promise.resolve()
  /** Waiters for worker replies during an update: `${kind}:${number}` -> callbacks. */
  #replies = new Map<string, (slot: Slot, m: WorkerToAcceptor) => void>()
  #retiredWaiters: Array<() => void> = []
  /** Upstream health and ejection state shared with workers; active probes run here. */
  readonly #upstreams: UpstreamRegistry
  #certWatcher: CertWatcher | undefined
  readonly startedAt = Date.now()
  /** /metrics: set once the slots exist (start()). */
  metrics: GatewayMetrics | undefined

  constructor (prepared: PreparedConfig, shared: SharedState, log: Logger) {
    this.#prepared = prepared
    this.#shared = shared
    this.#generations.set(1, { number: 1, prepared })
    this.#log = log
    this.#upstreams = new UpstreamRegistry(log)
    this.memory = shared.memory
    setGeneration(this.memory, this.#generation)
    switchIpRegion(this.memory, prepared.ipRegion)
    // Before any worker exists: the mask is fixed for the life of the memory.
    setCounterEntries(this.memory, prepared.config.counters.entries)
  }

  get generation (): number { return this.#generation }
  get prepared (): PreparedConfig { return this.#prepared }
  get shared (): SharedState { return this.#shared }
  get listening (): { host: string, port: number } { return { host: this.#host, port: this.#port } }

  /** Per-slot view for /status, read from the workers' stats lines in shared memory. */
  workers (): Array<{ slot: number, alive: boolean, threadId: number | undefined, generation: number | undefined, inFlight: number | undefined }> {
    return this.#slots.map((s) => {
      const st = s.stats.read()
      return { slot: s.index, alive: s.ready, threadId: s.threadId, generation: s.ready ? st.generation : undefined, inFlight: s.ready ? st.inFlight : undefined }
    })
  }

  /** Per-upstream view for /status: targets' health, ejections and in-flight counts. */
  upstreams (): UpstreamStatus[] {
    return this.#upstreams.status(this.#prepared.config)
  }

  #message (): GenerationMessage {
    const p = this.#prepared
    return { number: this.#generation, config: p.workerConfig, configDir: p.dir, modules: p.modules, prepared: p.prepared, ipRegion: p.ipRegion, upstreams: this.#upstreams.sync(p.config, p.dir), tls: p.tls }
  }

  /**
   * Watch the listener's certificate files (listen.tls.watch). A change is read and checked
   * like a config's; good material goes to every worker (new connections get it, open ones
   * keep theirs), and a bad file is logged and the certificates being served stay.
   */
  #watchCertificates (): void {
    this.#certWatcher?.close()
    this.#certWatcher = undefined
    const { tls: cfg } = this.#prepared.config.listen
    const files = this.#prepared.tls?.files
    if (cfg === undefined || files === undefined || !cfg.watch) return
    this.#certWatcher = new CertWatcher(files, () => { void this.serialize(async () => await this.reloadCertificates()) })
  }

  /** Re-read the certificate files and hand them to the workers; false when they are refused. */
  async reloadCertificates (): Promise<boolean> {
    const p = this.#prepared
    if (p.config.listen.tls === undefined || this.#closing) return false
    let tls: TlsMaterial
    try {
      tls = loadTlsMaterial(p.config.listen.tls, p.dir)
    } catch (err) {
      if (!(err instanceof TlsFileError)) throw err
      const e = codes.GW_ERR_TLS_CERT(err.file, err.reason)
      this.#log.error({ code: e.code, at: err.at, file: err.file, reason: err.reason }, 'certificate files not reloaded; the certificates being served stay')
      return false
    }
    this.#prepared = { ...p, tls }
    const record = this.#generations.get(this.#generation)
    if (record !== undefined) record.prepared = this.#prepared
    for (const s of this.#slots) if (s.ready) s.port?.postMessage({ type: 'tls-material', tls })
    this.#log.info({ certificates: tls.certificates.map((c) => ({ file: c.certFile, names: c.names, notAfter: c.notAfter })) }, 'certificates reloaded')
    return true
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
      const slot: Slot = { index: i, fd: -1, port: undefined, ready: false, task: undefined, failedStarts: 0, threadId: undefined, live: new Set(), stats: new WorkerStats(this.memory, i), metrics: createMetricsRegion() }
      this.#slots.push(slot)
    }
    this.metrics = new GatewayMetrics({ regions: this.#slots.map((s) => s.metrics), generation: () => this.#generation, blocks: () => blockStats(this.memory), cluster: this.#prepared.config.cluster === undefined ? undefined : clusterStats })
    for (const slot of this.#slots) ready.push(this.#startSlot(slot))
    try {
      await Promise.all(ready)
      this.#started = true
      this.#watchCertificates()
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
    const task: ServeTask = { slot: slot.index, fd: slot.fd, memory: this.memory, metrics: slot.metrics, port: port2, generation: this.#message(), logLevel: this.#prepared.config.logLevel }
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
      slot.threadId = m.threadId
      slot.live = new Set([m.generation])
      this.#log.info({ slot: slot.index, threadId: m.threadId, generation: m.generation }, 'worker serving')
      this.#readyWaiters.get(slot.index)?.resolve()
      this.#readyWaiters.delete(slot.index)
      // Started while an update was being applied: bring it to the current generation.
      if (m.generation !== this.#generation) slot.port?.postMessage({ type: 'generation', generation: this.#message() })
      return
    }
    if (m.type === 'generation-applied') slot.live.add(m.number)
    if (m.type === 'generation-retired') {
      slot.live.delete(m.number)
      const waiters = this.#retiredWaiters
      this.#retiredWaiters = []
      for (const w of waiters) w()
    }
    if (m.type === 'generation-failed' && this.#replies.size === 0) {
      this.#log.error({ slot: slot.index, error: m.error }, 'worker could not apply generation')
    }
    if ('number' in m) {
      const key = m.type === 'generation-built' || m.type === 'generation-failed' ? `built:${m.number}` : `${m.type}:${m.number}`
      this.#replies.get(key)?.(slot, m)
    }
  }

  /** Whether some worker may still be answering requests from IP region `region`. */
  #regionInUse (region: IpRegion): boolean {
    for (const s of this.#slots) {
      if (!s.ready) continue
      for (const n of s.live) if (this.#generations.get(n)?.prepared.ipRegion === region) return true
    }
    return false
  }

  async #waitForRegion (region: IpRegion): Promise<void> {
    const deadline = Date.now() + REGION_WAIT_MS
    while (this.#regionInUse(region)) {
      if (Date.now() > deadline) throw codes.GW_ERR_UPDATE_FAILED(`requests of an earlier generation still hold the IP tables after ${REGION_WAIT_MS / 1000} s; try again`)
      await new Promise<void>((resolve) => {
        this.#retiredWaiters.push(resolve)
        setTimeout(resolve, 200).unref()
      })
    }
  }

  /**
   * Validate and prepare a config for the next generation, without publishing it: the
   * config's IP sets are written into the region no live generation reads.
   */
  async prepareNext (raw: RawConfig): Promise<PreparedConfig> {
    const region = nextIpRegion(this.memory)
    await this.#waitForRegion(region)
    const next = await prepareConfig(raw, this.#log, this.#shared, region, { dryRun: false })
    // The workers' servers are plain or TLS from the start: say so rather than keep serving
    // plain HTTP under a config that asks for TLS.
    if ((next.config.listen.tls === undefined) !== (this.#prepared.config.listen.tls === undefined)) {
      throw codes.GW_ERR_UPDATE_FAILED('turning TLS on or off on the listener needs a restart')
    }
    return next
  }

  /**
   * Apply a prepared config as the next generation, in two phases: every worker builds and
   * holds it; then, only if all built it, every worker switches between requests (a request
   * runs start to end under one generation). Any failure aborts everywhere and the running
   * generation stays. Resolves with the new generation's number.
   */
  async publish (next: PreparedConfig, beforeCommit?: () => Promise<void>): Promise<number> {
    const number = this.#generation + 1
    const msg: GenerationMessage = { number, config: next.workerConfig, configDir: next.dir, modules: next.modules, prepared: next.prepared, ipRegion: next.ipRegion, upstreams: this.#upstreams.sync(next.config, next.dir), tls: next.tls }
    const slots = this.#slots.filter((s) => s.ready)
    const building = this.#collect(slots, `built:${number}`, (s) => s.port?.postMessage({ type: 'prepare-generation', generation: msg }))
    // The workers build on their threads while this one compiles the IP table; a bad list is
    // known only now, and the workers are let finish before they are told to drop the build.
    let tableError: unknown
    try {
      next.writeIpTable?.()
    } catch (err) {
      tableError = err
    }
    const built = await building
    const failures = built.filter((r) => r.m.type === 'generation-failed')
    if (tableError !== undefined || failures.length > 0 || built.length < slots.length) {
      for (const s of slots) s.port?.postMessage({ type: 'abort-generation', number })
      this.#upstreams.retain(this.#prepared.config)
      if (tableError !== undefined) throw tableError
      const first = failures[0]?.m
      // A plugin's create() refusing its config is a bad config (400), as the dry run at
      // startup reports it: every detail line names the file and the entry.
      const details = first?.type === 'generation-failed' ? first.error.details ?? [] : []
      if (details.length > 0) throw codes.GW_ERR_CONFIG_INVALID(next.source, details.length, { details: details.map((d) => `${next.source}: ${d}`) })
      const why = first?.type === 'generation-failed' ? first.error.message : `only ${built.length} of ${slots.length} workers answered within ${BUILD_TIMEOUT_MS / 1000} s`
      throw codes.GW_ERR_UPDATE_FAILED(why)
    }
    // Every worker holds the generation; what must be done before anyone switches (the
    // version written to disk) can still call the switch off.
    if (beforeCommit !== undefined) {
      try {
        await beforeCommit()
      } catch (err) {
        for (const s of slots) s.port?.postMessage({ type: 'abort-generation', number })
        this.#upstreams.retain(this.#prepared.config)
        throw err
      }
    }
    // From here the new generation is the one new and replacement threads get.
    this.#generations.set(number, { number, prepared: next })
    this.#generation = number
    this.#prepared = next
    switchIpRegion(this.memory, next.ipRegion)
    setGeneration(this.memory, number)
    this.#upstreams.retain(next.config)
    this.#watchCertificates()
    await this.#collect(slots, `generation-applied:${number}`, (s) => s.port?.postMessage({ type: 'commit-generation', number }))
    // Records no worker can be running any more are dropped.
    for (const n of this.#generations.keys()) {
      if (n !== number && !this.#slots.some((s) => s.live.has(n))) this.#generations.delete(n)
    }
    return number
  }

  /**
   * Drop cached responses in every worker (each keeps its own caches); resolves with the
   * number of workers that answered and of entries dropped.
   */
  async purgeCache (selector: PurgeSelector): Promise<{ workers: number, entries: number }> {
    const number = ++this.#purges
    const slots = this.#slots.filter((s) => s.ready)
    const got = await this.#collect(slots, `cache-purged:${number}`, (s) => s.port?.postMessage({ type: 'purge-cache', number, selector }))
    let entries = 0
    for (const g of got) if (g.m.type === 'cache-purged') entries += g.m.entries
    return { workers: got.length, entries }
  }

  #purges = 0

  /** Send to each slot and gather one reply each (or stop at the timeout). */
  #collect (slots: Slot[], key: string, send: (s: Slot) => void): Promise<Array<{ slot: Slot, m: WorkerToAcceptor }>> {
    return new Promise((resolve) => {
      const got: Array<{ slot: Slot, m: WorkerToAcceptor }> = []
      const done = (): void => {
        clearTimeout(timer)
        this.#replies.delete(key)
        resolve(got)
      }
      const timer = setTimeout(done, BUILD_TIMEOUT_MS)
      this.#replies.set(key, (slot, m) => {
        if (got.some((g) => g.slot === slot)) return
        got.push({ slot, m })
        if (got.length === slots.length) done()
      })
      for (const s of slots) send(s)
      if (slots.length === 0) done()
    })
  }

  /** Run updates one at a time. */
  serialize<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return run
  }

  #onSlotDied (slot: Slot, err: unknown): void {
    slot.port?.close()
    const wasReady = slot.ready
    slot.ready = false
    // Its generations died with it: they pin no IP region any more.
    slot.live.clear()
    for (const w of this.#retiredWaiters.splice(0)) w()
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
    this.metrics?.workerRestarted()
    // piscina has already started a fresh thread (minThreads); give it a socket and a task.
    this.#startSlot(slot).catch((e2: Error) => this.#log.error({ err: e2, slot: slot.index }, 'replacement worker failed'))
  }

  /** Stop accepting, let in-flight requests finish up to `deadlineMs`, stop the threads. */
  async close (deadlineMs: number): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    this.#certWatcher?.close()
    for (const s of this.#slots) {
      if (s.ready) s.port?.postMessage({ type: 'drain', deadlineMs })
      else closeListenFd(s.fd)
    }
    // Serve tasks resolve once their server has closed and their logs are flushed.
    const hardStop = new Promise((resolve) => setTimeout(resolve, deadlineMs + 2000).unref())
    await Promise.race([Promise.allSettled(this.#slots.map((s) => s.task)), hardStop])
    await this.#upstreams.close()
    await this.#pool?.destroy()
  }
}

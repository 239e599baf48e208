import './test-clock.js'
import { isAbsolute, join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { Acceptor, createSharedState, prepareConfig } from './acceptor.js'
import { createAdminServer } from './admin/server.js'
import type { AdminConfig } from './admin/schema.js'
import type { RawConfig } from './config.js'
import { AuditLog } from './control/audit.js'
import { Control } from './control/gateway-control.js'
import { MemoryVersions } from './control/memory-store.js'
import { VersionStore } from './control/store.js'
import type { Versions } from './control/types.js'
import { watchFile } from './control/watch.js'
import { blockAdmin, canonicalIp, fleetBlockPlacer } from './block-list.js'
import type { BlockAdmin } from './admin/server.js'
import { onBlock, onFleetSync, onUnblock } from './cluster/blocks.js'
import { codes } from './errors.js'
import { flushLogger } from './log.js'
import { VERSION } from './version.js'

export interface ServeOptions {
  /** The config to start with (from the file, or made from flags). */
  raw: RawConfig
  log: Logger
  /** Re-read the config file (with command-line overrides) for file-watch and SIGHUP reloads. */
  reread?: () => Promise<RawConfig>
  /** The config file, when there is one: watched, and its directory holds the state dir. */
  file?: string
  banner?: (port: number, host: string) => string
}

function adminBlock (value: unknown): Partial<AdminConfig> | undefined {
  const v = value as { admin?: Partial<AdminConfig> } | null
  return typeof v === 'object' && v !== null && typeof v.admin === 'object' && v.admin !== null ? v.admin : undefined
}

/**
 * The version to start from. The state directory remembers what was applied, including
 * admin-API changes that the file does not have: those win, unless the file itself changed
 * since the gateway last read it (someone edited it while the gateway was down), in which
 * case the file wins and becomes a new version.
 */
function chooseStart (store: Versions, raw: RawConfig): { value: unknown, fromStore: boolean } {
  const latest = store.latest()
  if (latest === undefined) return { value: raw.value, fromStore: false }
  const lastFromFile = store.list().find((v) => v.actor === 'file' || v.actor === 'startup' || v.actor === 'signal')
  if (lastFromFile !== undefined && JSON.stringify(lastFromFile.raw) === JSON.stringify(raw.value)) return { value: latest.raw, fromStore: true }
  return { value: raw.value, fromStore: false }
}

/** Serve until SIGTERM/SIGINT; then drain and resolve with the exit code (0). */
export async function serve (opts: ServeOptions): Promise<number> {
  const { log, raw } = opts
  const admin = adminBlock(raw.value)
  const stateDir = opts.file === undefined
    ? undefined
    : (() => { const d = admin?.stateDir ?? '.tollgate'; return isAbsolute(d) ? d : resolve(raw.dir, d) })()
  const store: Versions = stateDir === undefined ? new MemoryVersions(admin?.keepVersions) : await VersionStore.open(stateDir, { keep: admin?.keepVersions })
  for (const w of (store as { warnings?: string[] }).warnings ?? []) log.warn({ stateDir }, w)
  const start = chooseStart(store, raw)
  const startRaw: RawConfig = { ...raw, value: start.value }

  const shared = await createSharedState()
  const prepared = await prepareConfig(startRaw, log, shared)
  if (prepared.config.logLevel !== log.level) log.level = prepared.config.logLevel
  const acceptor = new Acceptor(prepared, shared, log)
  const info = await acceptor.start()
  if (!start.fromStore) await store.append({ raw: start.value, appliedAt: new Date().toISOString(), actor: 'startup', reason: 'startup', generation: acceptor.generation })
  const audit = stateDir === undefined ? undefined : AuditLog.open(join(stateDir, 'audit.log'))
  audit?.record({ actor: 'startup', action: 'startup', result: 'applied', versionAfter: store.latest()?.version, generation: acceptor.generation })
  const local = new Control(acceptor, store, audit, log, raw.dir)
  // Cluster mode: the same control plane, with every local update published to the fleet
  // and the fleet's updates applied here (src/cluster/policy-sync.ts).
  const clusterConfig = prepared.config.cluster
  // Loaded only when configured: a single instance never loads the Redis client.
  const cluster = clusterConfig === undefined ? undefined : new (await import('./cluster/node.js')).ClusterNode(clusterConfig, { log, hotPath: shared.hotPath, port: info.port })
  const control = cluster === undefined ? local : cluster.control(local)
  // The fleet's auto-blocks (threat-guard on any instance) go into this process's table.
  // Those taken from the fleet are remembered (address -> when heard, until), so that a lift
  // this instance missed is found at its next (re)connect (onFleetSync).
  const placeFleetBlock = fleetBlockPlacer(shared.hotPath)
  const localBlocks = blockAdmin(shared.memory, shared.hotPath)
  const fromFleet = new Map<string, { heardAt: number, until: number }>()
  const liftHere = (ip: string, why: string): void => {
    try {
      if (localBlocks.lift(ip)) log.info({ ip }, why)
    } catch (err) {
      log.warn({ ip, err: (err as Error).message }, 'cluster: a fleet block lift was not applied here')
    }
  }
  const stopFleetBlocks = cluster === undefined
    ? undefined
    : [
        onBlock((ip, until) => {
          const r = placeFleetBlock(ip, until)
          if (r === 'table-full' || r === 'busy' || r === 'invalid') log.warn({ ip, result: r }, 'cluster: a fleet auto-block was not placed here')
          else if (r !== 'expired') fromFleet.set(ip, { heardAt: Date.now(), until: Math.max(until, fromFleet.get(ip)?.until ?? 0) })
        }),
        // A lift announced by any instance (its admin API) ends the block in this process's table.
        onUnblock((ip) => {
          fromFleet.delete(ip)
          liftHere(ip, 'cluster: a block lifted by the fleet was lifted here')
        }),
        // After a (re)connect: a block heard from the fleet before Redis was asked, and no
        // longer in Redis, was lifted elsewhere while this instance did not hear (or expired).
        onFleetSync((ips, askedAt) => {
          const now = Date.now()
          for (const [ip, e] of fromFleet) {
            if (e.until <= now) fromFleet.delete(ip)
            else if (e.heardAt < askedAt && !ips.has(ip)) {
              fromFleet.delete(ip)
              liftHere(ip, 'cluster: a block lifted by the fleet while this instance did not hear was lifted here')
            }
          }
        })
      ]
  // In cluster mode DELETE /blocks/:ip lifts the block fleet-wide: Redis first (the stored
  // entry removed, the lift announced), then this table at once for the answer. Redis
  // unreachable: nothing is lifted and the admin is told (a lift here only would come back
  // with the next replay of the stored entry).
  const blocks: BlockAdmin = cluster === undefined
    ? localBlocks
    : {
        ...localBlocks,
        lift: async (ip) => {
          const canonical = canonicalIp(ip)
          if (canonical === undefined) throw new RangeError(`'${ip.slice(0, 60)}' is not an IP address`)
          let stored: boolean
          try {
            stored = await cluster.unblock(canonical, ip)
          } catch (err) {
            throw codes.GW_ERR_BLOCK_LIFT_UNAVAILABLE(canonical, (err as Error).message)
          }
          return localBlocks.lift(canonical) || stored
        }
      }

  const reload = async (actor: string): Promise<void> => {
    if (opts.reread === undefined) return
    let next: RawConfig
    try {
      next = await opts.reread()
    } catch (err) {
      log.warn({ actor, err: (err as Error).message, details: (err as { details?: unknown }).details }, 'config file not reloaded; the running config stays')
      audit?.record({ actor, action: 'apply', result: 'refused', reason: (err as Error).message, problems: (err as { details?: string[] }).details })
      acceptor.metrics?.configUpdate('refused')
      return
    }
    await control.apply(next.value, actor, { source: next.source, reason: actor === 'file' ? 'file changed' : 'SIGHUP' })
  }

  const adminServer = admin === undefined || admin.enabled === false
    ? undefined
    : createAdminServer(control, prepared.config.admin as AdminConfig, { log, audit, metrics: acceptor.metrics, blocks, reloadFromFile: opts.reread === undefined ? undefined : async (actor) => { const next = await (opts.reread as () => Promise<RawConfig>)(); return await control.apply(next.value, actor, { source: next.source, reason: 'reload' }) } })
  const adminAddress = adminServer === undefined ? undefined : await adminServer.listen()

  const watcher = opts.file === undefined ? undefined : watchFile(opts.file, () => { void reload('file') })
  if (opts.banner !== undefined) process.stderr.write(opts.banner(info.port, info.host))
  // Always written, whatever the log level: scripts and the bench wait for this line.
  log.child({}, { level: 'info' }).info({ host: info.host, port: info.port, workers: info.workers, generation: acceptor.generation, configVersion: store.latest()?.version, admin: adminAddress, version: VERSION }, 'listening')

  return await new Promise<number>((resolvePromise) => {
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now')
        void flushLogger(log).then(() => process.exit(1))
        return
      }
      stopping = true
      watcher?.close()
      const deadline = acceptor.prepared.config.limits.drainTimeout
      log.info({ signal, deadlineMs: deadline }, 'draining')
      void (async () => {
        await adminServer?.close()
        await acceptor.close(deadline)
        for (const stop of stopFleetBlocks ?? []) stop()
        await cluster?.close()
        await audit?.close()
        await store.close()
        log.info('stopped')
        await flushLogger(log)
        resolvePromise(0)
      })()
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
    process.on('SIGHUP', () => {
      if (opts.reread === undefined) log.warn('SIGHUP: no config file to reload')
      else void reload('signal')
    })
  })
}

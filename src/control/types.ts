/**
 * The policy-update control plane's shapes: what the admin API, the file watcher, SIGHUP and
 * the CLI ask of the gateway, and what the version store and the audit log keep.
 */

import type { PurgeSelector } from '../cache-purge.js'
import type { UpstreamStatus } from '../upstream/status.js'

/** Who asked for a change: an admin token's name, or 'file', 'signal', 'startup', 'cli'. */
export type Actor = string

/** One stored config version. `version` counts up from 1 and is never reused. */
export interface ConfigVersion {
  version: number
  /** The config as the user wrote it (parsed YAML/JSON, before defaults), secrets and all. */
  raw: unknown
  /** ISO time it was applied. */
  appliedAt: string
  actor: Actor
  /** What the change was: `apply`, `patch`, `rollback to 7`, ... */
  reason: string
  /** The gateway generation that runs it (in this process; generations restart at 1). */
  generation: number
}

/** A short, secret-free description of what changed between two configs. */
export interface ChangeSummary {
  routes: { added: string[], removed: string[], changed: string[] }
  /** Plugin entries whose config changed: `global:request-id`, `orders:rate-limit`. */
  plugins: { added: string[], removed: string[], changed: string[] }
  /** Top-level sections that changed: `listen`, `limits`, `clientIp`, ... */
  settings: string[]
}

export type UpdateResult =
  | { ok: true, version: number, generation: number, summary: ChangeSummary, ms: number }
  | { ok: false, code: string, message: string, problems: string[], status: number }

export interface WorkerStatus { slot: number, alive: boolean, threadId: number | undefined, generation: number | undefined, inFlight: number | undefined }

export interface GatewayStatus {
  version: string
  uptimeS: number
  configVersion: number
  generation: number
  workers: WorkerStatus[]
  listen: { host: string, port: number }
  /** Each upstream's targets: health (active and passive checks), in-flight requests. */
  upstreams: UpstreamStatus[]
}

/**
 * What the running gateway offers to the admin API, the watcher and signals. Updates are
 * serialised: one at a time, in arrival order.
 */
export interface GatewayControl {
  /** The running config version. */
  current: () => ConfigVersion
  /** Versions kept, newest first. */
  versions: () => ConfigVersion[]
  /** A dry run: every check an update makes, nothing applied. */
  validate: (raw: unknown, source: string) => Promise<UpdateResult>
  /**
   * Apply a whole new config. `ifMatch`: the version the caller based it on; a mismatch
   * refuses with status 409 (code GW_ERR_CONFIG_CONFLICT).
   */
  apply: (raw: unknown, actor: Actor, opts?: { ifMatch?: number, reason?: string, source?: string }) => Promise<UpdateResult>
  /** Apply a kept version again as a new version. */
  rollback: (version: number, actor: Actor) => Promise<UpdateResult>
  status: () => GatewayStatus
  /** Drop cached responses in every worker (DELETE /cache); absent: that path answers 404. */
  purgeCache?: (selector: PurgeSelector) => Promise<{ workers: number, entries: number }>
}

/** What the control plane needs of a version store (src/control/store.ts on disk, or in memory). */
export interface Versions {
  latest: () => ConfigVersion | undefined
  get: (version: number) => ConfigVersion | undefined
  list: () => ConfigVersion[]
  append: (v: Omit<ConfigVersion, 'version'> & { version?: number }) => Promise<ConfigVersion>
  /**
   * The slow part of an append, done while workers build the generation: the number is
   * taken and the version written to a temporary file, synced. `commit()` makes it the
   * newest version (a rename); `abandon()` removes it (the number stays spent).
   */
  stage: (v: Omit<ConfigVersion, 'version'>) => Promise<StagedVersion>
  close: () => Promise<void>
}

export interface StagedVersion {
  readonly version: number
  commit: () => Promise<ConfigVersion>
  abandon: () => Promise<void>
}

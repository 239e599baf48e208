import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readdir, readFile, realpath, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { codes } from '../errors.js'
import type { ConfigVersion, StagedVersion, Versions } from './types.js'

/** `v000123.json`: zero-padded so a directory listing sorts by version. */
const FILE = /^v(\d{6,})\.json$/
const fileName = (version: number): string => `v${String(version).padStart(6, '0')}.json`
/** Holds `{"next": N}`: the number the next version gets, so a number is never reused. */
const COUNTER = 'next.json'
const LOCK = 'lock'
const TMP_SUFFIX = '.tmp'
/** A lock file with no pid in it yet is another process between open() and write(). */
const EMPTY_LOCK_GRACE_MS = 10_000

/** State directories this process holds: a second open() must fail even though the pid in the lock is ours. */
const held = new Set<string>()

/**
 * The kept config versions, on disk: a state directory with one JSON file per version
 * (`v000123.json`), so a restart comes back with the last applied version and a rollback
 * target survives restarts.
 *
 * The files hold the config as written, secrets included (API keys, JWT secrets), so the
 * directory is 0700 and every file 0600, and nothing here is ever logged.
 *
 * Every write is atomic: a temp file in the same directory, fsync, rename over the target,
 * fsync of the directory (so the rename itself survives a power cut). A crash leaves either
 * the old file or the new one, plus perhaps a temp file that the next open() removes.
 *
 * One state directory belongs to one gateway process: open() takes the `lock` file (created
 * with O_EXCL, the pid inside) and close() gives it back. A lock whose pid is no longer alive
 * (a crash, a kill -9) is taken over. Taking over is not atomic against a second process
 * doing the same at the same instant; that is two gateways started on one directory at once
 * after a crash, which the lock is there to report, not to arbitrate.
 *
 * Within the process, appends run one at a time (a promise chain), so numbers are assigned
 * in call order and files never race.
 */
export class VersionStore implements Versions {
  /** Problems met while opening (corrupt files skipped, a stale lock taken over) and pruning. */
  readonly warnings: string[] = []
  readonly dir: string
  readonly #keep: number
  /** Ascending by version. */
  #versions: ConfigVersion[] = []
  #next = 1
  #chain: Promise<unknown> = Promise.resolve()
  #closed = false

  private constructor (dir: string, keep: number) {
    this.dir = dir
    this.#keep = keep
  }

  /**
   * Open (creating it if needed) the state directory `dir` and read the versions kept there.
   * `keep`: how many versions to keep, default 50. Throws GW_ERR_STATE when the directory
   * cannot be used or another live process holds it.
   */
  static async open (dir: string, opts: { keep?: number } = {}): Promise<VersionStore> {
    const keep = opts.keep ?? 50
    if (!Number.isInteger(keep) || keep < 1) throw codes.GW_ERR_STATE(dir, `keep must be a positive integer, not ${String(keep)}`)
    let path: string
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 })
      path = await realpath(dir)
      const st = await stat(path)
      if (!st.isDirectory()) throw new Error('not a directory')
    } catch (err) {
      throw codes.GW_ERR_STATE(dir, (err as Error).message, { cause: err })
    }
    if (held.has(path)) throw codes.GW_ERR_STATE(dir, `already open in this process (pid ${process.pid})`)
    const store = new VersionStore(path, keep)
    await store.#lock()
    held.add(path)
    try {
      await store.#load()
    } catch (err) {
      await store.close()
      throw err
    }
    return store
  }

  /** The newest version: the one the gateway runs. */
  latest (): ConfigVersion | undefined { return this.#versions.at(-1) }

  get (version: number): ConfigVersion | undefined { return this.#versions.find((v) => v.version === version) }

  /** Every kept version, newest first. The objects are the store's own: treat them as read-only. */
  list (): ConfigVersion[] { return [...this.#versions].reverse() }

  /** The number the next append gets (unless it brings its own, higher one). */
  nextVersion (): number { return this.#next }

  /**
   * Store a version durably, then prune the oldest beyond `keep`. The number is the next one
   * unless `v.version` is given, which must not be lower (a number is never reused).
   */
  append (v: Omit<ConfigVersion, 'version'> & { version?: number }): Promise<ConfigVersion> {
    if (this.#closed) return Promise.reject(codes.GW_ERR_STATE(this.dir, 'the version store is closed'))
    const run = this.#chain.then(async () => await this.#append(v))
    this.#chain = run.catch(() => {})
    return run
  }

  /** Wait for pending appends, then release the lock. The store cannot be used afterwards. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#chain
    held.delete(this.dir)
    const lock = join(this.dir, LOCK)
    // Only remove the lock if it is still ours (an operator may have removed it and another
    // gateway taken the directory since).
    if ((await readLockPid(lock)).pid === process.pid) await unlink(lock).catch(() => {})
  }

  stage (v: Omit<ConfigVersion, 'version'>): Promise<StagedVersion> {
    if (this.#closed) return Promise.reject(codes.GW_ERR_STATE(this.dir, 'the version store is closed'))
    const run = this.#chain.then(async () => await this.#stage(v))
    this.#chain = run.catch(() => {})
    return run
  }

  async #stage (v: Omit<ConfigVersion, 'version'>): Promise<StagedVersion> {
    const version = this.#next
    const { entry, text } = this.#serialize({ ...v, version })
    let tmp: string
    try {
      // As in an append: the number is spent once the counter is on disk.
      const [, staged] = await Promise.all([
        writeAtomic(this.dir, COUNTER, JSON.stringify({ next: version + 1 }) + '\n'),
        writeTemp(this.dir, fileName(version), text)
      ])
      tmp = staged
      this.#next = version + 1
    } catch (err) {
      throw codes.GW_ERR_STATE(this.dir, `cannot write version ${version}: ${(err as Error).message}`, { cause: err })
    }
    let settled = false
    return {
      version,
      commit: async () => {
        if (settled) throw new Error(`version ${version} was already committed or abandoned`)
        settled = true
        const run = this.#chain.then(async () => {
          try {
            await rename(tmp, join(this.dir, fileName(version)))
            await syncDir(this.dir)
          } catch (err) {
            await unlink(tmp).catch(() => {})
            throw codes.GW_ERR_STATE(this.dir, `cannot write version ${version}: ${(err as Error).message}`, { cause: err })
          }
          this.#versions.push(entry)
          await this.#prune()
          return entry
        })
        this.#chain = run.catch(() => {})
        return await run
      },
      abandon: async () => {
        if (settled) return
        settled = true
        await unlink(tmp).catch(() => {})
      }
    }
  }

  /** The file text of a version, and the entry kept in memory: what a restart reads back. */
  #serialize (v: ConfigVersion): { entry: ConfigVersion, text: string } {
    try {
      const text = JSON.stringify({ version: v.version, raw: v.raw, appliedAt: v.appliedAt, actor: v.actor, reason: v.reason, generation: v.generation }, null, 2) + '\n'
      // Not the caller's object, which the caller may go on to change.
      return { entry: JSON.parse(text) as ConfigVersion, text }
    } catch (err) {
      throw codes.GW_ERR_STATE(this.dir, `version ${v.version} is not JSON: ${(err as Error).message}`, { cause: err })
    }
  }

  async #append (v: Omit<ConfigVersion, 'version'> & { version?: number }): Promise<ConfigVersion> {
    const version = v.version ?? this.#next
    if (!Number.isSafeInteger(version) || version < this.#next) {
      throw codes.GW_ERR_STATE(this.dir, `version ${String(version)} would reuse a number (next is ${this.#next})`)
    }
    const { entry, text } = this.#serialize({ ...v, version })
    try {
      // The counter first: once it is on disk the number is spent, even if the version file
      // never makes it (a crash, a full disk), so it is never handed out twice.
      await writeAtomic(this.dir, COUNTER, JSON.stringify({ next: version + 1 }) + '\n')
      this.#next = version + 1
      await writeAtomic(this.dir, fileName(version), text)
    } catch (err) {
      throw codes.GW_ERR_STATE(this.dir, `cannot write version ${version}: ${(err as Error).message}`, { cause: err })
    }
    this.#versions.push(entry)
    await this.#prune()
    return entry
  }

  /** Oldest first, until `keep` remain. A file that will not go is a warning, not a failed append. */
  async #prune (): Promise<void> {
    while (this.#versions.length > this.#keep) {
      const old = this.#versions.shift() as ConfigVersion
      await unlink(join(this.dir, fileName(old.version))).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') this.warnings.push(`cannot remove ${fileName(old.version)}: ${err.message}`)
      })
    }
  }

  async #lock (): Promise<void> {
    const lock = join(this.dir, LOCK)
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(lock, 'wx', 0o600)
        try {
          await fh.writeFile(`${process.pid}\n`)
          await fh.sync()
        } catch (err) {
          await unlink(lock).catch(() => {})
          throw err
        } finally {
          await fh.close()
        }
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw codes.GW_ERR_STATE(this.dir, `cannot create the lock file: ${(err as Error).message}`, { cause: err })
        }
      }
      const { pid, text, ageMs } = await readLockPid(lock)
      if (pid === undefined && text !== undefined && ageMs < EMPTY_LOCK_GRACE_MS) {
        throw codes.GW_ERR_STATE(this.dir, `the lock file ${lock} is being taken by another process`)
      }
      // Our own pid in a lock we do not hold (see `held`) is an earlier process that had the
      // same pid: usual in containers, where the gateway is pid 1 on every start.
      if (pid !== undefined && pid !== process.pid && isAlive(pid)) {
        throw codes.GW_ERR_STATE(this.dir, `in use by process ${pid} (one state directory per gateway; if no gateway runs as ${pid}, remove ${lock})`)
      }
      // Stale: re-read just before removing, so a lock another process took over in the
      // meantime is not removed.
      if (text !== undefined && (await readLockPid(lock)).text !== text) continue
      await unlink(lock).catch(() => {})
      if (text !== undefined) this.warnings.push(`took over a stale lock${pid === undefined ? ' without a pid' : ` of process ${pid}`}`)
    }
    throw codes.GW_ERR_STATE(this.dir, `cannot take the lock file ${lock}: another process keeps taking it`)
  }

  async #load (): Promise<void> {
    let names: string[]
    try {
      const st = await stat(this.dir)
      // The files hold secrets: a directory others can read is tightened.
      if ((st.mode & 0o077) !== 0) {
        await chmod(this.dir, 0o700).catch((err: Error) => this.warnings.push(`cannot make the directory 0700: ${err.message}`))
      }
      names = await readdir(this.dir)
    } catch (err) {
      throw codes.GW_ERR_STATE(this.dir, (err as Error).message, { cause: err })
    }

    // Leftovers of writes a crash interrupted. Safe to remove: we hold the lock, so no other
    // process is writing here.
    for (const name of names.filter((n) => n.endsWith(TMP_SUFFIX))) {
      await unlink(join(this.dir, name)).catch(() => {})
      this.warnings.push(`removed the leftover temp file ${name}`)
    }

    let maxSeen = 0
    const versions: ConfigVersion[] = []
    for (const name of names) {
      const m = FILE.exec(name)
      if (m === null) continue
      const number = Number(m[1])
      maxSeen = Math.max(maxSeen, number)
      try {
        const parsed: unknown = JSON.parse(await readFile(join(this.dir, name), 'utf8'))
        const problem = checkVersion(parsed, number)
        if (problem !== undefined) throw new Error(problem)
        versions.push(parsed as ConfigVersion)
      } catch (err) {
        this.warnings.push(`skipped ${name}: ${(err as Error).message}`)
      }
    }
    versions.sort((a, b) => a.version - b.version)
    this.#versions = versions

    let counter = 0
    try {
      const parsed = JSON.parse(await readFile(join(this.dir, COUNTER), 'utf8')) as { next?: unknown }
      if (!Number.isSafeInteger(parsed.next) || (parsed.next as number) < 1) throw new Error('no valid "next" number')
      counter = parsed.next as number
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warnings.push(`ignored ${COUNTER}: ${(err as Error).message}`)
    }
    // Every file name counts, the skipped ones too: their numbers were handed out.
    this.#next = Math.max(counter, maxSeen + 1, 1)
    await this.#prune()
  }
}

/** Why a parsed version file is not a ConfigVersion numbered `number`, or undefined if it is. */
function checkVersion (v: unknown, number: number): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not an object'
  const o = v as Record<string, unknown>
  if (o.version !== number) return `its version is ${String(o.version)}, its name says ${number}`
  if (!('raw' in o)) return 'no raw config'
  for (const k of ['appliedAt', 'actor', 'reason'] as const) if (typeof o[k] !== 'string') return `${k} is not a string`
  if (typeof o.generation !== 'number') return 'generation is not a number'
  return undefined
}

/**
 * Write `name` in `dir` so that it is either the old content or the new, never a mix: temp
 * file (0600: version files hold secrets), fsync, rename, fsync of the directory.
 */
/** Write `data` to a new temporary file next to `name`, synced; returns its path. */
async function writeTemp (dir: string, name: string, data: string): Promise<string> {
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}${TMP_SUFFIX}`)
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(data, 'utf8')
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  return tmp
}

async function writeAtomic (dir: string, name: string, data: string): Promise<void> {
  const tmp = await writeTemp(dir, name, data)
  try {
    await rename(tmp, join(dir, name))
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await syncDir(dir)
}

async function syncDir (dir: string): Promise<void> {
  let fh
  try {
    fh = await open(dir, 'r')
    await fh.sync()
  } catch (err) {
    // Some platforms and file systems cannot open or fsync a directory (Windows: EISDIR,
    // EPERM; some network file systems: EINVAL); the rename is then as durable as they get.
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'ENOTSUP') throw err
  } finally {
    await fh?.close()
  }
}

async function readLockPid (lock: string): Promise<{ pid: number | undefined, text: string | undefined, ageMs: number }> {
  try {
    const [text, st] = await Promise.all([readFile(lock, 'utf8'), stat(lock)])
    const n = Number(text.trim())
    return { pid: Number.isSafeInteger(n) && n > 0 ? n : undefined, text, ageMs: Date.now() - st.mtimeMs }
  } catch {
    return { pid: undefined, text: undefined, ageMs: 0 }
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to someone else; that is alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}


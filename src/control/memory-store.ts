import type { ConfigVersion, StagedVersion, Versions } from './types.js'

/**
 * Versions kept in memory only: for a gateway started without a config file (flags or the
 * demo), which has no state directory. Same numbering and pruning as the disk store.
 */
export class MemoryVersions implements Versions {
  readonly #keep: number
  #list: ConfigVersion[] = []
  #next = 1

  constructor (keep = 50) { this.#keep = keep }

  latest (): ConfigVersion | undefined { return this.#list.at(-1) }
  get (version: number): ConfigVersion | undefined { return this.#list.find((v) => v.version === version) }
  list (): ConfigVersion[] { return [...this.#list].reverse() }

  async append (v: Omit<ConfigVersion, 'version'> & { version?: number }): Promise<ConfigVersion> {
    const version = v.version ?? this.#next
    this.#next = Math.max(this.#next, version + 1)
    const entry: ConfigVersion = { ...v, version }
    this.#list.push(entry)
    if (this.#list.length > this.#keep) this.#list.splice(0, this.#list.length - this.#keep)
    return entry
  }

  async stage (v: Omit<ConfigVersion, 'version'>): Promise<StagedVersion> {
    const version = this.#next++
    return { version, commit: async () => await this.append({ ...v, version }), abandon: async () => {} }
  }

  async close (): Promise<void> {}
}

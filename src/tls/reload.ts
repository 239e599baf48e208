import { watchFile } from '../control/watch.js'

/**
 * Watches the listener's certificate, key and CA files and calls `onChange` once per burst
 * of changes: a rotation writes the certificate and the key one after the other, and reading
 * between the two would find a key that does not match (refused, logged) before the good
 * pair. Content-compared per file by watchFile, so a touch does nothing.
 */
export class CertWatcher {
  readonly #watchers: Array<{ close: () => void }>
  #timer: NodeJS.Timeout | undefined

  constructor (files: readonly string[], onChange: () => void, settleMs = 300) {
    const fire = (): void => {
      if (this.#timer !== undefined) clearTimeout(this.#timer)
      this.#timer = setTimeout(() => { this.#timer = undefined; onChange() }, settleMs)
      this.#timer.unref()
    }
    this.#watchers = [...new Set(files)].map((f) => watchFile(f, fire))
  }

  close (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    for (const w of this.#watchers) w.close()
  }
}

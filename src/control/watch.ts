import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'

/**
 * Calls `onChange` when the file's content changes. Watches the directory, not the file:
 * editors save by writing a temp file and renaming it over the old one, which a watch on
 * the file itself stops seeing after the first save. Events are debounced (editors write in
 * several steps) and compared by content, so a touch without a change does nothing.
 */
export function watchFile (file: string, onChange: () => void, debounceMs = 150): { close: () => void } {
  const path = resolve(file)
  const name = basename(path)
  let last: string | undefined
  let timer: NodeJS.Timeout | undefined
  void readFile(path, 'utf8').then((t) => { last = t }, () => {})
  const check = (): void => {
    timer = undefined
    readFile(path, 'utf8').then((text) => {
      if (text === last) return
      last = text
      onChange()
    }, () => { /* mid-rename or deleted: the next event will tell */ })
  }
  let watcher: FSWatcher | undefined = watch(dirname(path), { persistent: false }, (_event, changed) => {
    if (changed !== null && changed !== name) return
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(check, debounceMs)
  })
  return {
    close () {
      if (timer !== undefined) clearTimeout(timer)
      watcher?.close()
      watcher = undefined
    }
  }
}

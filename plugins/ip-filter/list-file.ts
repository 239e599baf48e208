import { readFile } from 'node:fs/promises'
import { isAbsolute, resolve } from 'node:path'

/**
 * The last lists read, by path: the file's text and its lines, frozen. An update that leaves
 * a 100k-line file as it was gets the same array back, and the IP table compiler keeps the
 * compiled form of a frozen array (src/ip/table-writer.ts), so neither is redone. The file
 * is read every time and compared whole: no mtime guess decides what a deny list holds.
 */
const recent = new Map<string, { text: string, list: readonly string[] }>()
const KEEP = 8

/** Lines of a CIDR file: blank lines and `#` comments skipped, every other line one CIDR. */
export async function readList (file: string, dir: string): Promise<readonly string[]> {
  const path = isAbsolute(file) ? file : resolve(dir, file)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  const hit = recent.get(path)
  recent.delete(path)
  const list = hit !== undefined && hit.text === text ? hit.list : Object.freeze(lines(text))
  recent.set(path, { text, list })
  if (recent.size > KEEP) recent.delete(recent.keys().next().value as string)
  return list
}

function lines (text: string): string[] {
  const out: string[] = []
  // One pass over the text, slicing each line once (split + trim made three copies of a
  // 100k-line list; this is the bulk of a big list's reload time).
  let start = 0
  // The next '#' at or after `start` (text.length: none), searched again only once passed.
  let hash = -1
  while (start <= text.length) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    if (hash < start) {
      hash = text.indexOf('#', start)
      if (hash === -1) hash = text.length
    }
    const stop = hash < end ? hash : end
    let a = start
    let b = stop
    while (a < b && text.charCodeAt(a) <= 32) a++
    while (b > a && text.charCodeAt(b - 1) <= 32) b--
    if (b > a) out.push(text.slice(a, b))
    start = end + 1
  }
  return out
}


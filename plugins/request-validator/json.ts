/**
 * The body's JSON, checked before it is parsed. JSON.parse recurses (a body nested 10,000
 * deep can exhaust the stack of a worker thread) and builds whatever it is given; a schema
 * then walks all of it. So the raw text is scanned first, in one flat loop with fixed-size
 * stacks, and refused before any parsing when it is too deep, has too many members in one
 * array or object, names a key twice in one object, or carries a prototype-polluting key.
 *
 * The scan follows JSON's lexical structure only as far as these checks need:
 *
 *   - a string runs from `"` to the next `"` not escaped by `\` (bytes inside do not count);
 *   - `{` `[` open a container (depth + 1), `}` `]` close one;
 *   - `,` at a container's own level starts its next member;
 *   - in an object, the string right after `{` or `,` is a key.
 *
 * On malformed text its verdict does not matter: JSON.parse refuses that text afterwards.
 * It never reads past the end and never loops without advancing, whatever it is given.
 */

export interface JsonLimits {
  maxDepth: number
  maxElements: number
  rejectDuplicateKeys: boolean
  rejectProtoKeys: boolean
}

export type JsonProblem =
  | { code: 'BODY_TOO_DEEP', detail: string }
  | { code: 'BODY_TOO_MANY_ELEMENTS', detail: string }
  | { code: 'BODY_DUPLICATE_KEY', detail: string }
  | { code: 'BODY_FORBIDDEN_KEY', detail: string }
  | { code: 'BODY_NOT_JSON', detail: string }

const OBJECT = 1
const ARRAY = 2
const QUOTE = 0x22
const BACKSLASH = 0x5c

/** Keys longer than this are shown cut short in a detail (they came from the client). */
const SHOW_KEY = 64

function showKey (key: string): string {
  return JSON.stringify(key.length > SHOW_KEY ? key.slice(0, SHOW_KEY) + '…' : key)
}

/** Stacks shared by every scan of this thread (a scan is synchronous), grown as needed. */
let kinds = new Uint8Array(64)
let members = new Uint32Array(64)
/** Per level: the object's keys so far (duplicate check), the last key seen at that level,
 *  and whether the object is the value of a `constructor` key. */
let keySets: Array<Set<string> | undefined> = new Array(64)
let lastKeys: Array<string | undefined> = new Array(64)
let inCtor = new Uint8Array(64)

function ensure (depth: number): void {
  if (depth < kinds.length) return
  const n = Math.max(depth + 1, kinds.length * 2)
  const k = new Uint8Array(n); k.set(kinds); kinds = k
  const m = new Uint32Array(n); m.set(members); members = m
  const c = new Uint8Array(n); c.set(inCtor); inCtor = c
  keySets = keySets.concat(new Array(n - keySets.length))
  lastKeys = lastKeys.concat(new Array(n - lastKeys.length))
}

/** Scan raw JSON text (see the file's comment); undefined when it may be parsed. */
export function scanJson (text: string, limits: JsonLimits): JsonProblem | undefined {
  const { maxDepth, maxElements, rejectDuplicateKeys: dups, rejectProtoKeys: proto } = limits
  const wantKeys = dups || proto
  ensure(Math.min(maxDepth, 1000) + 1)
  const len = text.length
  let depth = 0
  let deepest = 0
  let expectKey = false
  let problem: JsonProblem | undefined
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      // The closing quote: the next `"` preceded by an even number of backslashes (found with
      // indexOf, which is much faster than a loop over a long string's characters).
      let j = i + 1
      for (;;) {
        const q = text.indexOf('"', j)
        if (q === -1) { j = len; break }
        let b = q - 1
        while (b > i && text.charCodeAt(b) === BACKSLASH) b--
        if (((q - 1 - b) & 1) === 0) { j = q; break }
        j = q + 1
      }
      if (j >= len) break // unterminated: JSON.parse reports it
      if (expectKey && wantKeys) {
        let key = text.slice(i + 1, j)
        if (key.indexOf('\\') !== -1) {
          try { key = JSON.parse(text.slice(i, j + 1)) as string } catch { break }
        }
        if (proto && (key === '__proto__' || (key === 'prototype' && inCtor[depth] === 1))) {
          problem = { code: 'BODY_FORBIDDEN_KEY', detail: `the body uses the key ${showKey(key)}${key === 'prototype' ? " in a 'constructor' object" : ''}, which is refused` }
          break
        }
        if (dups) {
          let set = keySets[depth]
          if (set === undefined) keySets[depth] = set = new Set()
          if (set.has(key)) {
            problem = { code: 'BODY_DUPLICATE_KEY', detail: `an object in the body names the key ${showKey(key)} twice` }
            break
          }
          set.add(key)
        }
        lastKeys[depth] = key
      }
      expectKey = false
      i = j
      continue
    }
    if (c === 0x7b || c === 0x5b) { // { [
      const parentIsObject = depth > 0 && kinds[depth] === OBJECT
      depth++
      if (depth > maxDepth) {
        problem = { code: 'BODY_TOO_DEEP', detail: `the body nests arrays and objects more than ${maxDepth} deep` }
        break
      }
      if (depth > deepest) deepest = depth
      kinds[depth] = c === 0x7b ? OBJECT : ARRAY
      members[depth] = 0
      if (wantKeys) {
        keySets[depth]?.clear()
        lastKeys[depth] = undefined
        inCtor[depth] = parentIsObject && c === 0x7b && lastKeys[depth - 1] === 'constructor' ? 1 : 0
      }
      expectKey = c === 0x7b
      continue
    }
    if (c === 0x7d || c === 0x5d) { // } ]
      if (depth === 0) break // unbalanced: JSON.parse reports it
      depth--
      expectKey = false
      continue
    }
    if (c === 0x2c) { // ,
      if (depth === 0) break
      // `,` separates members: n commas, n + 1 members.
      if (++members[depth]! >= maxElements) {
        problem = { code: 'BODY_TOO_MANY_ELEMENTS', detail: `an ${kinds[depth] === OBJECT ? 'object' : 'array'} in the body has more than ${maxElements} members` }
        break
      }
      expectKey = kinds[depth] === OBJECT
    }
  }
  if (wantKeys) {
    // Drop the key sets' contents (client data) now rather than on the next scan.
    for (let d = 1; d <= deepest; d++) {
      keySets[d]?.clear()
      lastKeys[d] = undefined
    }
  }
  return problem
}

/**
 * Parse the body: scan it (see above), then JSON.parse it. Returns the value, or the
 * problem. The parse error's message is not passed on: V8 quotes the input in it.
 */
export function parseJsonBody (text: string, limits: JsonLimits): { ok: true, value: unknown } | { ok: false, problem: JsonProblem } {
  const problem = scanJson(text, limits)
  if (problem !== undefined) return { ok: false, problem }
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch (err) {
    const at = /position (\d+)/.exec((err as Error).message)?.[1]
    return { ok: false, problem: { code: 'BODY_NOT_JSON', detail: `the body is not valid JSON${at === undefined ? '' : ` (at character ${at})`}` } }
  }
}

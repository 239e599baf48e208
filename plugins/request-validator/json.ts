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

/**
 * Stacks shared by every scan of this thread (a scan is synchronous), grown as needed.
 *
 * Keys are not copied out of the text to be checked. Every open object's keys so far sit on
 * one stack of records (start, length, hash of their characters); an object's records run
 * from `base[depth]` to the top and are popped when it closes. A new key is compared with
 * its object's records by hash and length, and character by character only when both agree.
 * That is a linear search, so an object that grows past SMALL keys, or has a key written
 * with escapes (`"\u0061"` is the key `a`), moves to a Set of decoded key strings instead.
 */
const SMALL = 16
let kinds = new Uint8Array(64)
let members = new Uint32Array(64)
let base = new Uint32Array(64)
/** Per level: whether the object is the value of a `constructor` key. */
let inCtor = new Uint8Array(64)
/** Per level: the object's keys as strings, once it has left the record stack's fast path. */
let keySets: Array<Set<string> | undefined> = new Array(64)
let kStart = new Uint32Array(256)
let kLen = new Uint32Array(256)
let kHash = new Int32Array(256)

function ensure (depth: number): void {
  if (depth < kinds.length) return
  const n = Math.max(depth + 1, kinds.length * 2)
  const k = new Uint8Array(n); k.set(kinds); kinds = k
  const m = new Uint32Array(n); m.set(members); members = m
  const b = new Uint32Array(n); b.set(base); base = b
  const c = new Uint8Array(n); c.set(inCtor); inCtor = c
  keySets = keySets.concat(new Array(n - keySets.length))
}

function ensureKeys (top: number): void {
  if (top < kStart.length) return
  const n = kStart.length * 2
  const s = new Uint32Array(n); s.set(kStart); kStart = s
  const l = new Uint32Array(n); l.set(kLen); kLen = l
  const h = new Int32Array(n); h.set(kHash); kHash = h
}

/** Whether text[a, a + len) and text[b, b + len) hold the same characters. */
function sameRange (text: string, a: number, b: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (text.charCodeAt(a + i) !== text.charCodeAt(b + i)) return false
  return true
}

/** Whether a key is `word`: the decoded `key` when it had escapes, else text[start, start + len). */
function keyIs (text: string, key: string | undefined, start: number, len: number, word: string): boolean {
  return key !== undefined ? key === word : len === word.length && text.startsWith(word, start)
}

/** Scan raw JSON text (see the file's comment); undefined when it may be parsed. */
export function scanJson (text: string, limits: JsonLimits): JsonProblem | undefined {
  const { maxDepth, maxElements, rejectDuplicateKeys: dups, rejectProtoKeys: proto } = limits
  const wantKeys = dups || proto
  ensure(Math.min(maxDepth, 1000) + 1)
  const len = text.length
  let depth = 0
  let deepest = 0
  let top = 0
  let expectKey = false
  /** The last key of the object at the current depth was `constructor`. */
  let lastWasCtor = false
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
        const start = i + 1
        const klen = j - start
        // One pass over the key: its hash, and whether it is written with escapes.
        let h = klen
        let escaped = false
        for (let x = start; x < j; x++) {
          const kc = text.charCodeAt(x)
          if (kc === BACKSLASH) escaped = true
          h = (Math.imul(h, 31) + kc) | 0
        }
        let key: string | undefined
        if (escaped) {
          try { key = JSON.parse(text.slice(i, j + 1)) as string } catch { break }
        }
        if (proto && (keyIs(text, key, start, klen, '__proto__') || (inCtor[depth] === 1 && keyIs(text, key, start, klen, 'prototype')))) {
          const shown = key ?? text.slice(start, j)
          problem = { code: 'BODY_FORBIDDEN_KEY', detail: `the body uses the key ${showKey(shown)}${shown === 'prototype' ? " in a 'constructor' object" : ''}, which is refused` }
          break
        }
        lastWasCtor = keyIs(text, key, start, klen, 'constructor')
        if (dups) {
          let set = keySets[depth]
          const from = base[depth] as number
          if (set === undefined && (key !== undefined || top - from >= SMALL)) {
            // Leave the fast path: every key so far (none had escapes) as a string.
            keySets[depth] = set = new Set()
            for (let r = from; r < top; r++) set.add(text.slice(kStart[r] as number, (kStart[r] as number) + (kLen[r] as number)))
            top = from
          }
          if (set !== undefined) {
            const k = key ?? text.slice(start, j)
            if (set.has(k)) {
              problem = { code: 'BODY_DUPLICATE_KEY', detail: `an object in the body names the key ${showKey(k)} twice` }
              break
            }
            set.add(k)
          } else {
            let dup = false
            for (let r = from; r < top; r++) {
              if (kHash[r] === h && kLen[r] === klen && sameRange(text, kStart[r] as number, start, klen)) { dup = true; break }
            }
            if (dup) {
              problem = { code: 'BODY_DUPLICATE_KEY', detail: `an object in the body names the key ${showKey(text.slice(start, j))} twice` }
              break
            }
            ensureKeys(top)
            kStart[top] = start
            kLen[top] = klen
            kHash[top] = h
            top++
          }
        }
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
      base[depth] = top
      if (wantKeys) {
        keySets[depth]?.clear()
        keySets[depth] = undefined
        inCtor[depth] = parentIsObject && c === 0x7b && lastWasCtor ? 1 : 0
      }
      lastWasCtor = false
      expectKey = c === 0x7b
      continue
    }
    if (c === 0x7d || c === 0x5d) { // } ]
      if (depth === 0) break // unbalanced: JSON.parse reports it
      // The container's keys are popped; the parent's last key is no longer `constructor`'s
      // value-to-come (a container value ends the member).
      top = base[depth] as number
      depth--
      lastWasCtor = false
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
      lastWasCtor = false
      expectKey = kinds[depth] === OBJECT
    }
  }
  if (wantKeys) {
    // Drop the key sets' contents (client data) now rather than on the next scan.
    for (let d = 1; d <= deepest; d++) {
      keySets[d]?.clear()
      keySets[d] = undefined
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

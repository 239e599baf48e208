/**
 * A regular-expression engine whose `test()` takes time linear in the input: the schemas'
 * `pattern` and `patternProperties` run on it, so a pattern such as `^(a+)+$` cannot be made
 * to backtrack for seconds by a crafted string (ReDoS; CHECKLIST J2). ajv takes it through
 * its `code.regExp` option, as it would take RE2.
 *
 * It is a Thompson NFA run as a Pike VM without captures (Russ Cox, "Regular Expression
 * Matching Can Be Simple And Fast"): the pattern becomes a small program; the input is read
 * once, code point by code point, and every thread of the program advances in step. A set
 * of program counters replaces backtracking, so a step costs at most the program's length:
 *
 *   a(b|c)*d     0 CHAR a
 *                1 SPLIT 2, 7       (another round of the loop, or leave it)
 *                2 SPLIT 3, 5
 *                3 CHAR b
 *                4 JMP 6
 *                5 CHAR c
 *                6 JMP 1
 *                7 CHAR d
 *                8 MATCH
 *
 * The syntax is ECMAScript's with the `u` flag (ajv's `unicodeRegExp`, on by default), and a
 * pattern is first compiled by V8 to check it. What a linear engine cannot do is refused at
 * load: lookahead, lookbehind and backreferences. A character class or escape that matches
 * one code point (`[a-z]`, `\d`, `\p{L}`) is tested with V8 on that code point alone, which
 * is bounded; its answers for ASCII are tabled at load. Counted repetition (`x{2,5}`) is
 * unrolled, up to a program of MAX_PROGRAM instructions. JSON Schema patterns are not
 * anchored: the match may start anywhere, as with `RegExp.prototype.test`.
 */

/** A pattern this engine cannot run. */
export class UnsupportedPatternError extends Error {}

export interface LinearRegExp {
  readonly source: string
  test: (input: string) => boolean
  toString: () => string
}

const MAX_PROGRAM = 20_000
const MAX_NESTING = 200

type Node =
  | { t: 'char', cp: number }
  | { t: 'set', m: number }
  | { t: 'any' }
  | { t: 'bol' } | { t: 'eol' } | { t: 'wordb' } | { t: 'nwordb' }
  | { t: 'cat', items: Node[] }
  | { t: 'alt', alts: Node[] }
  | { t: 'rep', node: Node, min: number, max: number }

/** One code point's membership in a class, answered by V8 on that code point alone. */
interface SetMatcher {
  ascii: Uint8Array
  re: RegExp
}

function makeSet (source: string): SetMatcher {
  const re = new RegExp(`^(?:${source})$`, 'u')
  const ascii = new Uint8Array(128)
  for (let c = 0; c < 128; c++) ascii[c] = re.test(String.fromCharCode(c)) ? 1 : 0
  return { ascii, re }
}

class Parser {
  pos = 0
  depth = 0
  readonly sets: SetMatcher[] = []
  constructor (readonly src: string) {}

  fail (what: string): never {
    throw new UnsupportedPatternError(`${what} cannot run in linear time; only regExpEngine: native allows it`)
  }

  parseAlt (): Node {
    const alts = [this.parseCat()]
    while (this.src[this.pos] === '|') {
      this.pos++
      alts.push(this.parseCat())
    }
    return alts.length === 1 ? alts[0] as Node : { t: 'alt', alts }
  }

  parseCat (): Node {
    const items: Node[] = []
    while (this.pos < this.src.length && this.src[this.pos] !== '|' && this.src[this.pos] !== ')') items.push(this.parseQuantified())
    return items.length === 1 ? items[0] as Node : { t: 'cat', items }
  }

  parseQuantified (): Node {
    const node = this.parseAtom()
    const q = this.src[this.pos]
    let min: number
    let max: number
    if (q === '*') { min = 0; max = Infinity; this.pos++ } else if (q === '+') { min = 1; max = Infinity; this.pos++ } else if (q === '?') { min = 0; max = 1; this.pos++ } else if (q === '{') {
      // With the u flag a `{` after an atom is always a quantifier (V8 checked the syntax).
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos))
      if (m === null) return this.fail('this quantifier')
      min = Number(m[1])
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3])
      this.pos += m[0].length
    } else {
      return node
    }
    // A lazy quantifier matches the same strings; test() only asks whether one does.
    if (this.src[this.pos] === '?') this.pos++
    return { t: 'rep', node, min, max }
  }

  parseAtom (): Node {
    const s = this.src
    const c = s[this.pos] as string
    if (c === '(') {
      if (++this.depth > MAX_NESTING) this.fail('a pattern nested this deep')
      this.pos++
      if (s[this.pos] === '?') {
        const next = s[this.pos + 1]
        if (next === ':') this.pos += 2
        else if (next === '=' || next === '!') this.fail('a lookahead (?= or (?!')
        else if (next === '<' && (s[this.pos + 2] === '=' || s[this.pos + 2] === '!')) this.fail('a lookbehind (?<= or (?<!')
        else if (next === '<') this.pos = s.indexOf('>', this.pos) + 1
        else this.fail('this group')
      }
      const inner = this.parseAlt()
      this.pos++ // ')'
      this.depth--
      return inner
    }
    if (c === '^') { this.pos++; return { t: 'bol' } }
    if (c === '$') { this.pos++; return { t: 'eol' } }
    if (c === '.') { this.pos++; return { t: 'any' } }
    if (c === '[') {
      // With the u flag (no v), a class ends at the first `]` not escaped; `[]` is empty.
      let j = this.pos + 1
      if (s[j] === '^') j++
      while (j < s.length && s[j] !== ']') j += s[j] === '\\' ? 2 : 1
      return this.set(s.slice(this.pos, (this.pos = j + 1)))
    }
    if (c === '\\') return this.parseEscape()
    const cp = s.codePointAt(this.pos) as number
    this.pos += cp > 0xffff ? 2 : 1
    return { t: 'char', cp }
  }

  parseEscape (): Node {
    const s = this.src
    const start = this.pos
    const e = s[this.pos + 1] as string
    this.pos += 2
    switch (e) {
      case 'b': return { t: 'wordb' }
      case 'B': return { t: 'nwordb' }
      case 'k': return this.fail('a backreference \\k<name>')
      case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        return this.set(s.slice(start, this.pos))
      case 'p': case 'P':
        this.pos = s.indexOf('}', this.pos) + 1
        return this.set(s.slice(start, this.pos))
      case 't': return { t: 'char', cp: 9 }
      case 'n': return { t: 'char', cp: 10 }
      case 'v': return { t: 'char', cp: 11 }
      case 'f': return { t: 'char', cp: 12 }
      case 'r': return { t: 'char', cp: 13 }
      case '0': return { t: 'char', cp: 0 }
      case 'c': return { t: 'char', cp: (s.charCodeAt(this.pos++) % 32) }
      case 'x': {
        const cp = parseInt(s.slice(this.pos, this.pos + 2), 16)
        this.pos += 2
        return { t: 'char', cp }
      }
      case 'u': {
        let cp: number
        if (s[this.pos] === '{') {
          const end = s.indexOf('}', this.pos)
          cp = parseInt(s.slice(this.pos + 1, end), 16)
          this.pos = end + 1
        } else {
          cp = parseInt(s.slice(this.pos, this.pos + 4), 16)
          this.pos += 4
          // With the u flag, an escaped surrogate pair is one code point.
          if (cp >= 0xd800 && cp <= 0xdbff && s.startsWith('\\u', this.pos) && /^[0-9a-fA-F]{4}$/.test(s.slice(this.pos + 2, this.pos + 6))) {
            const lo = parseInt(s.slice(this.pos + 2, this.pos + 6), 16)
            if (lo >= 0xdc00 && lo <= 0xdfff) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00)
              this.pos += 6
            }
          }
        }
        return { t: 'char', cp }
      }
      default:
        if (e >= '1' && e <= '9') return this.fail(`a backreference \\${e}`)
        // An identity escape: with the u flag, only syntax characters and `/`.
        return { t: 'char', cp: e.codePointAt(0) as number }
    }
  }

  set (source: string): Node {
    this.sets.push(makeSet(source))
    return { t: 'set', m: this.sets.length - 1 }
  }
}

const CHAR = 0
const SET = 1
const ANY = 2
const SPLIT = 3
const JMP = 4
const BOL = 5
const EOL = 6
const WORDB = 7
const NWORDB = 8
const MATCH = 9

/** Instructions a node becomes (to refuse a huge unrolled repetition before emitting it). */
function sizeOf (n: Node): number {
  switch (n.t) {
    case 'cat': return n.items.reduce((a, x) => a + sizeOf(x), 0)
    case 'alt': return n.alts.reduce((a, x) => a + sizeOf(x) + 2, 0)
    case 'rep': {
      const one = sizeOf(n.node)
      return n.max === Infinity ? (n.min + 1) * (one + 2) : n.min * one + (n.max - n.min) * (one + 1)
    }
    default: return 1
  }
}

class Program {
  op: number[] = []
  a: number[] = []
  b: number[] = []

  emit (op: number, a = 0, b = 0): number {
    this.op.push(op); this.a.push(a); this.b.push(b)
    return this.op.length - 1
  }

  gen (n: Node): void {
    switch (n.t) {
      case 'char': this.emit(CHAR, n.cp); break
      case 'set': this.emit(SET, n.m); break
      case 'any': this.emit(ANY); break
      case 'bol': this.emit(BOL); break
      case 'eol': this.emit(EOL); break
      case 'wordb': this.emit(WORDB); break
      case 'nwordb': this.emit(NWORDB); break
      case 'cat': for (const x of n.items) this.gen(x); break
      case 'alt': {
        // SPLIT L1, next; L1: alt0; JMP end; next: SPLIT L2, ... ; last alt falls through.
        const jumps: number[] = []
        for (let i = 0; i < n.alts.length; i++) {
          if (i < n.alts.length - 1) {
            const split = this.emit(SPLIT)
            this.a[split] = this.op.length
            this.gen(n.alts[i] as Node)
            jumps.push(this.emit(JMP))
            this.b[split] = this.op.length
          } else {
            this.gen(n.alts[i] as Node)
          }
        }
        for (const j of jumps) this.a[j] = this.op.length
        break
      }
      case 'rep': {
        for (let i = 0; i < n.min; i++) this.gen(n.node)
        if (n.max === Infinity) {
          // L: SPLIT body, end; body; JMP L
          const split = this.emit(SPLIT)
          this.a[split] = this.op.length
          this.gen(n.node)
          this.emit(JMP, split)
          this.b[split] = this.op.length
        } else {
          // Each optional copy: SPLIT body, end; body — all leaving to the same end.
          const splits: number[] = []
          for (let i = n.min; i < n.max; i++) {
            const split = this.emit(SPLIT)
            this.a[split] = this.op.length
            splits.push(split)
            this.gen(n.node)
          }
          for (const s of splits) this.b[s] = this.op.length
        }
        break
      }
    }
  }
}

function isWord (c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95
}

function isLineTerminator (c: number): boolean {
  return c === 10 || c === 13 || c === 0x2028 || c === 0x2029
}

/** Compile a pattern (ECMAScript syntax, `u` flag) for linear-time `test()`. */
export function compileLinear (pattern: string): LinearRegExp {
  // V8 checks the syntax; this engine only reads patterns V8 accepted.
  try {
    new RegExp(pattern, 'u')
  } catch (err) {
    throw new UnsupportedPatternError(`not a valid regular expression (u flag): ${(err as Error).message}`)
  }
  const parser = new Parser(pattern)
  const ast = parser.parseAlt()
  if (parser.pos !== pattern.length) throw new UnsupportedPatternError(`cannot read the pattern past character ${parser.pos}`)
  if (sizeOf(ast) + 1 > MAX_PROGRAM) throw new UnsupportedPatternError(`the pattern unrolls to more than ${MAX_PROGRAM} instructions (counted repetition); shorten it or use regExpEngine: native`)
  const p = new Program()
  p.gen(ast)
  p.emit(MATCH)
  const prog: Compiled = {
    op: Int8Array.from(p.op),
    arg: Int32Array.from(p.a),
    arg2: Int32Array.from(p.b),
    sets: parser.sets
  }
  const wordBoundaries = p.op.some((o) => o === WORDB || o === NWORDB)
  return {
    source: pattern,
    toString: () => `/${pattern}/u (linear)`,
    test: wordBoundaries ? pikeVm(prog) : lazyDfa(prog)
  }
}

interface Compiled {
  op: Int8Array
  arg: Int32Array
  arg2: Int32Array
  sets: SetMatcher[]
}

function inSet (sets: SetMatcher[], m: number, cp: number): boolean {
  const s = sets[m] as SetMatcher
  return cp < 128 ? s.ascii[cp] === 1 : s.re.test(String.fromCodePoint(cp))
}

/**
 * The Pike VM: every thread advances in step, one code point at a time. Used for patterns
 * with `\b`/`\B`, which look at the code unit before and after a position.
 */
function pikeVm ({ op, arg, arg2, sets }: Compiled): (input: string) => boolean {
  const n = op.length
  const anchored = op[0] === BOL
  // Thread lists and the closure stack, reused by every test() of this pattern (test() is
  // synchronous). `mark[pc] === step` means pc is already on the list being built.
  let clist = new Int32Array(n)
  let nlist = new Int32Array(n)
  const stack = new Int32Array(2 * n + 2)
  const mark = new Uint32Array(n)
  let step = 0

  // Follow JMP/SPLIT/assertions from `start` at position `pos` of `input`, adding the
  // threads that wait for a character to `list` after its first `count`; the new count, or
  // -1 as soon as MATCH is reached.
  const add = (input: string, list: Int32Array, count: number, start: number, pos: number): number => {
    const len = input.length
    let sp = 0
    stack[sp++] = start
    while (sp > 0) {
      const pc = stack[--sp] as number
      if (mark[pc] === step) continue
      mark[pc] = step
      switch (op[pc]) {
        case JMP: stack[sp++] = arg[pc] as number; break
        case SPLIT: stack[sp++] = arg2[pc] as number; stack[sp++] = arg[pc] as number; break
        case BOL: if (pos === 0) stack[sp++] = pc + 1; break
        case EOL: if (pos === len) stack[sp++] = pc + 1; break
        case WORDB:
        case NWORDB: {
          const before = pos > 0 && isWord(input.charCodeAt(pos - 1))
          const after = pos < len && isWord(input.charCodeAt(pos))
          if ((before !== after) === (op[pc] === WORDB)) stack[sp++] = pc + 1
          break
        }
        case MATCH: return -1
        default: list[count++] = pc
      }
    }
    return count
  }
  const nextStep = (): void => {
    if (++step === 0xffffffff) { mark.fill(0); step = 1 }
  }

  return (input: string): boolean => {
    const len = input.length
    nextStep()
    let ccount = add(input, clist, 0, 0, 0)
    if (ccount < 0) return true
    let pos = 0
    while (pos < len) {
      const cp = input.codePointAt(pos) as number
      const next = pos + (cp > 0xffff ? 2 : 1)
      nextStep()
      let ncount = 0
      for (let i = 0; i < ccount; i++) {
        const pc = clist[i] as number
        const o = op[pc]
        const ok = o === CHAR ? arg[pc] === cp : o === SET ? inSet(sets, arg[pc] as number, cp) : !isLineTerminator(cp)
        if (ok) {
          ncount = add(input, nlist, ncount, pc + 1, next)
          if (ncount < 0) return true
        }
      }
      // Unanchored: a match may also start at the next position.
      if (!anchored) {
        ncount = add(input, nlist, ncount, 0, next)
        if (ncount < 0) return true
      } else if (ncount === 0) {
        return false
      }
      const t = clist; clist = nlist; nlist = t
      ccount = ncount
      pos = next
    }
    return false
  }
}

/** DFA states kept per pattern; past this the cache is emptied and built again. */
const MAX_STATES = 256
const UNKNOWN = -1

interface DfaState {
  /** Instructions waiting for a code point (CHAR, SET, ANY), sorted. */
  pcs: Int32Array
  /** `$` instructions reached: they pass only at the end of the input. */
  eols: Int32Array
  /** MATCH was reached: the input matches whatever follows. */
  accept: boolean
  /** Nothing waits and no match can start later: the input cannot match. */
  dead: boolean
  /** Whether the input matches when it ends in this state (worked out when first asked). */
  atEnd?: boolean
  /** Transitions on non-ASCII code points, up to MAX_WIDE per state. */
  wide?: Map<number, number>
}

const MAX_WIDE = 256

/**
 * The same program run as a lazily built DFA (what RE2 does): a DFA state is the set of
 * threads the Pike VM would hold, and a state's transition on an ASCII code point is worked
 * out once, then looked up, so most steps are one table read. `^` passes only in the first
 * state; `$` threads are kept aside in each state and followed only where the input ends.
 * Non-ASCII code points are worked out each time (not cached).
 */
function lazyDfa ({ op, arg, arg2, sets }: Compiled): (input: string) => boolean {
  const n = op.length
  const anchored = op[0] === BOL
  const stack = new Int32Array(2 * n + 2)
  const mark = new Uint32Array(n)
  let step = 0
  let states: DfaState[] = []
  let ids = new Map<string, number>()
  let table = new Int32Array(0)
  /** Times the cache was emptied: state numbers from before a flush mean nothing after it. */
  let flushes = 0

  /** Epsilon closure of `starts`: the state it makes (not yet numbered). */
  const closure = (starts: readonly number[], atStart: boolean, atEnd: boolean): DfaState => {
    if (++step === 0xffffffff) { mark.fill(0); step = 1 }
    const pcs: number[] = []
    const eols: number[] = []
    let accept = false
    for (const s of starts) {
      let sp = 0
      stack[sp++] = s
      while (sp > 0) {
        const pc = stack[--sp] as number
        if (mark[pc] === step) continue
        mark[pc] = step
        switch (op[pc]) {
          case JMP: stack[sp++] = arg[pc] as number; break
          case SPLIT: stack[sp++] = arg2[pc] as number; stack[sp++] = arg[pc] as number; break
          case BOL: if (atStart) stack[sp++] = pc + 1; break
          case EOL: if (atEnd) stack[sp++] = pc + 1; else eols.push(pc); break
          case MATCH: accept = true; break
          default: pcs.push(pc)
        }
      }
    }
    pcs.sort((a, b) => a - b)
    eols.sort((a, b) => a - b)
    return { pcs: Int32Array.from(pcs), eols: Int32Array.from(eols), accept, dead: anchored && pcs.length === 0 && eols.length === 0 }
  }

  const intern = (s: DfaState): number => {
    const key = `${s.pcs.join(',')}|${s.eols.join(',')}|${s.accept ? 1 : 0}`
    let id = ids.get(key)
    if (id === undefined) {
      if (states.length >= MAX_STATES) {
        states = []
        ids = new Map()
        flushes++
      }
      id = states.length
      s.wide = undefined // (the initial state is numbered again after a flush)
      states.push(s)
      ids.set(key, id)
      if (table.length < states.length * 128) {
        const t = new Int32Array(Math.min(MAX_STATES, states.length * 2) * 128).fill(UNKNOWN)
        t.set(table.subarray(0, Math.min(table.length, t.length)))
        table = t
      }
      table.fill(UNKNOWN, id * 128, id * 128 + 128)
    }
    return id
  }

  /** The state after `from` reads `cp` (not at the input's start: a later `^` fails). */
  const advance = (from: DfaState, cp: number): DfaState => {
    const starts: number[] = []
    const pcs = from.pcs
    for (let i = 0; i < pcs.length; i++) {
      const pc = pcs[i] as number
      const o = op[pc]
      if (o === CHAR ? arg[pc] === cp : o === SET ? inSet(sets, arg[pc] as number, cp) : !isLineTerminator(cp)) starts.push(pc + 1)
    }
    // Unanchored: a match may also start after this code point.
    if (!anchored) starts.push(0)
    return closure(starts, false, false)
  }

  const initial = closure([0], true, false)
  let initialId = -1
  let initialAt = -1
  return (input: string): boolean => {
    if (initialAt !== flushes) {
      initialId = intern(initial)
      initialAt = flushes
    }
    let id = initialId
    let state = states[id] as DfaState
    const len = input.length
    let pos = 0
    while (!state.accept) {
      if (state.dead) return false
      if (pos >= len) {
        // The end: follow the `$` threads with the end in sight (and `^` if it is also the start).
        if (state.eols.length === 0) return false
        const end = (): boolean => closure(Array.from(state.eols, (pc) => pc + 1), len === 0, true).accept
        if (len === 0) return end()
        return (state.atEnd ??= end())
      }
      const cp = input.codePointAt(pos) as number
      pos += cp > 0xffff ? 2 : 1
      if (cp < 128) {
        let next = table[id * 128 + cp] as number
        if (next === UNKNOWN) {
          const at = flushes
          next = intern(advance(state, cp))
          if (flushes === at) table[id * 128 + cp] = next
        }
        id = next
      } else {
        let next = state.wide?.get(cp)
        if (next === undefined) {
          const at = flushes
          next = intern(advance(state, cp))
          if (flushes === at && (state.wide ??= new Map()).size < MAX_WIDE) state.wide.set(cp, next)
        }
        id = next
      }
      state = states[id] as DfaState
    }
    return true
  }
}

/*
 * Origins as browsers send them (RFC 6454 §6.2, Fetch "serialization of an origin"):
 * `scheme "://" host [ ":" port ]`, lower-case, the scheme's default port left out, no
 * path, no trailing slash; or the literal `null` (sandboxed frames, file: pages, some
 * redirects). The same strict parser reads the config and the request's Origin header, so a
 * value that is not an origin (a path, userinfo, a second origin after a comma, a trailing
 * dot) never matches anything.
 */

/** Anything longer is not an origin a browser sends (a host name is at most 253 bytes). */
export const MAX_ORIGIN_LENGTH = 300

const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*)(?::([0-9]{1,5}))?$/
// The wildcard form of the config: `*.` then at least two labels (`*.com` is refused).
const WILDCARD = /^([a-z][a-z0-9+.-]*):\/\/\*\.([a-z0-9_-]+(?:\.[a-z0-9_-]+)+)(?::([0-9]{1,5}))?$/

const DEFAULT_PORT: Readonly<Record<string, string>> = { http: '80', https: '443', ws: '80', wss: '443' }

export interface OriginParts {
  scheme: string
  host: string
  /** '' for the scheme's default port, else `:N` without leading zeros. */
  port: string
}

function portPart (scheme: string, port: string | undefined): string | undefined {
  if (port === undefined) return ''
  const n = Number(port)
  if (n < 1 || n > 65535) return undefined
  return DEFAULT_PORT[scheme] === String(n) ? '' : ':' + String(n)
}

/** The parts of an origin, or undefined when `value` is not one. Case-insensitive. */
export function parseOrigin (value: string): OriginParts | undefined {
  if (value.length > MAX_ORIGIN_LENGTH) return undefined
  const m = ORIGIN.exec(value.toLowerCase())
  if (m === null) return undefined
  const scheme = m[1] as string
  const port = portPart(scheme, m[3])
  if (port === undefined) return undefined
  return { scheme, host: m[2] as string, port }
}

/** `https://app.example.com:443` -> `https://app.example.com`; undefined when not an origin. */
export function canonicalOrigin (value: string): string | undefined {
  const o = parseOrigin(value)
  return o === undefined ? undefined : `${o.scheme}://${o.host}${o.port}`
}

/** `https://*.example.com[:port]`: one or more labels in front of the suffix, never the suffix itself. */
export interface Wildcard { scheme: string, suffix: string, port: string }

export function parseWildcard (value: string): Wildcard | undefined {
  const m = WILDCARD.exec(value.toLowerCase())
  if (m === null) return undefined
  const scheme = m[1] as string
  const port = portPart(scheme, m[3])
  if (port === undefined) return undefined
  return { scheme, suffix: '.' + (m[2] as string), port }
}

/**
 * The suffix match is on a label boundary (the `.` is part of `suffix`), so
 * `evil-example.com` and `example.com.evil.com` are not under `*.example.com`; the parser
 * already refused empty labels, so the part in front is one or more whole labels.
 */
export function wildcardMatches (w: Wildcard, o: OriginParts): boolean {
  return o.scheme === w.scheme && o.port === w.port && o.host.length > w.suffix.length && o.host.endsWith(w.suffix)
}

/**
 * Why a pattern is refused, or undefined when it is fine. Cheap checks, not a proof:
 *
 * - anchored: `^` first, an unescaped `$` last, and no `|` outside a group (`^a|b$` leaves
 *   `b$` unanchored at the start);
 * - no back-references;
 * - no repeated group (`*`, `+`, `{n}`, `{n,}`, `{n,m}`; `?` is fine) holding a quantifier
 *   or an alternation: `(a+)+`, `(a|a)*`, `([a-z]+\.)+` are the shapes that backtrack
 *   exponentially. Write `[a-z0-9.-]+` instead of `([a-z0-9-]+\.)+`.
 *
 * Patterns only ever see a request origin that parsed as one (at most 300 characters), so
 * what backtracking is left is polynomial in a short string.
 */
export function unsafePattern (p: string): string | undefined {
  if (!p.startsWith('^')) return "must be anchored: start it with '^'"
  let trailing = 0
  for (let j = p.length - 2; j >= 0 && p[j] === '\\'; j--) trailing++
  if (!p.endsWith('$') || trailing % 2 === 1) return "must be anchored: end it with '$'"

  interface Group { quantified: boolean, alternation: boolean }
  const stack: Group[] = []
  // Reads the quantifier at i, if any: its length and whether it repeats (anything but ?, {0,1}, {1}).
  const quantifier = (i: number): { len: number, repeats: boolean } => {
    const c = p[i]
    let len = 0
    let repeats = false
    if (c === '*' || c === '+') { len = 1; repeats = true } else if (c === '?') { len = 1 } else if (c === '{') {
      const m = /^\{([0-9]+)(,([0-9]*))?\}/.exec(p.slice(i))
      if (m !== null) {
        len = m[0].length
        const min = Number(m[1])
        const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3])
        repeats = max > 1
      }
    }
    if (len > 0 && p[i + len] === '?') len++ // lazy
    return { len, repeats }
  }

  let i = 1
  const end = p.length - 1
  while (i < end) {
    const c = p[i] as string
    if (c === '\\') {
      const n = p[i + 1] ?? ''
      if (/[1-9]/.test(n) || n === 'k') return 'must not use back-references'
      i += 2
    } else if (c === '[') {
      i++
      if (p[i] === '^') i++
      if (p[i] === ']') i++
      while (i < end && p[i] !== ']') i += p[i] === '\\' ? 2 : 1
      i++
    } else if (c === '(') {
      stack.push({ quantified: false, alternation: false })
      i++
      continue
    } else if (c === ')') {
      const g = stack.pop()
      if (g === undefined) return 'has an unbalanced )'
      const q = quantifier(i + 1)
      if (q.repeats && (g.quantified || g.alternation)) {
        return `repeats a group that holds ${g.quantified ? 'a quantifier' : 'an alternation'} (catastrophic backtracking); use a character class such as [a-z0-9.-]+`
      }
      const parent = stack[stack.length - 1]
      if (parent !== undefined) {
        parent.quantified ||= g.quantified || q.len > 0
        parent.alternation ||= g.alternation
      }
      i += 1 + q.len
      continue
    } else if (c === '|') {
      const top = stack[stack.length - 1]
      if (top === undefined) return "has '|' outside a group, which leaves an alternative unanchored; write ^(?:a|b)$"
      top.alternation = true
      i++
      continue
    } else {
      i++
    }
    // After an atom (an escape, a class or a plain character): its quantifier, if any.
    const q = quantifier(i)
    if (q.len > 0) {
      const top = stack[stack.length - 1]
      if (top !== undefined) top.quantified = true
      i += q.len
    }
  }
  if (stack.length > 0) return 'has an unbalanced ('
  return undefined
}

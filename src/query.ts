// Query strings as plugins read them (key-auth, jwt-auth, request-validator): one decoding
// rule for all, so that a parameter one plugin finds, another finds too.

/** Decode one `application/x-www-form-urlencoded` component (`+` is a space); undefined
 *  when a percent-escape is malformed. */
export function formDecode (s: string): string | undefined {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s
  try {
    return decodeURIComponent(s.includes('+') ? s.replaceAll('+', ' ') : s)
  } catch {
    return undefined
  }
}

/**
 * The values of query parameter `name`, and the query without it. Other parameters are
 * kept byte for byte (never re-encoded), so the upstream sees what the client sent. A
 * malformed escape in a value counts as a value (a bad one), never as absent.
 */
export function takeParam (query: string, name: string): { values: string[], rest: string } {
  if (query === '') return { values: [], rest: query }
  const values: string[] = []
  const kept: string[] = []
  for (const part of query.split('&')) {
    const eq = part.indexOf('=')
    const rawName = eq === -1 ? part : part.slice(0, eq)
    if (formDecode(rawName) !== name) {
      kept.push(part)
      continue
    }
    values.push(eq === -1 ? '' : (formDecode(part.slice(eq + 1)) ?? '\u0000'))
  }
  return { values, rest: kept.join('&') }
}

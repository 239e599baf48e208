import { formDecode } from '../../src/query.js'

/**
 * A query string as an object for the query schema: `a=1&b=x&b=y&c` is
 * `{ a: '1', b: ['x', 'y'], c: '' }`. Names and values are decoded as a form does (`+` is a
 * space, then percent-decoding); a name given once is a string, a name repeated is an array
 * in the order given (the schema's types are coerced: a string where an array is wanted
 * becomes a one-item array). The object has no prototype, so `__proto__` is a name like any
 * other. Returns undefined when a percent-escape is malformed.
 */
export function parseQuery (query: string): Record<string, string | string[]> | undefined {
  const out = Object.create(null) as Record<string, string | string[]>
  if (query === '') return out
  let start = 0
  while (start <= query.length) {
    let end = query.indexOf('&', start)
    if (end === -1) end = query.length
    if (end > start) {
      const part = query.slice(start, end)
      const eq = part.indexOf('=')
      const name = formDecode(eq === -1 ? part : part.slice(0, eq))
      const value = eq === -1 ? '' : formDecode(part.slice(eq + 1))
      if (name === undefined || value === undefined) return undefined
      const had = out[name]
      if (had === undefined) out[name] = value
      else if (typeof had === 'string') out[name] = [had, value]
      else had.push(value)
    }
    start = end + 1
  }
  return out
}

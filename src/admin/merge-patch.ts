/**
 * JSON Merge Patch (RFC 7396). A patch object's members replace the target's, `null` removes
 * a member, nested objects merge recursively, and anything that is not an object (arrays
 * included) replaces the target whole:
 *
 *   target {a: 1, b: {c: 2, d: 3}, e: [1, 2]}
 *   patch  {a: null, b: {c: 9}, e: [3]}
 *   result {b: {c: 9, d: 3}, e: [3]}
 *
 * The target is not modified. Keys such as `__proto__` (JSON.parse keeps them as own data
 * members) are written as own data members too, never through the prototype setter.
 */
export function applyMergePatch (target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch
  const out: Record<string, unknown> = {}
  if (isPlainObject(target)) for (const k of Object.keys(target)) setOwn(out, k, target[k])
  for (const k of Object.keys(patch)) {
    const v = patch[k]
    if (v === null) delete out[k]
    else setOwn(out, k, applyMergePatch(Object.hasOwn(out, k) ? out[k] : undefined, v))
  }
  return out
}

export function isPlainObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function setOwn (o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true })
}

/** True when `v` nests objects/arrays deeper than `max` (checked without recursion). */
export function deeperThan (v: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[v, 0]]
  while (stack.length > 0) {
    const [x, d] = stack.pop() as [unknown, number]
    if (typeof x !== 'object' || x === null) continue
    if (d >= max) return true
    for (const c of Array.isArray(x) ? x : Object.values(x)) stack.push([c, d + 1])
  }
  return false
}

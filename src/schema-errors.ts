import type { ErrorObject } from 'ajv'

/**
 * Turn ajv's errors into one line per problem, `/json/path: reason`, as a person reads
 * them. ajv reports every failed branch of an `anyOf`; we keep only the branches whose
 * `type` matches the value (the user meant that branch), or say which types would do.
 */
export function formatSchemaErrors (errors: readonly ErrorObject[], root: unknown): string[] {
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf')
  const drop = new Set<ErrorObject>()
  const extra: Array<{ path: string, message: string }> = []

  for (const a of anyOfs) {
    drop.add(a)
    const prefix = a.schemaPath + '/'
    // The same schema may fail at several places (two routes): children are the errors under
    // this anyOf's schema path *and* at or below its instance path.
    const children = errors.filter((e) => e !== a && e.schemaPath.startsWith(prefix) &&
      (e.instancePath === a.instancePath || e.instancePath.startsWith(a.instancePath + '/')))
    const branchOf = (e: ErrorObject): string => e.schemaPath.slice(prefix.length).split('/')[0] ?? ''
    const mismatched = new Set(children
      .filter((e) => e.keyword === 'type' && e.instancePath === a.instancePath && e.schemaPath === prefix + branchOf(e) + '/type')
      .map(branchOf))
    const branches = new Set(children.map(branchOf))
    const matching = [...branches].filter((b) => !mismatched.has(b))
    if (matching.length === 0) {
      for (const c of children) drop.add(c)
      const wanted = children.filter((e) => e.keyword === 'type').map((e) => describeType(e.params.type as string | string[], e.parentSchema))
      extra.push({ path: a.instancePath, message: `must be ${[...new Set(wanted)].join(' or ')}` })
    } else {
      for (const c of children) if (!matching.includes(branchOf(c))) drop.add(c)
    }
  }

  const lines = errors.filter((e) => !drop.has(e)).map((e) => ({ path: e.instancePath, message: describe(e, root) }))
  lines.push(...extra)
  const seen = new Set<string>()
  const out: string[] = []
  for (const l of lines) {
    const s = `${l.path === '' ? '/' : l.path}: ${l.message}`
    if (!seen.has(s)) { seen.add(s); out.push(s) }
  }
  return out
}

function describeType (type: string | string[], parent: unknown): string {
  const fmt = (parent as { format?: string } | undefined)?.format
  if (fmt === 'http-url') return 'a URL (http:// or https://)'
  const p = parent as { pattern?: string } | undefined
  if (type === 'string' && p?.pattern?.includes('ms|s|m|h') === true) return 'a duration string such as 500ms, 10s or 2m'
  const t = Array.isArray(type) ? type.join(' or ') : type
  return t === 'object' ? 'an object' : t === 'array' ? 'an array' : t === 'integer' ? 'an integer' : `a ${t}`
}

function describe (e: ErrorObject, _root: unknown): string {
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown property '${String(e.params.additionalProperty)}'`
    case 'required':
      return `must have property '${String(e.params.missingProperty)}'`
    case 'enum':
      return `must be one of: ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
    case 'format':
      return e.params.format === 'http-url' ? 'must be a URL (http:// or https://)' : `must be a valid ${String(e.params.format)}`
    case 'type':
      return `must be ${describeType(e.params.type as string, e.parentSchema)}`
    case 'pattern': {
      const pattern = String(e.params.pattern)
      if (pattern.includes('ms|s|m|h')) return 'must be a duration such as 500ms, 10s or 2m'
      return `must match ${pattern}`
    }
    default:
      return e.message ?? e.keyword
  }
}

/**
 * Rules per HTTP method, for authz plugins (acl, scopes): a top-level rule, and a
 * `methods` map whose entries replace it for the methods they name.
 */

/** The `methods` member of such a plugin's schema, for a given rule schema. */
export function methodsSchema (rule: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    patternProperties: { '^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$': rule },
    description: 'Per-method rules; a method listed here uses its own rule instead of the top-level one'
  }
}

/** Compile each rule once; the lookup returns the method's own rule, else the top-level one. */
export function perMethod<R, C> (config: R & { methods?: Record<string, R> }, compile: (rule: R) => C): (method: string) => C {
  const base = compile(config)
  const byMethod = new Map(Object.entries(config.methods ?? {}).map(([m, r]) => [m, compile(r)]))
  if (byMethod.size === 0) return () => base
  return (method) => byMethod.get(method) ?? base
}

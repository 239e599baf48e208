import { gatewaySchema } from '../config-schema.js'
import type { ChangeSummary } from './types.js'

type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * What changed between two raw configs (as users write them, defaults possibly absent), by
 * name only: routes by `name`, plugin entries as `global:<plugin>` or `<route>:<plugin>`,
 * and every other top-level key whose value differs. No config value ever goes into the
 * summary, so it is safe to log and to show. Either side may be anything (a refused update
 * is summarised too); what is not a config counts as an empty one.
 */
export function summarize (before: unknown, after: unknown): ChangeSummary {
  const a = isObj(before) ? before : {}
  const b = isObj(after) ? after : {}

  const routesA = entries(a.routes, label)
  const routesB = entries(b.routes, label)

  const pluginsA = pluginEntries(a.plugins, routesA)
  const pluginsB = pluginEntries(b.plugins, routesB)

  const props = gatewaySchema.properties as Obj
  const settings: string[] = []
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (k === 'routes' || k === 'plugins') continue
    if (!sameUnder(props[k], a[k], b[k])) settings.push(k)
  }

  return {
    routes: compare(routesA, routesB, noGroup, (x, y) => sameUnder(ROUTE, x, y)),
    plugins: compare(pluginsA, pluginsB, pluginGroup, (x, y) => sameUnder(PLUGIN, x, y))
  , settings: settings.sort() }
}

const ROUTE = (gatewaySchema.properties.routes as Obj).items
const PLUGIN = (gatewaySchema.properties.plugins as Obj).items

/**
 * Two values equal as written, or once the schema's defaults are filled in (`listen: {}` and
 * no `listen`; a plugin entry with and without `enabled: true`). Defaults are filled only
 * where the written forms differ: with 1,000 routes most are untouched by an update, and
 * filling every one cost tens of ms per update.
 */
function sameUnder (schema: unknown, x: unknown, y: unknown): boolean {
  return sameJson(x, y) || sameJson(withDefaults(schema, x), withDefaults(schema, y))
}

const noGroup = (): string => ''

/**
 * Added, removed and changed keys of two ordered maps. Order is part of the config (routes
 * sharing a path, and plugins within a phase, run in config order), so an entry present in
 * both whose position among the common entries of its group moved counts as changed too.
 * Groups: one list each (all routes; the global plugins; one route's plugins), so moving a
 * route does not count its plugins as changed.
 */
function compare (a: Map<string, unknown>, b: Map<string, unknown>, group: (k: string) => string, same: (x: unknown, y: unknown) => boolean): { added: string[], removed: string[], changed: string[] } {
  const added = [...b.keys()].filter((k) => !a.has(k))
  const removed = [...a.keys()].filter((k) => !b.has(k))
  const order = (m: Map<string, unknown>, other: Map<string, unknown>): Map<string, string[]> => {
    const out = new Map<string, string[]>()
    for (const k of m.keys()) {
      if (!other.has(k)) continue
      const g = group(k)
      const list = out.get(g)
      if (list === undefined) out.set(g, [k])
      else list.push(k)
    }
    return out
  }
  const orderA = order(a, b)
  const orderB = order(b, a)
  const changed: string[] = []
  for (const [g, list] of orderA) {
    const listB = orderB.get(g) ?? []
    list.forEach((k, i) => { if (listB[i] !== k || !same(a.get(k), b.get(k))) changed.push(k) })
  }
  return { added: added.sort(), removed: removed.sort(), changed: changed.sort() }
}

/** `orders:rate-limit` -> `orders`, `global:request-id` -> `global`. */
const pluginGroup = (k: string): string => k.slice(0, k.indexOf(':'))

/** An array's items keyed by a label; a label seen twice (an invalid config) gets `#2`, `#3`. */
function entries (list: unknown, label: (item: unknown, i: number) => string, out = new Map<string, unknown>()): Map<string, unknown> {
  if (!Array.isArray(list)) return out
  list.forEach((item, i) => {
    const base = label(item, i)
    let k = base
    for (let n = 2; out.has(k); n++) k = `${base}#${n}`
    out.set(k, item)
  })
  return out
}

/** Every plugin entry of a config: the global ones, then each route's, in config order. */
function pluginEntries (globals: unknown, routes: Map<string, unknown>): Map<string, unknown> {
  const out = entries(globals, (p, i) => `global:${label(p, i)}`)
  for (const [name, r] of routes) entries(isObj(r) ? r.plugins : undefined, (p, i) => `${name}:${label(p, i)}`, out)
  return out
}

// Names are identifiers (the schema restricts them to [A-Za-z0-9._-]); anything else, such
// as a name that is not a string in a refused config, is shown by position instead.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

function label (item: unknown, i: number): string {
  const name = isObj(item) ? item.name : undefined
  return typeof name === 'string' && NAME.test(name) ? name : `#${i}`
}

/**
 * A copy of `value` with the gateway schema's defaults filled in where absent, so that
 * `listen: {}` and no `listen` at all, or a plugin entry with and without `enabled: true`,
 * compare equal. Only plain `properties`/`items` are followed (not `anyOf`); plugin
 * configs have their own schemas and are compared as written.
 */
function withDefaults (schema: unknown, value: unknown): unknown {
  if (!isObj(schema)) return value
  // The default itself, not a copy: what is built here is only compared, never changed
  // (a structuredClone per default made a 1,000-route summary cost tens of ms).
  if (value === undefined && 'default' in schema) value = schema.default
  if (Array.isArray(value) && isObj(schema.items)) return value.map((v) => withDefaults(schema.items, v))
  if (isObj(value) && isObj(schema.properties)) {
    const out: Obj = { ...value }
    for (const [k, s] of Object.entries(schema.properties)) {
      const v = withDefaults(s, out[k])
      if (v !== undefined) out[k] = v
    }
    return out
  }
  return value
}

/** Equality of JSON values: object key order does not matter, `undefined` members are absent. */
function sameJson (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => sameJson(v, b[i]))
  }
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined)
    const kb = Object.keys(b).filter((k) => b[k] !== undefined)
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]))
  }
  return false
}

/**
 * Key names whose values are secrets: API keys, tokens, passwords, JWT secrets, cookies.
 * `key` alone is exempt: in rate-limit it names what is counted (`ip`, `header:X-Key`).
 */
const SECRET_KEY = /secret|password|token|key|credential|authorization|cookie|private/i

/** What a masked value becomes. */
export const REDACTED = '[redacted]'

/**
 * A deep copy of a raw config in which every string under a secret-looking key (see
 * SECRET_KEY), however deeply nested below it, is replaced by '[redacted]'. Numbers and
 * booleans are kept (they are not credentials and help reading a config). For the admin API's
 * config views and for audit entries; never for what is applied.
 */
export function maskSecrets (raw: unknown): unknown {
  return mask(raw, false)
}

function mask (v: unknown, secret: boolean): unknown {
  if (typeof v === 'string') return secret ? REDACTED : v
  if (Array.isArray(v)) return v.map((x) => mask(x, secret))
  if (isObj(v)) {
    const out: Obj = {}
    for (const [k, x] of Object.entries(v)) {
      // defineProperty, not `out[k] =`: a `__proto__` member (JSON.parse makes it an own
      // property) must stay a member, not become the copy's prototype.
      Object.defineProperty(out, k, { value: mask(x, secret || (k !== 'key' && SECRET_KEY.test(k))), enumerable: true, writable: true, configurable: true })
    }
    return out
  }
  return v
}

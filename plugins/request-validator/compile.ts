import { Ajv } from 'ajv'
import type { ErrorObject, Options, ValidateFunction } from 'ajv'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { compileLinear, UnsupportedPatternError } from './linear-regexp.js'
import type { Draft } from './schema.js'

// ajv-formats is CJS with a default export; under NodeNext it arrives as the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv

/** Which ajv instance compiles a schema: the options that differ between schemas. */
export interface CompileOptions {
  draft: Draft
  /** Query, params and headers arrive as strings: their types are coerced. Never the body. */
  coerce: boolean
  allErrors: boolean
  regExpEngine: 'linear' | 'native'
}

/**
 * The request schemas' ajv instances, one per combination of options, made on first use and
 * kept for the thread's life. Unlike the config's (src/ajv.ts): no defaults are filled in (the
 * upstream gets the request as sent, so filling in would only change what is checked), no
 * `verbose` (errors must not carry the request's data), `$data` off (CVE-2025-69873: a
 * `$data` pattern would come from the request), unknown keywords refused (a typo such as
 * `maxLenght` must not silently check nothing), `logger: false` (strict-mode warnings about
 * the user's schemas are not the gateway's log lines).
 */
const instances = new Map<string, Ajv>()

function nativeRegExp (pattern: string, u: string): RegExp {
  return new RegExp(pattern, u === '' ? 'u' : u)
}
nativeRegExp.code = 'new RegExp'

function linearRegExp (pattern: string): { test: (s: string) => boolean, toString: () => string } {
  return compileLinear(pattern)
}
linearRegExp.code = 'linearRegExp'

function keyOf (o: CompileOptions): string {
  return `${o.draft}|${o.coerce ? 'coerce' : 'exact'}|${o.allErrors ? 'all' : 'first'}|${o.regExpEngine}`
}

function instance (o: CompileOptions): Ajv {
  const key = keyOf(o)
  let ajv = instances.get(key)
  if (ajv === undefined) {
    const options: Options = {
      allErrors: o.allErrors,
      coerceTypes: o.coerce ? 'array' : false,
      useDefaults: false,
      removeAdditional: false,
      $data: false,
      verbose: false,
      strictSchema: true,
      strictTypes: false,
      strictTuples: false,
      strictRequired: false,
      allowUnionTypes: true,
      unicodeRegExp: true,
      // Schemas with an $id are not registered by it: a changed schema keeping its $id in
      // the next generation would otherwise clash with the one still cached.
      addUsedSchema: false,
      logger: false,
      code: { regExp: o.regExpEngine === 'linear' ? linearRegExp : nativeRegExp }
    }
    ajv = o.draft === '2020-12' ? new Ajv2020(options) as unknown as Ajv : new Ajv(options)
    addFormats(ajv)
    instances.set(key, ajv)
  }
  return ajv
}

/**
 * Compiled validators by options and schema text, across generations: a policy update that
 * leaves a schema as it was reuses its validator instead of compiling it again in every
 * worker. Bounded; the oldest is dropped first, and removed from its ajv instance too
 * (ajv keeps every schema it compiled, by object, until told otherwise).
 */
const MAX_CACHED = 256
const cache = new Map<string, { validate: ValidateFunction, ajv: Ajv, schema: object }>()

/** Compile `schema` (a throw says why it does not compile). */
export function compileSchema (schema: Record<string, unknown>, o: CompileOptions): ValidateFunction {
  const text = JSON.stringify(schema)
  const key = keyOf(o) + '\n' + text
  const hit = cache.get(key)
  if (hit !== undefined) {
    cache.delete(key)
    cache.set(key, hit)
    return hit.validate
  }
  const ajv = instance(o)
  // A private copy: ajv holds on to the object, and the config's may be frozen or reused.
  const own = JSON.parse(text) as Record<string, unknown>
  let validate: ValidateFunction
  try {
    validate = ajv.compile(own)
  } catch (err) {
    // ajv has kept the schema before finding it bad: a refused update must not leak it.
    ajv.removeSchema(own)
    throw err
  }
  cache.set(key, { validate, ajv, schema: own })
  if (cache.size > MAX_CACHED) {
    const [oldKey, old] = cache.entries().next().value as [string, { ajv: Ajv, schema: object }]
    cache.delete(oldKey)
    // Validators already handed out keep working: a compiled function holds what it needs.
    old.ajv.removeSchema(old.schema)
  }
  return validate
}

/** How many validators are cached (for tests). */
export function cachedValidators (): number {
  return cache.size
}

/* ------------------------------ walking schemas ------------------------------ */

const ONE = ['items', 'additionalItems', 'additionalProperties', 'not', 'if', 'then', 'else', 'contains', 'propertyNames', 'unevaluatedItems', 'unevaluatedProperties', 'contentSchema']
const MANY = ['allOf', 'anyOf', 'oneOf', 'prefixItems', 'items']
const MAP = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas', 'dependencies']

/** `/` and `~` escaped for a JSON pointer token (RFC 6901). */
export function pointerToken (s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

/**
 * Visit every schema object inside `root` (not property names, not `enum` values), with its
 * JSON pointer from `base`. Iterative: a schema nested deep does not grow the stack.
 */
export function eachSchema (root: unknown, base: string, visit: (schema: Record<string, unknown>, pointer: string) => void): void {
  const stack: Array<[unknown, string]> = [[root, base]]
  while (stack.length > 0) {
    const [node, ptr] = stack.pop() as [unknown, string]
    if (node === null || typeof node !== 'object' || Array.isArray(node)) continue
    const s = node as Record<string, unknown>
    visit(s, ptr)
    for (const k of ONE) if (k in s && !Array.isArray(s[k])) stack.push([s[k], `${ptr}/${k}`])
    for (const k of MANY) {
      const v = s[k]
      if (Array.isArray(v)) v.forEach((x, i) => stack.push([x, `${ptr}/${k}/${i}`]))
    }
    for (const k of MAP) {
      const v = s[k]
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        for (const [name, x] of Object.entries(v)) stack.push([x, `${ptr}/${k}/${pointerToken(name)}`])
      }
    }
  }
}

/**
 * Every `pattern` and `patternProperties` key of a schema, checked as the chosen engine will
 * run it; problems as `pointer: reason` lines, so that a bad pattern is reported where it is.
 */
export function checkPatterns (schema: unknown, base: string, engine: 'linear' | 'native'): string[] {
  const problems: string[] = []
  const check = (pattern: string, pointer: string): void => {
    try {
      if (engine === 'linear') compileLinear(pattern)
      else nativeRegExp(pattern, 'u')
    } catch (err) {
      const why = err instanceof UnsupportedPatternError ? err.message : `not a valid regular expression (u flag): ${(err as Error).message}`
      problems.push(`${pointer}: pattern ${JSON.stringify(pattern)}: ${why}`)
    }
  }
  eachSchema(schema, base, (s, ptr) => {
    if (typeof s.pattern === 'string') check(s.pattern, `${ptr}/pattern`)
    const pp = s.patternProperties
    if (pp !== null && typeof pp === 'object' && !Array.isArray(pp)) {
      for (const p of Object.keys(pp)) check(p, `${ptr}/patternProperties/${pointerToken(p)}`)
    }
  })
  return problems
}

/**
 * The headers schema with its top-level `properties` names and `required` entries in lower
 * case: Node gives header names in lower case, and users write `X-Request-Id`.
 */
export function lowerCaseHeaderNames (schema: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...schema }
  const props = schema.properties
  if (props !== null && typeof props === 'object' && !Array.isArray(props)) {
    out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k.toLowerCase(), v]))
  }
  if (Array.isArray(schema.required)) out.required = schema.required.map((r) => (typeof r === 'string' ? r.toLowerCase() : r))
  return out
}

/* ------------------------------ reporting ------------------------------ */

export interface Violation {
  /** Which part of the request: body, query, params or headers. */
  in: string
  /** JSON pointer into that part (RFC 6901); '' for the part itself. */
  pointer: string
  message: string
}

const MAX_POINTER = 256
const MAX_NAME = 64

function cut (s: string, max: number): string {
  return s.length > max ? s.slice(0, max) + '…' : s
}

/**
 * ajv's errors as violations: at most `max`, each a pointer and a message. Names that came
 * from the request (an unknown property) are cut short; ajv's messages quote only the
 * schema (a pattern, a limit), never the data, as `verbose` is off.
 */
export function violations (errors: readonly ErrorObject[] | null | undefined, where: string, max: number): Violation[] {
  const out: Violation[] = []
  if (errors == null) return out
  for (let i = 0; i < errors.length && out.length < max; i++) {
    const e = errors[i] as ErrorObject
    let pointer = e.instancePath
    let message = e.message ?? 'is not valid'
    if (e.keyword === 'additionalProperties') {
      pointer += '/' + pointerToken(cut(String(e.params.additionalProperty), MAX_NAME))
      message = 'is not allowed'
    } else if (e.keyword === 'required') {
      pointer += '/' + pointerToken(String(e.params.missingProperty))
      message = 'is required'
    }
    out.push({ in: where, pointer: cut(pointer, MAX_POINTER), message })
  }
  return out
}

/** True for a `format` the request schemas' ajv knows (ajv-formats' list). */
export function isKnownFormat (name: string): boolean {
  return instance({ draft: '07', coerce: false, allErrors: false, regExpEngine: 'native' }).formats[name] !== undefined
}

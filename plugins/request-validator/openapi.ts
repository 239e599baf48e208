import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { isKnownFormat, pointerToken } from './compile.js'
import type { Draft } from './schema.js'

type JsonSchema = Record<string, unknown>
type Part = 'body' | 'query' | 'params' | 'headers'

/** The schemas one plugin entry checks, from its config or from an OpenAPI operation. */
export interface RequestSchemas {
  draft: Draft
  body?: JsonSchema
  query?: JsonSchema
  params?: JsonSchema
  headers?: JsonSchema
  /** From the operation's requestBody: its JSON media types (else the config's list). */
  contentTypes?: string[]
  /** From the operation's requestBody: `required` (else the config's methods decide). */
  bodyRequired?: boolean
  /** Where each schema came from, for error lines (default: `/body` etc. in the config). */
  origins?: Partial<Record<Part, string>>
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
/** OpenAPI 3: header parameters by these names "SHALL be ignored". */
const IGNORED_HEADERS = new Set(['accept', 'content-type', 'authorization'])
/** OpenAPI's own schema keywords, which are annotations to a validator. */
const OPENAPI_ANNOTATIONS = new Set(['example', 'xml', 'externalDocs', 'discriminator'])
const JSON_MEDIA = /^application\/([a-z0-9!#$&^_.-]+\+)?json$/i
const MAX_SCHEMA_DEPTH = 256
const MAX_REF_HOPS = 32

const ONE = ['items', 'additionalItems', 'additionalProperties', 'not', 'if', 'then', 'else', 'contains', 'propertyNames', 'unevaluatedItems', 'unevaluatedProperties', 'contentSchema']
const MANY = ['allOf', 'anyOf', 'oneOf', 'prefixItems', 'items']
const MAP = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** The value at a local JSON pointer (`#/components/schemas/Order`) of the document. */
function atPointer (doc: unknown, ref: string): unknown {
  let node = doc
  for (const raw of ref.slice(2).split('/')) {
    const token = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~')
    if (!isObject(node) && !Array.isArray(node)) return undefined
    node = (node as Record<string, unknown>)[token]
  }
  return node
}

/**
 * Read an OpenAPI 3.0 or 3.1 document (YAML or JSON) and take one operation's schemas: its
 * JSON requestBody, and its query, path and header parameters as one object schema each.
 * Local `$ref`s (`#/components/...`) are resolved: parameter and requestBody references are
 * followed; schema references are kept as references into a `$defs` table carried with each
 * schema, so recursive schemas work. Refused with a reason: another file's `$ref`,
 * parameters given as `content`, query styles other than `form`.
 */
export async function loadOpenApi (o: { file: string, operationId?: string, path?: string, method?: string }, dir: string): Promise<RequestSchemas> {
  const file = resolve(dir, o.file)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new Error(`/openapi/file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  let doc: unknown
  try {
    doc = parseYaml(text, { maxAliasCount: 100 })
  } catch (err) {
    throw new Error(`/openapi/file: ${file} is not YAML or JSON: ${(err as Error).message.split('\n')[0] ?? ''}`)
  }
  if (!isObject(doc) || typeof doc.openapi !== 'string' || !/^3\.[01]\./.test(doc.openapi)) {
    throw new Error(`/openapi/file: ${file} is not an OpenAPI 3.0 or 3.1 document (no openapi: 3.0.x or 3.1.x)`)
  }
  const v31 = doc.openapi.startsWith('3.1.')
  const paths = isObject(doc.paths) ? doc.paths : {}

  let found: { path: string, method: string, item: Record<string, unknown>, op: Record<string, unknown> } | undefined
  if (o.operationId !== undefined) {
    if (o.path !== undefined || o.method !== undefined) throw new Error('/openapi: give operationId, or path and method, not both')
    for (const [p, item] of Object.entries(paths)) {
      if (!isObject(item)) continue
      for (const m of METHODS) {
        const op = item[m]
        if (isObject(op) && op.operationId === o.operationId) {
          if (found !== undefined) throw new Error(`/openapi/operationId: '${o.operationId}' names more than one operation in ${file}`)
          found = { path: p, method: m, item, op }
        }
      }
    }
    if (found === undefined) throw new Error(`/openapi/operationId: no operation '${o.operationId}' in ${file}`)
  } else {
    if (o.path === undefined || o.method === undefined) throw new Error('/openapi: give operationId, or path and method')
    const item = paths[o.path]
    const m = o.method.toLowerCase()
    const op = isObject(item) ? item[m] : undefined
    if (!isObject(item) || !isObject(op)) throw new Error(`/openapi: no operation ${o.method.toUpperCase()} ${o.path} in ${file}`)
    found = { path: o.path, method: m, item, op }
  }

  const opPointer = `#/paths/${pointerToken(found.path)}/${found.method}`
  const where = `${o.file}${opPointer}`
  const converter = new SchemaConverter(doc, v31, o.file)

  const deref = (value: unknown, at: string): { value: Record<string, unknown>, at: string } => {
    let node = value
    let ptr = at
    for (let hops = 0; isObject(node) && typeof node.$ref === 'string'; hops++) {
      if (hops >= MAX_REF_HOPS) throw new Error(`${o.file}${ptr}: $ref chain longer than ${MAX_REF_HOPS}`)
      const ref = node.$ref
      if (!ref.startsWith('#/')) throw new Error(`${o.file}${ptr}/$ref: only local references (#/...) are supported, not ${JSON.stringify(ref)}`)
      ptr = ref
      node = atPointer(doc, ref)
      if (node === undefined) throw new Error(`${o.file}${at}/$ref: ${ref} is not in the document`)
    }
    if (!isObject(node)) throw new Error(`${o.file}${ptr}: not an object`)
    return { value: node, at: ptr }
  }

  // Parameters: the path item's, then the operation's (which override by name and location).
  const params = new Map<string, { p: Record<string, unknown>, at: string }>()
  const addParams = (list: unknown, at: string): void => {
    if (list === undefined) return
    if (!Array.isArray(list)) throw new Error(`${o.file}${at}: parameters must be a list`)
    list.forEach((raw, i) => {
      const { value: p, at: pAt } = deref(raw, `${at}/${i}`)
      if (typeof p.name !== 'string' || typeof p.in !== 'string') throw new Error(`${o.file}${pAt}: a parameter needs name and in`)
      params.set(`${p.in}\n${p.in === 'header' ? p.name.toLowerCase() : p.name}`, { p, at: pAt })
    })
  }
  addParams(found.item.parameters, `#/paths/${pointerToken(found.path)}/parameters`)
  addParams(found.op.parameters, `${opPointer}/parameters`)

  const groups: Record<'query' | 'path' | 'header', { properties: Record<string, unknown>, required: string[] }> = {
    query: { properties: {}, required: [] },
    path: { properties: {}, required: [] },
    header: { properties: {}, required: [] }
  }
  for (const { p, at } of params.values()) {
    const loc = p.in as string
    if (loc === 'cookie') continue // not checked (see README)
    if (loc !== 'query' && loc !== 'path' && loc !== 'header') throw new Error(`${o.file}${at}/in: unknown parameter location ${JSON.stringify(loc)}`)
    const name = loc === 'header' ? (p.name as string).toLowerCase() : p.name as string
    if (loc === 'header' && IGNORED_HEADERS.has(name)) continue
    if (p.content !== undefined) throw new Error(`${o.file}${at}: parameters described by content (not schema) are not supported`)
    if (loc === 'query' && p.style !== undefined && p.style !== 'form') throw new Error(`${o.file}${at}/style: query style ${JSON.stringify(p.style)} is not supported (form only)`)
    if (loc === 'query' && p.explode === false) throw new Error(`${o.file}${at}/explode: explode: false is not supported (repeat the name for each value)`)
    const g = groups[loc]
    g.properties[name] = p.schema === undefined ? {} : converter.convert(p.schema, `${at}/schema`)
    if (p.required === true || loc === 'path') g.required.push(name)
  }

  const out: RequestSchemas = { draft: v31 ? '2020-12' : '07', origins: {} }
  const origins = out.origins as Partial<Record<Part, string>>
  const group = (part: 'query' | 'params' | 'headers', loc: 'query' | 'path' | 'header'): void => {
    const g = groups[loc]
    if (Object.keys(g.properties).length === 0) return
    const s: JsonSchema = { type: 'object', properties: g.properties }
    if (g.required.length > 0) s.required = g.required
    out[part] = converter.withDefs(s)
    origins[part] = `${where}/parameters (in: ${loc})`
  }
  group('query', 'query')
  group('params', 'path')
  group('headers', 'header')

  if (found.op.requestBody !== undefined) {
    const { value: rb, at: rbAt } = deref(found.op.requestBody, `${opPointer}/requestBody`)
    const content = isObject(rb.content) ? rb.content : {}
    const json = Object.keys(content).filter((k) => JSON_MEDIA.test(k.split(';')[0]?.trim() ?? ''))
    if (json.length > 0) {
      const first = json[0] as string
      const media = content[first]
      const schema = isObject(media) && media.schema !== undefined ? media.schema : {}
      const at = `${rbAt}/content/${pointerToken(first)}/schema`
      out.body = converter.withDefs(converter.convert(schema, at))
      origins.body = `${o.file}${at}`
      out.contentTypes = json.map((k) => (k.split(';')[0] as string).trim().toLowerCase())
      out.bodyRequired = rb.required === true
    }
  }
  return out
}

/**
 * OpenAPI schema objects to JSON Schema for ajv: OpenAPI's annotations and `x-` extensions
 * dropped, 3.0's boolean exclusiveMinimum/Maximum made numeric, 3.0's `nullable` kept (ajv
 * knows it) unless there is no `type`, formats ajv does not know dropped (they are
 * annotations in JSON Schema 2020-12), and local `$ref`s pointed into `$defs`.
 */
class SchemaConverter {
  /** Referenced schemas, converted: `$defs` key (the pointer without `#/`) -> schema. */
  readonly #defs = new Map<string, unknown>()
  readonly #doc: unknown
  readonly #v31: boolean
  readonly #file: string

  constructor (doc: unknown, v31: boolean, file: string) {
    this.#doc = doc
    this.#v31 = v31
    this.#file = file
  }

  convert (schema: unknown, at: string, depth = 0): unknown {
    if (depth > MAX_SCHEMA_DEPTH) throw new Error(`${this.#file}${at}: schema nested more than ${MAX_SCHEMA_DEPTH} deep`)
    if (typeof schema === 'boolean') return schema
    if (!isObject(schema)) throw new Error(`${this.#file}${at}: a schema must be an object`)
    if (typeof schema.$ref === 'string') {
      const ref = this.#ref(schema.$ref, at)
      // 3.0: a Reference Object's other members "SHALL be ignored"; 3.1 keeps them.
      if (!this.#v31) return { $ref: ref }
    }
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(schema)) {
      if (k.startsWith('x-') || OPENAPI_ANNOTATIONS.has(k)) continue
      if (k === '$ref') out.$ref = this.#ref(v as string, at)
      else if (k === 'format' && typeof v === 'string' && !isKnownFormat(v)) continue
      else if (ONE.includes(k) && !Array.isArray(v)) out[k] = this.convert(v, `${at}/${k}`, depth + 1)
      else if (MANY.includes(k) && Array.isArray(v)) out[k] = v.map((x, i) => this.convert(x, `${at}/${k}/${i}`, depth + 1))
      else if (MAP.includes(k) && isObject(v)) out[k] = Object.fromEntries(Object.entries(v).map(([n, x]) => [n, this.convert(x, `${at}/${k}/${pointerToken(n)}`, depth + 1)]))
      else out[k] = v
    }
    if (!this.#v31) {
      for (const [bool, limit] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
        if (typeof out[bool] !== 'boolean') continue
        if (out[bool] === true && typeof out[limit] === 'number') {
          out[bool] = out[limit]
          delete out[limit]
        } else {
          delete out[bool]
        }
      }
      if (out.nullable !== undefined && out.type === undefined) delete out.nullable
    }
    return out
  }

  /** `#/components/schemas/Order` -> `#/$defs/components~1schemas~1Order`, converted once. */
  #ref (ref: string, at: string): string {
    if (!ref.startsWith('#/')) throw new Error(`${this.#file}${at}/$ref: only local references (#/...) are supported, not ${JSON.stringify(ref)}`)
    const key = ref.slice(2)
    if (!this.#defs.has(key)) {
      const target = atPointer(this.#doc, ref)
      if (target === undefined) throw new Error(`${this.#file}${at}/$ref: ${ref} is not in the document`)
      this.#defs.set(key, true) // placeholder: a recursive schema refers to itself
      this.#defs.set(key, this.convert(target, ref))
    }
    return `#/$defs/${pointerToken(key)}`
  }

  /** The schema with every definition converted so far, as its `$defs`. */
  withDefs (schema: unknown): JsonSchema {
    const s: JsonSchema = isObject(schema) ? { ...schema } : { allOf: [schema] }
    if (this.#defs.size > 0) s.$defs = { ...(isObject(s.$defs) ? s.$defs : {}), ...Object.fromEntries(this.#defs) }
    return s
  }
}

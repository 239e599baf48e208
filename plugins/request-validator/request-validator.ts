import { isUtf8 } from 'node:buffer'
import { STATUS_CODES } from 'node:http'
import type { ValidateFunction } from 'ajv'
import { codes } from '../../src/errors.js'
import type { JsonSchema, PluginApi, PluginHooks, PrepareApi, RequestContext } from '../../src/types.js'
import { checkPatterns, compileSchema, eachSchema, lowerCaseHeaderNames, violations } from './compile.js'
import type { CompileOptions, Violation } from './compile.js'
import { parseJsonBody } from './json.js'
import type { JsonLimits } from './json.js'
import { loadOpenApi } from './openapi.js'
import type { RequestSchemas } from './openapi.js'
import { parseQuery } from './query.js'
import type { RequestValidatorConfig } from './schema.js'

/** Where the plugin keeps the parsed body for later plugins: `ctx.state['request-validator'].body`. */
export const STATE_KEY = 'request-validator'

type Part = 'body' | 'query' | 'params' | 'headers'
const PARTS: readonly Part[] = ['params', 'query', 'headers', 'body']
const CODE: Record<Part, string> = { body: 'BODY_INVALID', query: 'QUERY_INVALID', params: 'PARAMS_INVALID', headers: 'HEADERS_INVALID' }
const WHAT: Record<Part, string> = { body: 'the request body', query: 'the query string', params: 'the path parameters', headers: 'the request headers' }

/**
 * The acceptor's once-per-generation step: an OpenAPI document is read and its operation's
 * schemas resolved here, once, and reach every worker as `api.prepared` (a changed document
 * is read again by the next policy update). Inline schemas need no preparing.
 */
export async function prepareRequestValidator (config: RequestValidatorConfig, api: PrepareApi): Promise<RequestSchemas | undefined> {
  if (config.openapi === undefined) return undefined
  const inline = PARTS.filter((p) => config[p] !== undefined)
  if (inline.length > 0) throw new Error(`/openapi: give either openapi or inline schemas, not both (${inline.join(', ')} given)`)
  return await loadOpenApi(config.openapi, api.configDir)
}

/* ------------------------------ media types ------------------------------ */

const MEDIA_TYPE = /^[!#$%&'*+.^_`|~0-9a-z-]+\/[!#$%&'*+.^_`|~0-9a-z-]+$/

/** `type/subtype` (lower case) and its charset parameter of a Content-Type value. */
export function parseMediaType (value: string): { type: string, charset: string | undefined } | undefined {
  const semi = value.indexOf(';')
  const type = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase()
  if (!MEDIA_TYPE.test(type)) return undefined
  let charset: string | undefined
  if (semi !== -1) {
    for (const p of value.slice(semi + 1).split(';')) {
      const eq = p.indexOf('=')
      if (eq === -1) continue
      if (p.slice(0, eq).trim().toLowerCase() === 'charset') charset = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase()
    }
  }
  return { type, charset }
}

/** A test for the configured media ranges: exact, `type/*`, `type/*+suffix`, `*\/*`. */
export function mediaRangeMatcher (ranges: readonly string[]): (type: string) => boolean {
  const exact = new Set<string>()
  const wild: Array<{ prefix: string, suffix: string }> = []
  for (const r of ranges.map((x) => x.toLowerCase())) {
    if (r === '*/*') wild.push({ prefix: '', suffix: '' })
    else if (r.endsWith('/*')) wild.push({ prefix: r.slice(0, -1), suffix: '' })
    else if (r.includes('/*+')) wild.push({ prefix: r.slice(0, r.indexOf('*')), suffix: r.slice(r.indexOf('*') + 1) })
    else exact.add(r)
  }
  return (type) => {
    if (exact.has(type)) return true
    for (const w of wild) {
      if (type.startsWith(w.prefix) && type.endsWith(w.suffix) && type.length > w.prefix.length + w.suffix.length) return true
    }
    return false
  }
}

/* ------------------------------ compiling ------------------------------ */

/** Every problem of a compile, at its JSON pointer: ajv's own messages lack one. */
function compileProblems (schema: JsonSchema, base: string, o: CompileOptions): string[] {
  const problems = checkPatterns(schema, base, o.regExpEngine)
  if (problems.length > 0) return problems
  try {
    compileSchema(schema, o)
    return []
  } catch (err) {
    const msg = (err as Error).message
    // "schema is invalid: data/properties/a/type must be ..., data/... must ..."
    if (msg.startsWith('schema is invalid: ')) {
      return msg.slice('schema is invalid: '.length).split(/, (?=data[/ ])/).map((m) => {
        const sp = m.indexOf(' ')
        return `${base}${m.slice('data'.length, sp)}: ${m.slice(sp + 1)}`
      })
    }
    // "strict mode: unknown keyword: \"maxLenght\"", "can't resolve reference #/x from id #":
    // point at the schema that has it.
    const kw = /unknown keyword: "([^"]+)"/.exec(msg)?.[1]
    const ref = /can't resolve reference (\S+)/.exec(msg)?.[1]
    let at: string | undefined
    eachSchema(schema, base, (s, ptr) => {
      if (at !== undefined) return
      if (kw !== undefined && kw in s) at = `${ptr}/${kw}`
      else if (ref !== undefined && s.$ref === ref) at = `${ptr}/$ref`
    })
    return [`${at ?? base}: ${msg}`]
  }
}

interface Compiled {
  part: Part
  validate: ValidateFunction
}

function compileAll (schemas: RequestSchemas, config: RequestValidatorConfig): Compiled[] {
  const problems: string[] = []
  const out: Compiled[] = []
  for (const part of PARTS) {
    let schema = schemas[part]
    if (schema === undefined) continue
    if (part === 'headers') schema = lowerCaseHeaderNames(schema)
    const o: CompileOptions = { draft: schemas.draft, coerce: part !== 'body', allErrors: config.allErrors, regExpEngine: config.regExpEngine }
    const base = schemas.origins?.[part] ?? `/${part}`
    const found = compileProblems(schema, base, o)
    if (found.length > 0) {
      problems.push(...found)
      continue
    }
    out.push({ part, validate: compileSchema(schema, o) })
  }
  if (problems.length > 0) {
    throw codes.GW_ERR_CONFIG_INVALID('request-validator schemas', problems.length, { details: problems })
  }
  return out
}

/* ------------------------------ the hook ------------------------------ */

/**
 * The validate-phase hook: params, query and headers are checked synchronously; a body is
 * read (and so buffered, then sent upstream from memory) only when there is a body schema.
 */
export function createRequestValidator (config: RequestValidatorConfig, api: PluginApi): PluginHooks {
  const prepared = api.prepared as RequestSchemas | undefined
  if (prepared === undefined && config.openapi !== undefined) throw new Error('/openapi: the OpenAPI document was not prepared (prepare() did not run)')
  const schemas: RequestSchemas = prepared ?? {
    draft: config.draft,
    body: config.body,
    query: config.query,
    params: config.params,
    headers: config.headers
  }
  const compiled = compileAll(schemas, config)
  const byPart = new Map(compiled.map((c) => [c.part, c.validate]))
  const paramsV = byPart.get('params')
  const queryV = byPart.get('query')
  const headersV = byPart.get('headers')
  const bodyV = byPart.get('body')

  const contentTypes = schemas.contentTypes ?? config.contentTypes
  const acceptsType = mediaRangeMatcher(contentTypes)
  const accepted = contentTypes.join(', ')
  // An OpenAPI operation says whether its body is required; otherwise, by method.
  const requiredIn = new Set(config.bodyRequired)
  const fromDoc = schemas.bodyRequired
  const bodyRequired = (method: string): boolean => fromDoc ?? requiredIn.has(method)
  const limits: JsonLimits = { maxDepth: config.maxDepth, maxElements: config.maxElements, rejectDuplicateKeys: config.rejectDuplicateKeys, rejectProtoKeys: config.rejectProtoKeys }
  const { maxBodySize, maxErrors, exposeErrors, enforce } = config

  /** Answer (or, in shadow mode, log and go on: returns false). */
  const refuse = (ctx: RequestContext, status: number, code: string, detail: string, errors?: Violation[], headers?: Record<string, string>): boolean => {
    if (!enforce) {
      ctx.log.warn({ code, detail, errors }, 'request-validator: the request does not comply (enforce: false, let through)')
      return false
    }
    if (errors !== undefined && errors.length > 0 && exposeErrors) {
      const body = JSON.stringify({ type: 'about:blank', title: STATUS_CODES[status], status, detail, code, errors })
      ctx.reply(status, { code, body, contentType: 'application/problem+json', headers })
    } else {
      ctx.reply(status, { code, detail, headers })
    }
    return true
  }

  const invalid = (ctx: RequestContext, part: Part, validate: ValidateFunction): boolean => {
    const list = violations(validate.errors, part, maxErrors)
    const first = list[0]
    const detail = exposeErrors && first !== undefined
      ? `${WHAT[part]} does not match the schema: ${first.pointer === '' ? '' : first.pointer + ' '}${first.message}`
      : `${WHAT[part]} does not match the schema`
    return refuse(ctx, 400, CODE[part], detail, list)
  }

  const checkBody = (ctx: RequestContext, buf: Buffer | undefined): void => {
    if (buf === undefined) return // the gateway answered (413, 400) or the client left
    if (buf.length === 0) {
      if (bodyRequired(ctx.method)) refuse(ctx, 400, 'BODY_MISSING', `the request needs a body (${accepted})`)
      return
    }
    if (!isUtf8(buf)) {
      refuse(ctx, 400, 'BODY_NOT_JSON', 'the body is not UTF-8 text')
      return
    }
    const parsed = parseJsonBody(buf.toString('utf8'), limits)
    if (!parsed.ok) {
      refuse(ctx, 400, parsed.problem.code, parsed.problem.detail)
      return
    }
    const validate = bodyV as ValidateFunction
    if (!validate(parsed.value)) {
      invalid(ctx, 'body', validate)
      return
    }
    ctx.state[STATE_KEY] = { body: parsed.value }
  }

  return {
    onRequest (ctx: RequestContext) {
      if (paramsV !== undefined) {
        const p = Object.create(null) as Record<string, string>
        for (const k in ctx.params) {
          const v = ctx.params[k]
          if (v !== undefined) p[k] = v
        }
        if (!paramsV(p) && invalid(ctx, 'params', paramsV)) return
      }
      if (queryV !== undefined) {
        const q = parseQuery(ctx.query)
        if (q === undefined) {
          if (refuse(ctx, 400, 'QUERY_INVALID', 'the query string has a malformed percent-escape')) return
        } else if (!queryV(q) && invalid(ctx, 'query', queryV)) {
          return
        }
      }
      if (headersV !== undefined) {
        // A copy: types are coerced in place, and ctx.headers is what goes upstream.
        const h = Object.create(null) as Record<string, string | string[]>
        const src = ctx.headers
        for (const k in src) {
          const v = src[k]
          if (v !== undefined) h[k] = Array.isArray(v) ? v.slice() : v
        }
        if (!headersV(h) && invalid(ctx, 'headers', headersV)) return
      }
      if (bodyV === undefined) return

      const te = ctx.headers['transfer-encoding']
      const cl = ctx.headers['content-length']
      if (te === undefined && (cl === undefined || Number(cl) === 0)) {
        if (bodyRequired(ctx.method)) refuse(ctx, 400, 'BODY_MISSING', `the request needs a body (${accepted})`)
        return
      }
      const types = ctx.headerValues('content-type')
      const mt = types.length === 1 ? parseMediaType(types[0] as string) : undefined
      if (mt === undefined || !acceptsType(mt.type) || (mt.charset !== undefined && mt.charset !== 'utf-8' && mt.charset !== 'utf8')) {
        const why = types.length === 0
          ? 'the request has a body but no Content-Type'
          : types.length > 1
            ? 'the request has more than one Content-Type'
            : mt === undefined
              ? 'the Content-Type is malformed'
              : mt.charset !== undefined && acceptsType(mt.type)
                ? `the body must be UTF-8, not ${mt.charset.slice(0, 32)}`
                : 'the body is not of an accepted media type'
        // RFC 9110 15.5.16; RFC 5789 2.2 (Accept-Patch); Accept-Post for POST likewise.
        const headers: Record<string, string> | undefined = ctx.method === 'PATCH' ? { 'accept-patch': accepted } : ctx.method === 'POST' ? { 'accept-post': accepted } : undefined
        refuse(ctx, 415, 'UNSUPPORTED_MEDIA_TYPE', `${why}; accepted: ${accepted}`, undefined, headers)
        return
      }
      const ce = ctx.headers['content-encoding']
      if (ce !== undefined && ce.trim().toLowerCase() !== 'identity') {
        refuse(ctx, 415, 'UNSUPPORTED_MEDIA_TYPE', 'a body with a Content-Encoding cannot be validated; send it uncompressed')
        return
      }
      return ctx.readBody(maxBodySize).then((buf) => checkBody(ctx, buf))
    }
  }
}

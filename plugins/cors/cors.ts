import type { OutgoingHttpHeaders } from 'node:http'
import { isSafeHeaderValue } from '../../src/headers.js'
import type { PluginHooks, RequestContext, ResponseInfo } from '../../src/types.js'
import { canonicalOrigin, MAX_ORIGIN_LENGTH, parseOrigin, parseWildcard, unsafePattern, wildcardMatches } from './origin.js'
import type { Wildcard } from './origin.js'
import type { CorsConfig } from './schema.js'

/** Reason codes of refused preflights (the problem's `code` with 403, the access log's always). */
export const REASONS = Object.freeze({
  origin: 'CORS_ORIGIN_NOT_ALLOWED',
  method: 'CORS_METHOD_NOT_ALLOWED',
  headers: 'CORS_HEADERS_NOT_ALLOWED'
})

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/
/** A preflight asking for more request headers than this is refused, not parsed further. */
const MAX_REQUEST_HEADERS = 64

/** Which origins a config allows, compiled once. */
interface OriginPolicy {
  any: boolean
  allowNull: boolean
  exact: ReadonlySet<string>
  wildcards: readonly Wildcard[]
  patterns: readonly RegExp[]
}

/** A config value quoted for an error message, control characters shown, never sent raw to a log. */
function quote (s: string): string {
  return "'" + s.replace(/[\x00-\x1f\x7f]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0')) + "'"
}

function compileOrigins (config: CorsConfig): OriginPolicy {
  const exact = new Set<string>()
  const wildcards: Wildcard[] = []
  let any = false
  let allowNull = false
  config.origins.forEach((o, i) => {
    const where = `/origins/${i}`
    if (o === '*') { any = true; return }
    if (o === 'null') { allowNull = true; return }
    if (o.includes('*')) {
      const w = parseWildcard(o)
      if (w === undefined) throw new Error(`${where}: ${quote(o)} is not a wildcard origin: write scheme://*.domain.tld[:port], with '*.' as the whole first label and at least two labels after it`)
      wildcards.push(w)
      return
    }
    const c = canonicalOrigin(o)
    if (c === undefined) {
      throw new Error(`${where}: ${quote(o)} is not an origin: write scheme://host[:port] with no path, query or trailing slash${o.endsWith('/') ? ` (${quote(o.replace(/\/+$/, ''))})` : ''}`)
    }
    exact.add(c)
  })
  const patterns = config.originPatterns.map((p, i) => {
    const where = `/originPatterns/${i}`
    const why = unsafePattern(p)
    if (why !== undefined) throw new Error(`${where}: ${quote(p)} ${why}`)
    try {
      return new RegExp(p)
    } catch (err) {
      throw new Error(`${where}: ${quote(p)} is not a valid regular expression: ${quote((err as Error).message)}`)
    }
  })
  if (any) {
    if (config.credentials) {
      throw new Error("/origins: '*' cannot be used with credentials: browsers refuse Access-Control-Allow-Origin: * on credentialed requests, and echoing any origin with credentials lets every site read your users' data; list the origins")
    }
    if (exact.size + wildcards.length + patterns.length > 0) throw new Error("/origins: '*' allows every origin: list it alone (with 'null' at most), without other origins or originPatterns")
  } else if (exact.size + wildcards.length + patterns.length === 0 && !allowNull) {
    throw new Error('/origins: give at least one origin (or originPatterns): cors with no allowed origin allows nothing')
  }
  return { any, allowNull, exact, wildcards, patterns }
}

function allows (policy: OriginPolicy, origin: string): boolean {
  // `null` is allowed only when listed, also under '*': it is what a sandboxed frame or a
  // file: page sends, whoever wrote it.
  if (origin === 'null') return policy.allowNull
  if (policy.any) return origin.length <= MAX_ORIGIN_LENGTH
  const o = parseOrigin(origin)
  if (o === undefined) return false
  const canonical = `${o.scheme}://${o.host}${o.port}`
  if (policy.exact.has(canonical)) return true
  for (let i = 0; i < policy.wildcards.length; i++) if (wildcardMatches(policy.wildcards[i] as Wildcard, o)) return true
  for (let i = 0; i < policy.patterns.length; i++) if ((policy.patterns[i] as RegExp).test(canonical)) return true
  return false
}

/** `Vary` with `token` added once: kept as is when it lists the token already or is `*`. */
export function addVary (current: OutgoingHttpHeaders[string], token: string): string {
  if (current === undefined || current === '') return token
  const value = Array.isArray(current) ? current.join(', ') : String(current)
  const want = token.toLowerCase()
  for (const part of value.split(',')) {
    const t = part.trim().toLowerCase()
    if (t === '*' || t === want) return value
  }
  return value === '' ? token : value + ', ' + token
}

function checkList (where: string, list: readonly string[], what: string): void {
  list.forEach((v, i) => {
    if (v === '*') throw new Error(`${where}/${i}: '*' ${what}`)
  })
}

export function createCors (config: CorsConfig): PluginHooks {
  const policy = compileOrigins(config)
  checkList('/methods', config.methods, 'is not supported: list the methods')
  checkList('/headers', config.headers, 'is not supported: list the headers, or set mirrorRequestHeaders')
  if (config.mirrorRequestHeaders && config.headers.length > 0) throw new Error('/headers: give headers or mirrorRequestHeaders, not both')
  if (config.credentials) checkList('/exposeHeaders', config.exposeHeaders, 'means the header named * with credentials, not every header: list the headers')

  const star = policy.any && !config.credentials
  const methods = new Set(config.methods)
  const allowedHeaders = new Set(config.headers.map((h) => h.toLowerCase()))
  const methodsValue = config.methods.join(', ')
  const headersValue = config.headers.join(', ')
  const exposeValue = config.exposeHeaders.join(', ')
  const maxAge = String(config.maxAge)
  const okStatus = config.preflightStatus
  const deniedStatus = config.deniedPreflightStatus ?? okStatus
  for (const [name, v] of [['methods', methodsValue], ['headers', headersValue], ['exposeHeaders', exposeValue]]) {
    if (!isSafeHeaderValue(v as string)) throw new Error(`/${name as string}: not a valid header value`)
  }

  // The Access-Control-* names this instance sends on an allowed actual request; any other
  // the upstream sends is removed (the gateway's policy wins, see README).
  const actualNames = new Set(['access-control-allow-origin'])
  if (config.credentials) actualNames.add('access-control-allow-credentials')
  if (exposeValue !== '') actualNames.add('access-control-expose-headers')
  const NONE: ReadonlySet<string> = new Set()
  const preflightVary = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'

  const deny = (ctx: RequestContext, code: string, detail: string): void => {
    const headers = { vary: preflightVary }
    if (deniedStatus === 403) ctx.reply(403, { code, detail, headers })
    else ctx.reply(deniedStatus, { code, body: '', headers })
  }

  const preflight = (ctx: RequestContext, origin: string | undefined): void => {
    if (origin === undefined) return deny(ctx, REASONS.origin, 'this origin may not make cross-origin requests here')
    const rm = ctx.headerValues('access-control-request-method')
    const method = rm.length === 1 ? (rm[0] as string).trim() : ''
    if (!methods.has(method)) return deny(ctx, REASONS.method, `the method is not allowed; allowed: ${methodsValue}`)

    let requested: string[] = []
    const rh = ctx.headerValues('access-control-request-headers')
    if (rh.length > 0) {
      const raw = rh.join(',')
      if (raw.length > 8192) return deny(ctx, REASONS.headers, 'too many request headers asked for')
      for (const part of raw.split(',', MAX_REQUEST_HEADERS + 1)) {
        const h = part.trim().toLowerCase()
        if (h !== '') requested.push(h)
      }
      if (requested.length > MAX_REQUEST_HEADERS) return deny(ctx, REASONS.headers, 'too many request headers asked for')
      for (const h of requested) {
        if (!HEADER_NAME.test(h) || (!config.mirrorRequestHeaders && !allowedHeaders.has(h))) {
          return deny(ctx, REASONS.headers, `a requested header is not allowed; allowed: ${headersValue === '' ? 'none beyond the CORS-safelisted ones' : headersValue}`)
        }
      }
      requested = [...new Set(requested)]
    }

    const headers: Record<string, string> = {
      'access-control-allow-origin': star ? '*' : origin,
      'access-control-allow-methods': methodsValue,
      'access-control-max-age': maxAge,
      vary: preflightVary
    }
    const allowHeaders = config.mirrorRequestHeaders ? requested.join(', ') : headersValue
    if (allowHeaders !== '') headers['access-control-allow-headers'] = allowHeaders
    if (config.credentials) headers['access-control-allow-credentials'] = 'true'
    ctx.reply(okStatus, { body: '', headers })
  }

  return {
    onRequest (ctx: RequestContext) {
      // Every answer varies by Origin: a reply (a 401 from an authn plugin, a 404) gets this
      // one; a proxied response keeps the upstream's Vary, and onResponse adds Origin to it.
      ctx.setResponseHeader('vary', 'Origin', 'default')
      if (ctx.headers.origin === undefined) return
      const values = ctx.headerValues('origin')
      const origin = values.length === 1 && allows(policy, values[0] as string) ? values[0] as string : undefined
      if (ctx.method === 'OPTIONS' && ctx.headers['access-control-request-method'] !== undefined) return preflight(ctx, origin)
      if (origin === undefined) return
      ctx.setResponseHeader('access-control-allow-origin', star ? '*' : origin)
      if (config.credentials) ctx.setResponseHeader('access-control-allow-credentials', 'true')
      if (exposeValue !== '') ctx.setResponseHeader('access-control-expose-headers', exposeValue)
      ctx.state.cors = actualNames
    },

    onResponse (ctx: RequestContext, res: ResponseInfo) {
      const mine = (ctx.state.cors as ReadonlySet<string> | undefined) ?? NONE
      const headers = res.headers
      for (const k in headers) {
        if (k.length > 15 && (k.charCodeAt(0) | 32) === 97 /* a */) {
          const lower = k.toLowerCase()
          if (lower.startsWith('access-control-') && !mine.has(lower)) delete headers[k]
        }
      }
      headers.vary = addVary(headers.vary, 'Origin')
    }
  }
}

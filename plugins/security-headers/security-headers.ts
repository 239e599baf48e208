import { isSafeHeaderValue } from '../../src/headers.js'
import { CidrList } from '../../src/ip/cidr-list.js'
import type { PluginApi, PluginHooks, RequestContext, ResponseInfo } from '../../src/types.js'
import type { ManagedHeader, SecurityHeadersConfig } from './schema.js'

type Header = readonly [name: ManagedHeader, value: string]

// Removing these would change what the body means or how it is framed.
const NOT_REMOVABLE = new Set(['content-length', 'transfer-encoding', 'content-encoding', 'content-range', 'content-type'])

// A CSP source expression (CSP3 §2.3.1), loosely: a keyword, a scheme, or a host source.
const SOURCE = /^(?:'(?:self|none)'|\*|[a-z][a-z0-9+.-]*:|(?:[a-z][a-z0-9+.-]*:\/\/)?(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*(?::(?:[0-9]{1,5}|\*))?(?:\/[^\s;,']*)?)$/i
const DIRECTIVE = /^[a-z][a-z0-9-]*$/i

function checkValue (where: string, value: string): string {
  if (!isSafeHeaderValue(value)) throw new Error(`${where}: the value has a character a header cannot carry (CR, LF, NUL or another control character)`)
  return value
}

/** The directive names of a policy, lower-case; throws on an empty or malformed one. */
function directives (where: string, policy: string): string[] {
  const names: string[] = []
  for (const part of policy.split(';')) {
    const d = part.trim()
    if (d === '') continue
    const name = (d.split(/\s+/, 1)[0] as string).toLowerCase()
    if (!DIRECTIVE.test(name)) throw new Error(`${where}: '${d.slice(0, 40)}' does not start with a directive name`)
    if (names.includes(name)) throw new Error(`${where}: the directive ${name} is given twice (browsers use the first and ignore the rest)`)
    names.push(name)
  }
  if (names.length === 0) throw new Error(`${where}: the policy has no directive`)
  return names
}

function cspValue (config: SecurityHeadersConfig): string | undefined {
  const fa = config.frameAncestors
  let faValue: string | undefined
  if (fa !== undefined) {
    fa.forEach((s, i) => {
      if (!SOURCE.test(s)) throw new Error(`/frameAncestors/${i}: '${s}' is not a CSP source ('none', 'self', a scheme such as https:, or a host such as https://*.example.com)`)
    })
    if (fa.includes("'none'") && fa.length > 1) throw new Error("/frameAncestors: 'none' must be the only source")
    faValue = 'frame-ancestors ' + fa.join(' ')
  }
  const csp = config.contentSecurityPolicy
  if (csp === undefined) return faValue
  checkValue('/contentSecurityPolicy', csp)
  const names = directives('/contentSecurityPolicy', csp)
  if (faValue === undefined) return csp.trim()
  if (names.includes('frame-ancestors')) throw new Error('/frameAncestors: contentSecurityPolicy has a frame-ancestors directive already; give it in one place')
  return csp.trim().replace(/;\s*$/, '') + '; ' + faValue
}

function hstsValue (h: SecurityHeadersConfig['hsts']): string | undefined {
  if (!h.enabled) return undefined
  if (h.preload && (!h.includeSubDomains || h.maxAge < 31536000)) {
    throw new Error('/hsts/preload: the preload list requires includeSubDomains and a maxAge of at least 31536000 (one year)')
  }
  return `max-age=${h.maxAge}${h.includeSubDomains ? '; includeSubDomains' : ''}${h.preload ? '; preload' : ''}`
}

/**
 * Whether the client reached us over TLS: a connection to a TLS listener is (`ctx.tls`);
 * behind a TLS-terminating proxy listed in `clientIp.trustedProxies` (the route's, else the
 * global one), the proxy's `X-Forwarded-Proto` says. Only the last value is read, the one
 * the trusted peer itself added or set: anything before it came from further away, possibly
 * from the client.
 */
function tlsDetector (api: PluginApi): (ctx: RequestContext) => boolean {
  const gw = api.gateway
  const global = new CidrList(gw.clientIp.trustedProxies)
  const byRoute = new Map<string, CidrList>()
  const globalKey = JSON.stringify(gw.clientIp.trustedProxies)
  for (const r of gw.routes) {
    const list = r.clientIp?.trustedProxies
    if (list !== undefined && JSON.stringify(list) !== globalKey) byRoute.set(r.name, new CidrList(list))
  }
  if (global.size === 0 && byRoute.size === 0) return (ctx) => ctx.tls !== undefined
  return (ctx) => {
    if (ctx.tls !== undefined) return true
    const trusted = byRoute.get(ctx.route.name) ?? global
    if (trusted.size === 0 || !trusted.contains(ctx.client.peerIp)) return false
    const v = ctx.headerValues('x-forwarded-proto')
    if (v.length === 0) return false
    const last = v[v.length - 1] as string
    return last.slice(last.lastIndexOf(',') + 1).trim().toLowerCase() === 'https'
  }
}

export function createSecurityHeaders (config: SecurityHeadersConfig, api: PluginApi): PluginHooks {
  const hsts = hstsValue(config.hsts)
  const values: Header[] = []
  if (config.contentTypeOptions) values.push(['x-content-type-options', 'nosniff'])
  if (config.frameOptions !== false) values.push(['x-frame-options', config.frameOptions])
  if (config.referrerPolicy !== false) values.push(['referrer-policy', config.referrerPolicy])
  const csp = cspValue(config)
  if (csp !== undefined) values.push(['content-security-policy', csp])
  if (config.contentSecurityPolicyReportOnly !== undefined) {
    const ro = checkValue('/contentSecurityPolicyReportOnly', config.contentSecurityPolicyReportOnly)
    directives('/contentSecurityPolicyReportOnly', ro)
    values.push(['content-security-policy-report-only', ro.trim()])
  }
  if (config.permissionsPolicy !== undefined) values.push(['permissions-policy', checkValue('/permissionsPolicy', config.permissionsPolicy).trim()])

  const sent = new Set<string>(values.map(([n]) => n))
  if (hsts !== undefined) sent.add('strict-transport-security')
  const remove = config.removeHeaders.map((h, i) => {
    const name = h.toLowerCase()
    if (NOT_REMOVABLE.has(name)) throw new Error(`/removeHeaders/${i}: ${name} says how the body is framed or what it is; it cannot be removed`)
    if (sent.has(name)) throw new Error(`/removeHeaders/${i}: ${name} is a header this plugin sets; turn it off with its own option instead`)
    return name
  })
  const removeSet = new Set(remove)

  const prefer = new Set<string>(config.preferUpstream)
  const override = values.filter(([n]) => !prefer.has(n))
  const defaults = values.filter(([n]) => prefer.has(n))
  const hstsPreferred = prefer.has('strict-transport-security')
  const isTls = config.hsts.when === 'always' ? () => true : tlsDetector(api)

  return {
    onRequest (ctx: RequestContext) {
      // Every response gets them, replies (401s, 404s) included. The preferUpstream ones
      // are 'default's: an upstream's own value stays, and replies get ours.
      for (let i = 0; i < override.length; i++) ctx.setResponseHeader(...(override[i] as Header))
      for (let i = 0; i < defaults.length; i++) ctx.setResponseHeader(...(defaults[i] as Header), 'default')
      if (hsts !== undefined && isTls(ctx)) ctx.setResponseHeader('strict-transport-security', hsts, hstsPreferred ? 'default' : 'set')
    },

    onResponse (_ctx: RequestContext, res: ResponseInfo) {
      const headers = res.headers
      if (removeSet.size > 0) {
        for (const k in headers) if (removeSet.has(k) || removeSet.has(k.toLowerCase())) delete headers[k]
      }
    }
  }
}

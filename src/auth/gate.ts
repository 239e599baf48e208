import type { Context } from '../context.js'
import { codes } from '../errors.js'
import { isSafeHeaderValue } from '../headers.js'
import type { ReportedFailure } from '../context.js'
import type { Consumer } from '../types.js'
import type { KnownConsumer } from './registry.js'

/** Where the identity goes upstream (config `identity.headers`). */
export interface IdentityHeaders { id: string, groups: string, scope: string, anonymous: string }

/** The names of the identity headers, lower-cased: removed from every client request. */
export function identityHeaderNames (h: IdentityHeaders): string[] {
  return [h.id, h.groups, h.scope, h.anonymous].map((n) => n.toLowerCase())
}

function identityIsSafe (c: Consumer): boolean {
  if (!isSafeHeaderValue(c.id)) return false
  for (const g of c.groups) if (!isSafeHeaderValue(g) || g.includes(',')) return false
  for (const s of c.scopes) if (!isSafeHeaderValue(s) || s.includes(' ')) return false
  return true
}

/**
 * The step after a route's authn plugins (generation.ts puts it there): when one of them
 * authenticated the request, its identity goes upstream in the identity headers; when none
 * did, the route's anonymous consumer is used if the request carried no credential at all,
 * and otherwise the request is refused with the first failure that concerned credentials
 * it did send (so a wrong token is never silently downgraded to anonymous).
 */
export function createAuthGate (anonymous: KnownConsumer | undefined, headers: IdentityHeaders): (ctx: Context) => void {
  return function authGate (ctx) {
    const failures = ctx.authFailures
    if (ctx.consumer === undefined) {
      const presented = failures?.find((f) => f.presented)
      if (presented === undefined && anonymous !== undefined) {
        ctx.setAnonymous(anonymous)
      } else {
        refuse(ctx, presented ?? failures?.[0], failures)
        return
      }
    }
    const c = ctx.consumer as Consumer
    // Ids and groups of configured consumers are checked at load; a token's claims are not
    // ours, so they are checked here: a CR/LF in a claim never reaches the upstream.
    if (!identityIsSafe(c)) {
      ctx.current = 'gateway'
      ctx.reply(401, { code: codes.GW_UNAUTHENTICATED.code, detail: 'the credential names an identity that cannot be forwarded (characters not allowed in a header)' })
      return
    }
    ctx.setUpstreamHeader(headers.id, c.id)
    if (c.groups.length > 0) ctx.setUpstreamHeader(headers.groups, c.groups.join(', '))
    if (c.scopes.length > 0) ctx.setUpstreamHeader(headers.scope, c.scopes.join(' '))
    if (c.anonymous) ctx.setUpstreamHeader(headers.anonymous, 'true')
  }
}

function refuse (ctx: Context, failure: ReportedFailure | undefined, all: readonly ReportedFailure[] | undefined): void {
  const status = failure?.status ?? 401
  const challenges = status === 401 ? (all ?? []).map((f) => f.challenge).filter((c): c is string => c !== undefined) : []
  ctx.current = 'gateway'
  ctx.reply(status, {
    code: failure?.code ?? codes.GW_UNAUTHENTICATED.code,
    detail: failure?.detail ?? 'credentials are required',
    headers: challenges.length > 0 ? { ...failure?.headers, 'www-authenticate': challenges } : failure?.headers
  })
  // The access log names the plugin whose failure was sent, not the gate.
  if (failure !== undefined) ctx.outcome.repliedBy = failure.plugin
}

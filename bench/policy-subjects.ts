// Scenario 3, full-policy: the policy set of a real API route on one tollgate route (1
// worker): ip-filter with an allow list of 100,000 CIDRs, jwt-auth (HS256, a valid token
// on every request), rate-limit by client IP (checked, never hit), request-validator (a
// 1 KiB JSON order against a realistic schema) and access-log to a file. Every request is
// the order POSTed with the token. Controls: no token -> 401, an invalid order -> 400, a
// client outside the allow list -> 403.
import { allowList, CONTROL_ADDRESS } from './lib/cidrs.js'
import { hs256Token, JWT_AUDIENCE, JWT_ISSUER } from './lib/jwt.js'
import type { Subject, SubjectGroup } from './lib/subject.js'
import { tollgateSubject } from './lib/tollgate.js'
import { invalidOrder, ORDER_SCHEMA, orderBody } from './validate-subjects.js'

/**
 * Slot for metrics, once the /metrics work lands: the plugin entry (or entries) to append to
 * the route, and any top-level config it needs (e.g. { metrics: { ... } }). Empty now.
 */
const METRICS_PLUGINS: readonly unknown[] = []
const METRICS_TOP_LEVEL: Readonly<Record<string, unknown>> = {}

export const fullPolicySubject: Subject = {
  name: 'full-policy',
  description: 'tollgate, 1 worker: ip-filter (100,000 CIDRs) + jwt-auth HS256 + rate-limit + request-validator (1 KiB JSON) + access-log'
    + (METRICS_PLUGINS.length > 0 ? ' + metrics' : ''),
  default: true,
  async start (ctx) {
    const { secret, token } = await hs256Token()
    const plugins = [
      { name: 'ip-filter', config: { allowFile: 'allow.txt' } },
      { name: 'jwt-auth', config: { issuers: [{ issuer: JWT_ISSUER, algorithms: ['HS256'], audience: JWT_AUDIENCE, keys: [{ secret }] }] } },
      { name: 'rate-limit', config: { limits: [{ limit: 1_000_000, window: '1s' }] } },
      { name: 'request-validator', config: { body: ORDER_SCHEMA } },
      { name: 'access-log', config: { destination: 'access.log' } },
      ...METRICS_PLUGINS
    ]
    const authorization = `Bearer ${token}`
    return await tollgateSubject(ctx, 'full-policy', plugins, {
      extra: { ...METRICS_TOP_LEVEL },
      files: { 'allow.txt': allowList() },
      startTimeoutMs: 60_000,
      request: { method: 'POST', body: orderBody(), headers: { authorization, 'content-type': 'application/json' } },
      expectHeaders: ['ratelimit-policy'],
      controls: [
        { what: 'no token', status: 401, method: 'POST', body: orderBody(), headers: { 'content-type': 'application/json' } },
        { ...invalidOrder, headers: { ...invalidOrder.headers, authorization } },
        { what: `a client at ${CONTROL_ADDRESS}, not on the list`, status: 403, localAddress: CONTROL_ADDRESS, method: 'POST', body: orderBody(), headers: { authorization, 'content-type': 'application/json' } }
      ]
    })
  }
}

export const policyGroup: SubjectGroup = { name: 'policy', description: 'full-policy: the policy set of a real API route', subjects: [fullPolicySubject] }

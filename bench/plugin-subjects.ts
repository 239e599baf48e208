// Scenario 2: each built-in plugin alone on tollgate's only route (1 worker), configured so
// that it does its real work on every request, with a check that it did: a control
// request it must refuse, or the response header it must add. The authn plugins are in
// auth-subjects.ts and the request-validator in validate-subjects.ts.
import { allowList, CONTROL_ADDRESS } from './lib/cidrs.js'
import type { Subject, SubjectGroup } from './lib/subject.js'
import { tollgateSubject } from './lib/tollgate.js'

const ORIGIN = 'https://app.bench.test'

const pluginSubjects: readonly Subject[] = [
  {
    name: 'tollgate-ip-filter',
    description: 'tollgate, 1 worker: ip-filter, an allow list of 100,000 CIDRs that admits the client',
    start: async (ctx) => await tollgateSubject(ctx, 'tollgate-ip-filter', [{ name: 'ip-filter', config: { allowFile: 'allow.txt' } }], {
      files: { 'allow.txt': allowList() },
      startTimeoutMs: 60_000,
      controls: [{ what: `a client at ${CONTROL_ADDRESS}, not on the list`, status: 403, localAddress: CONTROL_ADDRESS }]
    })
  },
  {
    name: 'tollgate-rate-limit',
    description: 'tollgate, 1 worker: rate-limit by client IP, 1,000,000 per second (checked every request, never hit)',
    start: async (ctx) => await tollgateSubject(ctx, 'tollgate-rate-limit', [{ name: 'rate-limit', config: { limits: [{ limit: 1_000_000, window: '1s' }] } }], {
      expectHeaders: ['ratelimit-policy', 'ratelimit']
    })
  },
  {
    name: 'tollgate-cors',
    description: 'tollgate, 1 worker: cors, every request from an allowed Origin',
    start: async (ctx) => await tollgateSubject(ctx, 'tollgate-cors', [{ name: 'cors', config: { origins: [ORIGIN], credentials: true, deniedPreflightStatus: 403 } }], {
      request: { headers: { origin: ORIGIN } },
      expectHeaders: ['access-control-allow-origin'],
      controls: [{ what: 'a preflight from another origin', status: 403, method: 'OPTIONS', headers: { origin: 'https://evil.bench.test', 'access-control-request-method': 'GET' } }]
    })
  },
  {
    name: 'tollgate-security-headers',
    description: 'tollgate, 1 worker: security-headers with a CSP and HSTS always on',
    start: async (ctx) => await tollgateSubject(ctx, 'tollgate-security-headers', [{ name: 'security-headers', config: { hsts: { when: 'always' }, contentSecurityPolicy: "default-src 'self'" } }], {
      expectHeaders: ['strict-transport-security', 'x-content-type-options', 'content-security-policy']
    })
  },
  {
    name: 'tollgate-request-id',
    description: 'tollgate, 1 worker: request-id, a new id per request, echoed',
    start: async (ctx) => await tollgateSubject(ctx, 'tollgate-request-id', [{ name: 'request-id', config: { trustIncoming: false } }], {
      expectHeaders: ['x-request-id']
    })
  },
  {
    name: 'tollgate-access-log',
    description: 'tollgate, 1 worker: access-log, one JSON line per request to a file',
    start: async (ctx) => await tollgateSubject(ctx, 'tollgate-access-log', [{ name: 'access-log', config: { destination: 'access.log', headers: ['user-agent'] } }])
  }
]

export const pluginGroup: SubjectGroup = { name: 'plugins', description: 'each built-in plugin alone, doing its real work', subjects: pluginSubjects }

const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"

/** The headers this plugin sets, by lower-case name. */
export const MANAGED = [
  'strict-transport-security',
  'x-content-type-options',
  'x-frame-options',
  'referrer-policy',
  'content-security-policy',
  'content-security-policy-report-only',
  'permissions-policy'
] as const
export type ManagedHeader = typeof MANAGED[number]

export const REFERRER_POLICIES = [
  'no-referrer', 'no-referrer-when-downgrade', 'origin', 'origin-when-cross-origin',
  'same-origin', 'strict-origin', 'strict-origin-when-cross-origin', 'unsafe-url'
] as const

const policyText = (description: string) => ({ type: 'string', minLength: 1, maxLength: 8192, description }) as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    hsts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', default: true },
        maxAge: { type: 'integer', minimum: 0, maximum: 63072000, default: 31536000, description: 'Seconds (default one year; 0 tells browsers to forget the host)' },
        includeSubDomains: { type: 'boolean', default: false },
        preload: { type: 'boolean', default: false, description: 'Needs includeSubDomains and maxAge >= 31536000' },
        when: { type: 'string', enum: ['tls', 'always'], default: 'tls', description: "'tls': only when the client's connection is HTTPS; 'always': on every response" }
      },
      default: {}
    },
    contentTypeOptions: { type: 'boolean', default: true, description: 'X-Content-Type-Options: nosniff' },
    frameOptions: { type: ['string', 'boolean'], enum: ['DENY', 'SAMEORIGIN', false], default: 'DENY', description: 'X-Frame-Options: DENY, SAMEORIGIN, or false for none' },
    frameAncestors: {
      type: 'array',
      minItems: 1,
      maxItems: 64,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, maxLength: 300 },
      description: "CSP frame-ancestors sources (\"'none'\", \"'self'\", https://a.example.com); added to the Content-Security-Policy"
    },
    referrerPolicy: { type: ['string', 'boolean'], enum: [...REFERRER_POLICIES, false], default: 'strict-origin-when-cross-origin', description: 'Referrer-Policy, or false for none' },
    contentSecurityPolicy: policyText('A whole Content-Security-Policy'),
    contentSecurityPolicyReportOnly: policyText('A Content-Security-Policy-Report-Only policy, to try a policy out'),
    permissionsPolicy: policyText('A Permissions-Policy, e.g. camera=(), microphone=(), geolocation=()'),
    preferUpstream: {
      type: 'array',
      maxItems: MANAGED.length,
      uniqueItems: true,
      items: { type: 'string', enum: [...MANAGED] },
      default: ['content-security-policy', 'content-security-policy-report-only'],
      description: "Headers (lower-case) where a value the upstream sent is kept; for the others the gateway's replaces it"
    },
    removeHeaders: {
      type: 'array',
      maxItems: 64,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, maxLength: 128, pattern: TOKEN },
      default: ['server', 'x-powered-by'],
      description: 'Response headers removed from what the upstream sends'
    }
  }
} as const

export interface SecurityHeadersConfig {
  hsts: { enabled: boolean, maxAge: number, includeSubDomains: boolean, preload: boolean, when: 'tls' | 'always' }
  contentTypeOptions: boolean
  frameOptions: 'DENY' | 'SAMEORIGIN' | false
  frameAncestors?: string[]
  referrerPolicy: typeof REFERRER_POLICIES[number] | false
  contentSecurityPolicy?: string
  contentSecurityPolicyReportOnly?: string
  permissionsPolicy?: string
  preferUpstream: ManagedHeader[]
  removeHeaders: string[]
}

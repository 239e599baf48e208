/**
 * The `admin` block of the gateway config: where the admin API listens, who may use it, and
 * where kept config versions live. Added to the gateway schema under the top-level key `admin`.
 */

/** Actors the gateway uses itself; a token named like one would make the audit log lie. */
export const RESERVED_ACTORS = ['local', 'file', 'signal', 'startup', 'cli', 'metrics'] as const

const token = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'token'],
  properties: {
    name: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]*$',
      not: { enum: RESERVED_ACTORS },
      description: 'Who holds the token: recorded as the actor of every change made with it'
    },
    token: {
      type: 'string',
      minLength: 16,
      maxLength: 4096,
      // RFC 6750 b64token: what fits in `Authorization: Bearer <token>` without quoting.
      pattern: '^[A-Za-z0-9._~+/-]+=*$',
      description: 'The bearer secret (at least 16 characters); never logged or returned by the API'
    }
  }
} as const

export const adminSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean', default: true },
    host: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'Listen address; anything but loopback needs tokens' },
    port: { type: 'integer', minimum: 0, maximum: 65535, default: 9901, description: '0 picks a free port' },
    tokens: { type: 'array', items: token, default: [], description: 'Bearer tokens; none: loopback only, every caller is the actor `local`' },
    stateDir: { type: 'string', minLength: 1, default: './.tollgate', description: 'Kept config versions and the audit log (relative to the config file)' },
    keepVersions: { type: 'integer', minimum: 1, maximum: 10000, default: 50, description: 'Config versions kept for rollback' },
    responseGenerationHeader: { type: 'boolean', default: false, description: 'Debug: send `x-tollgate-generation` on every response' },
    metricsWithoutToken: { type: 'boolean', default: false, description: 'Serve GET /metrics without the bearer token (for a scraper that cannot send one); the rest of the API still needs it' }
  },
  default: {}
} as const

export interface AdminToken { name: string, token: string }

/** The `admin` block after validation: defaults filled in. */
export interface AdminConfig {
  enabled: boolean
  host: string
  port: number
  tokens: AdminToken[]
  stateDir: string
  keepVersions: number
  responseGenerationHeader: boolean
  metricsWithoutToken: boolean
}

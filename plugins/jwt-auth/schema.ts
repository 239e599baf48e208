import { duration } from '../../src/schema-parts.js'

/** Signature algorithms an issuer may be pinned to. `none` is not one of them, ever. */
export const ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
  'HS256', 'HS384', 'HS512'
] as const
export type Algorithm = typeof ALGORITHMS[number]

/** Claim names travel in problem details and challenges: RFC 6750 NQCHAR without spaces. */
const claimName = { type: 'string', pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,128}$' } as const
const headerName = { type: 'string', pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$" } as const

const key = {
  type: 'object',
  additionalProperties: false,
  properties: {
    kid: { type: 'string', minLength: 1, maxLength: 256, description: "Tokens whose kid is this use this key (default: the JWK's kid)" },
    pem: { type: 'string', minLength: 1, description: 'A PEM public key (SPKI or PKCS#1) or X.509 certificate' },
    pemFile: { type: 'string', minLength: 1, description: 'The same, from a file (relative to the config file)' },
    jwk: { type: 'object', description: 'A public JWK (RSA, EC, OKP), or an oct JWK holding a shared secret' },
    secret: { type: 'string', minLength: 1, description: 'An HS* shared secret, at least as many bytes as the hash (32 for HS256)' },
    secretFile: { type: 'string', minLength: 1, description: 'The same, from a file (one trailing newline is dropped)' },
    encoding: { type: 'string', enum: ['utf8', 'base64', 'base64url'], description: 'How secret/secretFile is written (default utf8)' }
  },
  description: 'Exactly one of pem, pemFile, jwk, secret, secretFile'
} as const

const jwks = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', minLength: 1, description: 'https:// URL of the JSON Web Key Set (http:// only for loopback hosts)' },
    timeoutDuration: { ...duration, default: 5000, description: 'A fetch that takes longer fails' },
    cooldownDuration: { ...duration, default: 30000, description: 'A token with an unknown kid refetches at most once per this, per worker' },
    cacheMaxAge: { ...duration, default: 600000, description: 'Keys are used for this long after a fetch; then the set must be fetched again' }
  }
} as const

const issuer = {
  type: 'object',
  additionalProperties: false,
  required: ['issuer', 'algorithms'],
  properties: {
    issuer: { type: 'string', minLength: 1, description: "The token's iss, exactly" },
    algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: ALGORITHMS }, description: 'The only algorithms accepted from this issuer' },
    keys: { type: 'array', minItems: 1, maxItems: 64, items: key, description: 'Static keys (give keys or jwks, not both)' },
    jwks,
    audience: {
      anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }],
      description: 'The token must name one of these in aud'
    },
    typ: { type: 'string', minLength: 1, description: 'Required typ header, e.g. at+jwt (RFC 9068)' },
    maxTokenAge: { ...duration, description: 'Tokens whose iat is older than this are refused (iat is then required)' },
    requiredClaims: { type: 'array', uniqueItems: true, items: claimName, default: [], description: 'Claims that must be present' }
  }
} as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['issuers'],
  properties: {
    issuers: { type: 'array', minItems: 1, maxItems: 64, items: issuer, description: "Trusted issuers; the token's iss picks one" },
    realm: { type: 'string', pattern: '^[\\x20\\x21\\x23-\\x5B\\x5D-\\x7E]{1,64}$', default: 'tollgate', description: 'realm of the WWW-Authenticate challenge' },
    token: {
      type: 'object',
      additionalProperties: false,
      properties: {
        header: { type: 'boolean', default: true, description: 'Read Authorization: Bearer <token>' },
        cookie: { type: 'string', pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$", description: 'Also read the token from this cookie' },
        query: { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,64}$', description: 'Also read the token from this query parameter (e.g. access_token)' },
        maxBytes: { type: 'integer', minimum: 256, maximum: 65536, default: 8192, description: 'Longer tokens are refused before any decoding' }
      },
      default: {}
    },
    hideCredentials: { type: 'boolean', default: false, description: 'Remove the token (Authorization: Bearer, the cookie, the query parameter) before proxying' },
    clockTolerance: { ...duration, default: 30000, description: 'Leeway for exp, nbf and iat' },
    requireExp: { type: 'boolean', default: true, description: 'Refuse tokens without exp' },
    consumer: {
      type: 'object',
      additionalProperties: false,
      properties: {
        claim: { ...claimName, default: 'sub', description: 'The claim matched against consumers[].credentials.subjects' },
        required: { type: 'boolean', default: false, description: 'Refuse tokens that map to no configured consumer' }
      },
      default: {}
    },
    forwardClaims: {
      type: 'object',
      maxProperties: 32,
      propertyNames: claimName,
      additionalProperties: headerName,
      default: {},
      description: 'Claim -> upstream header name. The header is always removed from the client request first'
    },
    cache: {
      type: 'object',
      additionalProperties: false,
      properties: {
        entries: { type: 'integer', minimum: 0, maximum: 1000000, default: 10000, description: 'Verified tokens kept per worker (0: no cache)' },
        maxAge: { ...duration, default: 60000, description: "How long a verified token is trusted without checking it again (never past its exp, nor a JWKS's cacheMaxAge)" }
      },
      default: {}
    }
  }
} as const

export interface KeyConfig {
  kid?: string
  pem?: string
  pemFile?: string
  jwk?: Record<string, unknown>
  secret?: string
  secretFile?: string
  encoding?: 'utf8' | 'base64' | 'base64url'
}

export interface JwksConfig { url: string, timeoutDuration: number | string, cooldownDuration: number | string, cacheMaxAge: number | string }

export interface IssuerConfig {
  issuer: string
  algorithms: Algorithm[]
  keys?: KeyConfig[]
  jwks?: JwksConfig
  audience?: string | string[]
  typ?: string
  maxTokenAge?: number | string
  requiredClaims: string[]
}

export interface JwtAuthConfig {
  issuers: IssuerConfig[]
  realm: string
  token: { header: boolean, cookie?: string, query?: string, maxBytes: number }
  hideCredentials: boolean
  clockTolerance: number | string
  requireExp: boolean
  consumer: { claim: string, required: boolean }
  forwardClaims: Record<string, string>
  cache: { entries: number, maxAge: number | string }
}

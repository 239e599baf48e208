import { duration, positiveDuration } from '../../src/schema-parts.js'

/** Quoted-string content of a challenge parameter: no `"` or `\`, no controls. */
const realm = { type: 'string', pattern: '^[\\x20\\x21\\x23-\\x5B\\x5D-\\x7E]{1,64}$' } as const

const stringOrList = {
  anyOf: [
    { type: 'string', minLength: 1 },
    { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } }
  ]
} as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['endpoint', 'clientId'],
  properties: {
    endpoint: { type: 'string', format: 'http-url', description: "The authorization server's introspection endpoint (RFC 7662), http(s)://host[:port]/path" },
    clientId: { type: 'string', minLength: 1, maxLength: 256, description: "The gateway's client id at the authorization server" },
    clientSecret: { type: 'string', minLength: 1, maxLength: 1024, description: "The gateway's client secret (or clientSecretFile)" },
    clientSecretFile: { type: 'string', minLength: 1, description: 'A file holding the client secret (relative to the config file; trailing newline ignored)' },
    authMethod: { type: 'string', enum: ['client_secret_basic', 'client_secret_post'], default: 'client_secret_basic', description: 'How the client credentials are sent: HTTP Basic, or in the form body' },
    timeout: { ...positiveDuration, default: '2s', description: 'Whole introspection call (connect, headers, body); on expiry the request fails closed per onError' },
    onError: { type: 'string', enum: ['unavailable', 'unauthorized'], default: 'unavailable', description: 'When the endpoint fails or is slow: 503 (unavailable) or 401 (unauthorized). Never admitted' },
    cacheTtl: { ...duration, default: '60s', description: 'How long an active result is reused, capped by the token\'s exp. 0: no caching' },
    negativeCacheTtl: { ...duration, default: '5s', description: 'How long an inactive (or expired) result is reused. 0: not cached' },
    cacheSize: { type: 'integer', minimum: 1, maximum: 1000000, default: 10000, description: 'Active results kept per worker thread, and as many inactive ones apart from them (oldest dropped first)' },
    audience: { ...stringOrList, description: "The response's aud must contain one of these" },
    issuer: { type: 'string', minLength: 1, description: "The response's iss must equal this; also the issuer consumers are looked up under" },
    consumer: {
      type: 'object',
      additionalProperties: false,
      properties: {
        claim: { type: 'string', enum: ['sub', 'client_id', 'username'], default: 'sub', description: 'The response member that names the caller' },
        issuer: { type: 'string', minLength: 1, description: "The issuer consumers' subjects are listed under. Default: issuer, else the response's iss, else the endpoint's origin" },
        required: { type: 'boolean', default: false, description: 'Refuse tokens whose caller is not a configured consumer (401 UNKNOWN_CONSUMER)' }
      },
      default: {}
    },
    realm: { ...realm, default: 'tollgate', description: 'The realm of the WWW-Authenticate challenge' },
    hideCredentials: { type: 'boolean', default: false, description: 'Remove the Authorization header before the request goes upstream' }
  }
} as const

export interface OAuth2IntrospectionConfig {
  endpoint: string
  clientId: string
  clientSecret?: string
  clientSecretFile?: string
  authMethod: 'client_secret_basic' | 'client_secret_post'
  timeout: number | string
  onError: 'unavailable' | 'unauthorized'
  cacheTtl: number | string
  negativeCacheTtl: number | string
  cacheSize: number
  audience?: string | string[]
  issuer?: string
  consumer: { claim: 'sub' | 'client_id' | 'username', issuer?: string, required: boolean }
  realm: string
  hideCredentials: boolean
}

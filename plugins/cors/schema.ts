// RFC 9110 token: what a method or a header name may be.
const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"

const names = (description: string) => ({
  type: 'array',
  maxItems: 100,
  uniqueItems: true,
  items: { type: 'string', minLength: 1, maxLength: 128, pattern: TOKEN },
  default: [],
  description
}) as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    origins: {
      type: 'array',
      maxItems: 1000,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, maxLength: 300 },
      default: [],
      description: "Allowed origins: 'https://app.example.com', 'https://*.example.com' (one or more labels under it, same scheme and port), 'null', or '*' alone"
    },
    originPatterns: {
      type: 'array',
      maxItems: 64,
      uniqueItems: true,
      items: { type: 'string', minLength: 2, maxLength: 1000 },
      default: [],
      description: 'Regular expressions anchored with ^ and $, matched against the lower-case origin'
    },
    methods: {
      type: 'array',
      minItems: 1,
      maxItems: 32,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, maxLength: 32, pattern: TOKEN },
      default: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      description: 'Methods a preflight may ask for (compared case-sensitively, as browsers do)'
    },
    headers: names('Request headers a preflight may ask for (case-insensitive)'),
    mirrorRequestHeaders: { type: 'boolean', default: false, description: "Allow whatever Access-Control-Request-Headers asks for, instead of the 'headers' list" },
    exposeHeaders: names('Response headers the page may read (Access-Control-Expose-Headers)'),
    credentials: { type: 'boolean', default: false, description: 'Send Access-Control-Allow-Credentials: true (cookies, HTTP auth)' },
    maxAge: { type: 'integer', minimum: 0, maximum: 86400, default: 600, description: 'Seconds a browser may cache a preflight answer (Access-Control-Max-Age)' },
    preflightStatus: { type: 'integer', enum: [200, 204], default: 204, description: 'Status of an allowed preflight' },
    deniedPreflightStatus: { type: 'integer', enum: [200, 204, 403], description: 'Status of a refused preflight (default: preflightStatus); 403 sends problem+json' }
  }
} as const

export interface CorsConfig {
  origins: string[]
  originPatterns: string[]
  methods: string[]
  headers: string[]
  mirrorRequestHeaders: boolean
  exposeHeaders: string[]
  credentials: boolean
  maxAge: number
  preflightStatus: 200 | 204
  deniedPreflightStatus?: 200 | 204 | 403
}

import { adminSchema } from './admin/schema.js'
import type { AdminConfig } from './admin/schema.js'
import { rewriteSchema, upstreamSchema } from './upstream/schema.js'
import type { UpstreamConfig } from './upstream/spec.js'
import { metricsSchema, securityLogSchema, tracingSchema } from './observability-schema.js'
import type { MetricsConfig, SecurityLogConfig, TracingConfig } from './observability-schema.js'
import { clusterSchema } from './cluster/config.js'
import type { ClusterConfig } from './cluster/config.js'
import { duration } from './schema-parts.js'

/**
 * The gateway config's JSON Schema: the one source for validation (ajv, src/config.ts) and
 * for the published `schema/gateway.schema.json` editors use (scripts/build-schema.ts).
 */

/** A size in bytes. */
const byteSize = { type: 'integer', minimum: 0, maximum: 1099511627776 } as const

const pluginRef = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1, pattern: '^[a-z0-9][a-z0-9._-]*$', description: 'A built-in plugin name, or the name a module given in `module` exports' },
    module: { type: 'string', minLength: 1, description: 'Path (relative to the config file) or package name of a user plugin' },
    enabled: { type: 'boolean', default: true },
    config: { type: 'object', default: {}, description: "The plugin's own config; checked against the plugin's schema" }
  }
} as const

const timeouts = {
  type: 'object',
  additionalProperties: false,
  properties: {
    connect: { ...duration, default: 5000 },
    headers: { ...duration, default: 30000, description: 'Time to the upstream response headers' },
    body: { ...duration, default: 30000, description: 'Idle time between upstream body chunks' },
    total: { ...duration, default: 0, description: 'Whole exchange with the upstream, retries included (504); 0: no limit' }
  },
  default: {}
} as const

/** A route's timeouts: no defaults here, so unset fields fall back to the global ones. */
const routeTimeouts = {
  type: 'object',
  additionalProperties: false,
  properties: {
    connect: duration,
    headers: { ...duration, description: 'Time to the upstream response headers' },
    body: { ...duration, description: 'Idle time between upstream body chunks' },
    total: { ...duration, description: 'Whole exchange with the upstream, retries included (504); 0: no limit' }
  }
} as const

const clientIpProps = {
  trustedProxies: {
    type: 'array',
    items: { type: 'string', minLength: 1 },
    description: 'CIDRs of proxies/load balancers whose forwarded headers are believed'
  },
  header: { type: 'string', enum: ['x-forwarded-for', 'forwarded', 'x-real-ip'], description: 'Where a trusted peer says who the client is' },
  hops: { type: 'integer', minimum: 0, maximum: 32, description: '0: walk right to left past trusted proxies; N: take the Nth address from the right' }
} as const

/** How the client address is resolved; a route's block overrides the global one field by field. */
const clientIp = {
  type: 'object',
  additionalProperties: false,
  properties: {
    trustedProxies: { ...clientIpProps.trustedProxies, default: [] },
    header: { ...clientIpProps.header, default: 'x-forwarded-for' },
    hops: { ...clientIpProps.hops, default: 0 }
  },
  default: {}
} as const

const routeClientIp = { type: 'object', additionalProperties: false, properties: clientIpProps } as const

/** The listener's TLS (src/tls/): certificates, SNI, protocol floor, client certificates. */
const listenTls = {
  type: 'object',
  additionalProperties: false,
  required: ['certificates'],
  properties: {
    certificates: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['cert', 'key'],
        properties: {
          cert: { type: 'string', minLength: 1, description: 'PEM file: the certificate, then its chain (relative to the config file)' },
          key: { type: 'string', minLength: 1, description: 'PEM file: the private key' },
          serverNames: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^(\\*\\.)?[A-Za-z0-9.-]+$' }, description: 'SNI names served with this certificate (exact, or *.example.com); default: the DNS names of its subjectAltName' }
        }
      },
      description: 'The first is the default certificate (no SNI, or an SNI no certificate names); the others are chosen by SNI'
    },
    unknownServerName: { type: 'string', enum: ['default', 'reject'], default: 'default', description: 'An SNI name no certificate serves: the default certificate, or a refused handshake' },
    minVersion: { type: 'string', enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2', description: 'Lowest TLS version accepted (1.3 is preferred whenever the client has it)' },
    ciphers: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9_:+!@-]+$', description: 'OpenSSL cipher list for TLS 1.2; default: the Mozilla intermediate profile (ECDHE with AES-GCM or ChaCha20-Poly1305)' },
    handshakeTimeout: { ...duration, default: 10000, description: 'A connection that has not finished its handshake by then is closed' },
    sniHostMatch: { type: 'boolean', default: true, description: 'With SNI, a request whose Host names another server is answered 421' },
    watch: { type: 'boolean', default: true, description: 'Reload the certificate files when they change' },
    clientCertificates: {
      type: 'object',
      additionalProperties: false,
      required: ['mode', 'ca'],
      properties: {
        mode: { type: 'string', enum: ['required', 'optional'], description: 'required: a handshake without a certificate the CA signed is refused; optional: one is asked for, and the mtls-auth plugin decides' },
        ca: { type: 'string', minLength: 1, description: 'PEM file of the CA certificate(s) client certificates must chain to' }
      }
    }
  }
} as const

/** Ids and group names travel upstream in headers: only characters safe there. */
const identifier = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$' } as const

const consumer = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id: { ...identifier, description: 'Sent upstream in X-Consumer-Id; used in logs and rate-limit keys' },
    groups: { type: 'array', uniqueItems: true, items: identifier, default: [], description: 'For acl allow/deny; sent upstream in X-Consumer-Groups' },
    scopes: { type: 'array', uniqueItems: true, items: { type: 'string', pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,128}$' }, default: [], description: 'Scopes granted to this consumer when it authenticates with an API key' },
    credentials: {
      type: 'object',
      additionalProperties: false,
      properties: {
        keys: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            properties: {
              digest: { type: 'string', pattern: '^sha256:[0-9a-f]{64}$', description: 'sha256:<hex> of the key (tollgate hash-key <key> prints it)' },
              key: { type: 'string', minLength: 16, maxLength: 512, description: 'A plain key: hashed at load, with a warning. Prefer digest' },
              name: { type: 'string', minLength: 1, maxLength: 64, description: 'A label for logs (which of the keys was used)' }
            },
            description: 'Exactly one of digest and key'
          },
          default: []
        },
        subjects: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['issuer', 'subject'],
            properties: {
              issuer: { type: 'string', minLength: 1, description: "The token's iss (jwt-auth), or the oauth2-introspection plugin's issuer" },
              subject: { type: 'string', minLength: 1, description: "The value of the plugin's consumer claim (default: sub)" }
            }
          },
          default: [],
          description: 'Token identities (JWT or introspected) that are this consumer'
        },
        certificates: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            properties: {
              subject: { type: 'string', minLength: 1, maxLength: 256, description: "The client certificate subject's common name (CN)" },
              san: { type: 'string', pattern: '^(DNS|URI|email|IP Address):[^,\\s]{1,256}$', description: 'One subjectAltName entry, as DNS:client.example, URI:spiffe://example/client, email:a@example or IP Address:10.0.0.1' }
            },
            description: 'Matches when every field given matches the verified certificate'
          },
          default: [],
          description: 'Client certificates (mTLS, the mtls-auth plugin) that are this consumer'
        }
      },
      default: {}
    }
  }
} as const

const headerName = { type: 'string', pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" } as const

const identity = {
  type: 'object',
  additionalProperties: false,
  properties: {
    headers: {
      type: 'object',
      additionalProperties: false,
      properties: {
        id: { ...headerName, default: 'X-Consumer-Id' },
        groups: { ...headerName, default: 'X-Consumer-Groups' },
        scope: { ...headerName, default: 'X-Authenticated-Scope' },
        anonymous: { ...headerName, default: 'X-Anonymous-Consumer' }
      },
      default: {},
      description: 'Headers that tell the upstream who called. Whatever a client sends under these names is always removed'
    }
  },
  default: {}
} as const

const route = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'match', 'upstream'],
  properties: {
    name: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' },
    match: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: { type: 'string', pattern: '^/', description: 'A path prefix (matched at segment boundaries), with optional :param segments' },
        exact: { type: 'boolean', default: false, description: 'Match the path only, not what is below it' },
        caseInsensitive: { type: 'boolean', description: 'Match the path in any letter case (/ADMIN matches /admin); parameters keep their case. Default false' },
        methods: {
          type: 'array',
          minItems: 1,
          uniqueItems: true,
          items: { type: 'string', enum: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] }
        },
        host: {
          anyOf: [
            { type: 'string', minLength: 1 },
            { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }
          ],
          description: 'Host header value(s) this route serves (without port); any host when absent'
        }
      }
    },
    upstream: upstreamSchema,
    preserveHost: { type: 'boolean', default: false, description: "Send the client's Host upstream instead of the upstream's" },
    stripPrefix: { type: 'boolean', default: false, description: 'Remove the matched path prefix before proxying' },
    hostHeader: { type: 'string', pattern: '^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\\[[0-9A-Fa-f:.]+\\](:[0-9]{1,5})?$', description: 'A fixed Host sent upstream (wins over preserveHost)' },
    rewrite: rewriteSchema,
    timeouts: routeTimeouts,
    maxBodySize: { ...byteSize, description: 'Bytes of request body this route accepts (413); default limits.maxBodySize' },
    websocket: {
      anyOf: [
        { type: 'boolean' },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            idleTimeout: { ...duration, description: 'A tunnel with no bytes either way for this long is closed. Default 60s' },
            maxLifetime: { ...duration, description: 'A tunnel is closed this long after it opened, busy or not; 0: no limit (the default)' }
          }
        }
      ],
      description: 'Proxy WebSocket upgrades on this route (after its request hooks have run): true, or the tunnel limits. Default false: Upgrade is stripped'
    },
    clientIp: routeClientIp,
    anonymous: { ...identifier, description: 'A consumer id given to requests that send no credentials, instead of a 401' },
    redirectToHttps: {
      anyOf: [
        { type: 'boolean' },
        { type: 'object', additionalProperties: false, properties: { port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Port of the HTTPS listener; default 443' } } }
      ],
      description: 'Requests over plain HTTP are answered 308 with the https:// URL (nothing is proxied); requests over TLS are served'
    },
    plugins: { type: 'array', items: pluginRef, default: [] }
  }
} as const

export const gatewaySchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://tollgate.dev/schema/gateway.schema.json',
  title: 'tollgate gateway config',
  type: 'object',
  additionalProperties: false,
  required: ['routes'],
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: {
        host: { type: 'string', minLength: 1, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
        tls: listenTls
      },
      default: {}
    },
    workers: { type: 'integer', minimum: 1, maximum: 256, description: 'Worker threads; default: available parallelism' },
    logLevel: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxHeaderSize: { type: 'integer', minimum: 1024, maximum: 1048576, default: 16384, description: 'Bytes of request line + headers (431 above)' },
        maxHeadersCount: { type: 'integer', minimum: 8, maximum: 2000, default: 100, description: 'Header lines per request' },
        headersTimeout: { ...duration, default: 10000, description: 'Time for a client to send the whole header block (408)' },
        requestTimeout: { ...duration, default: 30000, description: 'Time for a client to send the whole request (408)' },
        keepAliveTimeout: { ...duration, default: 5000, description: 'Idle keep-alive connections are closed after this' },
        drainTimeout: { ...duration, default: 30000, description: 'On SIGTERM, in-flight requests get this long to finish' },
        maxRequestsPerSocket: { type: 'integer', minimum: 0, default: 0, description: '0: unlimited' },
        // The HTTP-hardening settings below have their defaults in HTTP_DEFAULTS, applied where
        // they are read: the normalized `limits` object keeps the shape it had before them.
        maxBodySize: { ...byteSize, description: 'Bytes of request body a route accepts unless it sets its own (413; a Content-Length over it is refused before the body is read). Default 10485760 (10 MiB)' },
        bodyIdleTimeout: { ...duration, description: 'Longest pause in a request body the gateway is waiting for (408, connection closed). Default 10s' },
        maxConnections: { type: 'integer', minimum: 1, maximum: 1000000, description: 'Open client connections per worker thread; new ones above it are closed on accept. Default 10000' },
        headersWithUnderscores: { type: 'string', enum: ['reject', 'drop', 'allow'], description: 'Request header names with _ (X_User): refuse the request (400), remove the header, or pass it on. Default reject' },
        mergeSlashes: { type: 'boolean', description: 'Merge repeated slashes in the path (//admin -> /admin) for routing, policies and upstream. Default true' },
        pathSemicolons: { type: 'string', enum: ['reject', 'allow'], description: 'A ; in the path (/admin;x): refuse (400), or treat it as an ordinary character. Default reject' }
      },
      default: {}
    },
    timeouts,
    clientIp,
    admin: adminSchema,
    metrics: metricsSchema,
    tracing: tracingSchema,
    securityLog: securityLogSchema,
    cluster: clusterSchema,
    counters: {
      type: 'object',
      additionalProperties: false,
      properties: {
        entries: { type: 'integer', minimum: 1024, maximum: 2097152, default: 2097152, description: 'Rate-limit counter slots shared by every worker (a power of two; fixed until restart)' }
      },
      default: {}
    },
    consumers: { type: 'array', items: consumer, default: [], description: 'Who may call: ids, groups and credentials' },
    identity,
    plugins: { type: 'array', items: pluginRef, default: [], description: 'Global plugins: every route runs these' },
    routes: { type: 'array', items: route, description: 'Routes, matched by host, path and method' }
  }
} as const

export type Duration = number | string

/** Defaults of the optional `limits` settings (HTTP hardening), applied where they are read. */
export const HTTP_DEFAULTS = Object.freeze({
  maxBodySize: 10 * 1024 * 1024,
  bodyIdleTimeout: 10_000,
  maxConnections: 10_000,
  headersWithUnderscores: 'reject',
  mergeSlashes: true,
  pathSemicolons: 'reject'
} as const)

export interface PluginRef {
  name: string
  module?: string
  enabled: boolean
  config: Record<string, unknown>
}

export interface TimeoutsConfig { connect: number, headers: number, body: number, total: number }

export interface UpstreamTarget { url: string, weight?: number }

export interface UpstreamTlsConfig { ca?: string, servername?: string, insecureSkipVerify?: boolean }

export interface ListenTlsConfig {
  certificates: Array<{ cert: string, key: string, serverNames?: string[] }>
  unknownServerName: 'default' | 'reject'
  minVersion: 'TLSv1.2' | 'TLSv1.3'
  ciphers?: string
  handshakeTimeout: number
  sniHostMatch: boolean
  watch: boolean
  clientCertificates?: { mode: 'required' | 'optional', ca: string }
}

export interface RouteConfig {
  name: string
  match: { path: string, exact: boolean, caseInsensitive?: boolean, methods?: string[], host?: string | string[] }
  upstream: UpstreamConfig
  preserveHost: boolean
  stripPrefix: boolean
  hostHeader?: string
  rewrite?: { pattern: string, replacement: string }
  timeouts: TimeoutsConfig
  /** Always set after validation: the route's own, or limits.maxBodySize. */
  maxBodySize: number
  /** Set only when the route proxies WebSocket upgrades: its limits in ms (normalized). */
  websocket?: WebSocketConfig
  /** Always complete after validation: the global block merged under the route's own. */
  clientIp: ClientIpConfig
  anonymous?: string
  redirectToHttps?: boolean | { port?: number }
  plugins: PluginRef[]
}

export interface WebSocketConfig {
  /** No bytes either way for this long closes the tunnel (ms). */
  idleTimeout: number
  /** The tunnel is closed this long after it opened (ms); 0: no limit. */
  maxLifetime: number
}

/** Defaults of a route's `websocket` block. */
export const WEBSOCKET_DEFAULTS = Object.freeze({ idleTimeout: 60_000, maxLifetime: 0 })

export interface ClientIpConfig {
  trustedProxies: string[]
  header: 'x-forwarded-for' | 'forwarded' | 'x-real-ip'
  hops: number
}

/** The config after validation: defaults filled in, durations in milliseconds. */
export interface GatewayConfig {
  listen: { host: string, port: number, tls?: ListenTlsConfig }
  workers: number
  logLevel: string
  limits: {
    maxHeaderSize: number
    maxHeadersCount: number
    headersTimeout: number
    requestTimeout: number
    keepAliveTimeout: number
    drainTimeout: number
    maxRequestsPerSocket: number
    maxBodySize?: number
    bodyIdleTimeout?: number
    maxConnections?: number
    headersWithUnderscores?: 'reject' | 'drop' | 'allow'
    mergeSlashes?: boolean
    pathSemicolons?: 'reject' | 'allow'
  }
  timeouts: TimeoutsConfig
  clientIp: ClientIpConfig
  counters: { entries: number }
  admin: AdminConfig
  metrics: MetricsConfig
  tracing: TracingConfig
  securityLog: SecurityLogConfig
  /** Cluster mode through Redis (src/cluster); absent: a single instance. */
  cluster?: ClusterConfig
  consumers: ConsumerConfig[]
  identity: { headers: { id: string, groups: string, scope: string, anonymous: string } }
  plugins: PluginRef[]
  routes: RouteConfig[]
}

/** A consumer after validation: plain keys are replaced by their digests. */
export interface ConsumerConfig {
  id: string
  groups: string[]
  scopes: string[]
  credentials: {
    keys: Array<{ digest: string, name?: string }>
    subjects: Array<{ issuer: string, subject: string }>
    certificates: Array<{ subject?: string, san?: string }>
  }
}

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { Logger } from 'pino'
import type { SerializedError } from './errors.js'
import type { GatewayConfig } from './config-schema.js'
import type { HotPath } from './shared-memory.js'
import type { ResponseTap } from './upstream/response-tap.js'

export type { ResponseTap } from './upstream/response-tap.js'

/** The fixed phase list (DESIGN.md "The request path"). Order here is run order. */
export const PHASES = ['connect', 'authn', 'authz', 'access', 'validate', 'proxy', 'response', 'log'] as const
export type Phase = typeof PHASES[number]

/** A JSON Schema object, as ajv takes it. */
export type JsonSchema = Record<string, unknown>

/** How a header set with `ctx.setResponseHeader` meets the upstream's (see there). */
export type ResponseHeaderMode = 'set' | 'append' | 'default'

/** What a plugin may send instead of the default problem+json body. */
export interface ReplyOptions {
  /** RFC 9457 `detail`. Never echo secrets (tokens, keys) here. */
  detail?: string
  /** RFC 9457 `title`; defaults to the status text. */
  title?: string
  /** A machine-readable reason code, sent as the problem's `code` member and logged. */
  code?: string
  /** RFC 9457 `type`; defaults to `about:blank`. */
  type?: string
  /** Extra response headers (e.g. `WWW-Authenticate`, `Retry-After`). */
  headers?: Record<string, string | number | readonly string[]>
  /** A body to send as is, instead of problem+json. */
  body?: string | Uint8Array
  /** Content type of `body`; defaults to `text/plain; charset=utf-8`. */
  contentType?: string
}

/** The client as the gateway sees it. */
/** A client certificate, as the TLS handshake presented it. */
export interface PeerCertificateInfo {
  /** The subject's common name (CN), '' when it has none. */
  readonly subject: string
  /** subjectAltName entries as Node prints them: `DNS:a.example`, `URI:spiffe://x`, `email:a@b`, `IP Address:10.0.0.1`. */
  readonly san: readonly string[]
  /** The issuer's common name. */
  readonly issuer: string
  readonly fingerprint256: string
  /** True when it chains to the listener's clientCertificates CA. Never trust an unverified one. */
  readonly verified: boolean
}

/** The connection's TLS, on a TLS listener. */
export interface TlsInfo {
  /** `TLSv1.3`, `TLSv1.2` */
  readonly protocol: string
  readonly cipher: string
  /** The SNI name the client sent (lower-case), undefined without SNI. */
  readonly servername: string | undefined
  /** The client certificate (mTLS), undefined when none was sent. */
  readonly peerCertificate: PeerCertificateInfo | undefined
  /** Why a client certificate was not verified (OpenSSL's reason), when it was not. */
  readonly authorizationError: string | undefined
}

export interface ClientInfo {
  /** Resolved client address (IPv4-mapped IPv6 is given as plain IPv4). */
  ip: string
  port: number
  /** The TCP peer, which differs from `ip` behind a trusted proxy. */
  peerIp: string
}

/**
 * Who is calling, as an authn plugin established it. Every later plugin, the access log
 * and rate-limit keys read it from `ctx.consumer`.
 */
export interface Consumer {
  /** The consumer's id: a configured consumer's, or the token's mapped claim. */
  readonly id: string
  readonly groups: readonly string[]
  readonly scopes: readonly string[]
  /** Verified token claims (JWT payload or introspection response); {} for API keys. */
  readonly claims: Readonly<Record<string, unknown>>
  /** True for the route's `anonymous` consumer (no credentials were sent). */
  readonly anonymous: boolean
  /** The plugin that authenticated the request ('gateway' for the anonymous consumer). */
  readonly via: string
}

/** What an authn plugin passes to `ctx.authenticate()`. */
export interface ConsumerIdentity {
  id: string
  groups?: readonly string[]
  scopes?: readonly string[]
  claims?: Readonly<Record<string, unknown>>
}

/**
 * What an authn plugin passes to `ctx.authFailed()`. The gateway answers once every authn
 * plugin of the route had its turn and none authenticated the request.
 */
export interface AuthFailure {
  /** 401 (default), 400 for an ambiguous request, 503 when the plugin could not decide. */
  status?: 400 | 401 | 503
  /** Reason code for the problem's `code` member and the access log. */
  code: string
  /** Human-readable reason. Never echo the credential here. */
  detail: string
  /** A `WWW-Authenticate` challenge, e.g. `Bearer realm="tollgate", error="invalid_token"`. */
  challenge?: string
  /** Extra response headers for this failure (e.g. `Retry-After` with a 503). */
  headers?: Record<string, string | number>
  /** True when the request carried this plugin's kind of credential (a wrong one). A route's
   *  anonymous consumer is given only to requests that presented no credential at all. */
  presented: boolean
}

/** The route a request matched. */
export interface RouteInfo {
  readonly name: string
  readonly upstream: string
}

/**
 * The per-request context every hook receives. One object per request; hooks read the
 * request from it and change what goes upstream through its methods.
 */
export interface RequestContext {
  readonly method: string
  /** Normalized path, without the query string. Routing and every policy see this one. */
  readonly path: string
  /** Raw query string without the `?`, or '' */
  readonly query: string
  /** Request headers (lower-case names, as Node parses them). */
  readonly headers: IncomingHttpHeaders
  readonly client: ClientInfo
  /** The connection's TLS (protocol, SNI name, client certificate); undefined over plain HTTP. */
  readonly tls: TlsInfo | undefined
  readonly route: RouteInfo
  /** Values of `:name` segments of the route pattern. */
  readonly params: Readonly<Record<string, string | undefined>>
  /** Who is calling: set by the first authn plugin that accepts the request's credentials
   *  (or the route's anonymous consumer); undefined before the authn phase and on routes
   *  without authentication. */
  readonly consumer: Consumer | undefined
  /** Authn plugins: the credentials are good and name this consumer. The first call of a
   *  request wins; later calls are ignored. */
  authenticate (identity: ConsumerIdentity): void
  /** Authn plugins: the credentials are missing or bad. Does not answer by itself: the next
   *  authn plugin still gets its turn, and the gateway answers if none succeeds. */
  authFailed (failure: AuthFailure): void
  /** Every value of a request header, repeated header lines kept apart (for credentials,
   *  where a repeated line must be refused, not joined or dropped). */
  headerValues (name: string): readonly string[]
  /** Request id (set by the request-id plugin; '' when it is not used). */
  id: string
  /** Config generation the request runs under, start to end. */
  readonly generation: number
  /** Per-request state for plugins; key it by your plugin's name. */
  readonly state: Record<string, unknown>
  /** Milliseconds since the request arrived (monotonic clock). */
  elapsed (): number
  /** Deny (or answer) the request: the pipeline stops and this reply is sent. */
  reply (status: number, options?: ReplyOptions): void
  /** True once a reply was sent by a plugin or the gateway. */
  readonly replied: boolean
  /**
   * Read the whole request body, at most `limit` bytes, for a plugin that must see it
   * (validation); it is then sent upstream from memory instead of streamed. Resolves to the
   * bytes (empty when the request has none), or to undefined when the gateway has already
   * answered: 413 when the body is larger than `limit` (refused before reading when
   * Content-Length says so), 400 when it breaks its framing; or when the client went away.
   * Calling it again returns the same promise.
   */
  readBody (limit: number): Promise<Buffer | undefined>
  /** Set or replace a header sent upstream. */
  setUpstreamHeader (name: string, value: string): void
  /** Remove a header before it goes upstream. */
  removeUpstreamHeader (name: string): void
  /** The query string that will go upstream: `query`, as earlier plugins changed it. */
  readonly upstreamQuery: string
  /** Replace the query string sent upstream (without `?`; '' for none). Start from
   *  `upstreamQuery`, so that an earlier plugin's change is kept. */
  setUpstreamQuery (query: string): void
  /**
   * Set a header on the response to the client, proxied or replied. `mode` says what
   * happens when the upstream's response has the header too: 'set' (default) replaces it,
   * 'append' adds this value after the upstream's (comma-joined: `Vary`), 'default' keeps
   * the upstream's and uses this one only when it sent none.
   */
  setResponseHeader (name: string, value: string | number | readonly string[], mode?: ResponseHeaderMode): void
  /**
   * Answer with a whole response of your own, as if the upstream had sent it (a cache hit):
   * unlike `reply()`, the headers are yours (no problem+json, no `Cache-Control: no-store`),
   * and the request's response headers and the route's `onResponse` hooks apply to it as
   * to a proxied response. Content-Length is set from `body`; a HEAD request gets none of
   * it; 204 and 304 get no body. The pipeline stops, as after `reply()`.
   */
  respond (status: number, headers: OutgoingHttpHeaders, body?: Uint8Array): void
  /**
   * Observe the proxied response (status, headers, body chunks) as it streams to the
   * client, without holding it up (see ResponseTap). Call it before the request is proxied.
   */
  tapResponse (tap: ResponseTap): void
  /** What happened, filled in as the request runs; complete in the `log` phase. */
  readonly outcome: RequestOutcome
  /** The request's W3C trace (trace id, the gateway's span id); undefined when
   *  `tracing.propagate` is off. */
  readonly trace: import('./tracing/traceparent.js').TraceContext | undefined
  /** A logger bound to this request. */
  readonly log: Logger
}

export interface RequestOutcome {
  status: number
  /** Response body bytes sent to the client. */
  bytesOut: number
  /** Request body bytes received from the client. */
  bytesIn: number
  /** Upstream origin, when the request was proxied. */
  upstream: string | undefined
  /** Milliseconds until the upstream's response headers, when proxied. */
  upstreamMs: number | undefined
  /** Name of the plugin that replied, or 'gateway'. */
  repliedBy: string | undefined
  /** Reason code of a denial or a gateway error. */
  code: string | undefined
  /** True when the client went away before the response was complete. */
  aborted: boolean
}

/** A hook's result: nothing, or a promise of nothing. Sync hooks stay sync. */
export type HookResult = void | Promise<void>

export interface ResponseInfo {
  status: number
  /** Response headers about to be sent to the client; change them in place. */
  headers: OutgoingHttpHeaders
}

/** What `create()` returns. Every member is optional. */
export interface PluginHooks {
  /** Runs in the plugin's phase, in config order within the phase. */
  onRequest?: (ctx: RequestContext) => HookResult
  /** Runs when upstream response headers arrive, before they reach the client. Sync. */
  onResponse?: (ctx: RequestContext, res: ResponseInfo) => void
  /** Runs after the response is finished (or aborted); for logs and metrics. */
  onLog?: (ctx: RequestContext) => void
  /** Runs when this plugin instance's generation is retired. */
  close?: () => HookResult
}

/**
 * What a plugin's `prepare()` gets: it runs once per config generation in the acceptor
 * (main thread), before any worker builds, for work that must be done once for the whole
 * gateway, such as compiling CIDR lists into the shared-memory tables.
 */
export interface PrepareApi {
  /**
   * Register a list of CIDRs to be compiled into the shared IP table of this generation;
   * returns the set's id, to match against in `create()` with `api.shared`. An invalid
   * entry makes the whole config invalid, reported at `<entry>/config<pointer>/<index>`.
   */
  ipSet: (cidrs: readonly string[], pointer?: string) => number
  log: Logger
  /** Name of the route the instance is for, or undefined for a global instance. */
  route: string | undefined
  configDir: string
  /** JSON path of this plugin entry in the config, e.g. `/routes/0/plugins/1`. */
  path: string
}

/** The shared-memory hot path as a plugin sees it in `create()`. */
export interface SharedApi {
  /** This thread's WASM instance on the gateway's shared memory. */
  hotPath: HotPath
  /** The IP table region this generation's sets were written to. */
  ipRegion: number
}

/** What a plugin's `create()` gets besides its config. */
export interface PluginApi {
  /** What the plugin's `prepare()` returned for this entry (undefined without one). */
  prepared: unknown
  /** The WASM hot path and this generation's tables. */
  shared: SharedApi
  /** The plugin's logger (the gateway's log, bound to the plugin's name). */
  log: Logger
  /** The config generation being built. */
  generation: number
  /** 'worker' when building a live pipeline; 'dry-run' when the acceptor validates. */
  mode: 'worker' | 'dry-run'
  /** Name of the route the instance is for, or undefined for a global instance. */
  route: string | undefined
  /** Directory of the config file, to resolve relative paths in plugin config. */
  configDir: string
  /** The whole validated gateway config (read-only). */
  gateway: Readonly<GatewayConfig>
}

export interface PluginDefinition<C = Record<string, unknown>> {
  /** The name users write in the config and on the command line. */
  name: string
  /** The phase the plugin's `onRequest` runs in. */
  phase: Phase
  /** JSON Schema of the plugin's config (ajv). Put defaults in it; forbid extra properties. */
  schema: JsonSchema
  /** A semver range of tollgate versions the plugin works with. */
  tollgate?: string
  /** Names of plugins that must be in the same pipeline. */
  dependencies?: readonly string[]
  /** Runs once per generation in the acceptor, before `create()`; its result (structured-
   *  cloneable) reaches every worker's `create()` as `api.prepared`. */
  prepare?: (config: C, api: PrepareApi) => unknown
  /** Config keys only prepare() reads (large lists it compiles into shared memory): they
   *  are left out of the copy sent to worker threads, so an update does not clone them to
   *  every thread. `create()` then sees the config without them. */
  preparedKeys?: readonly string[]
  /** True for a plugin that identifies callers (phase `authn`): the gateway answers once
   *  every such plugin of the route had its turn (401 when none authenticated the request).
   *  Its hook still runs after an earlier one succeeded, so that it can strip credentials
   *  and headers it owns; it should then return without checking anything. */
  authenticates?: boolean
  /** Runs once per worker per config generation. Parse everything here, not per request. */
  create: (config: C, api: PluginApi) => PluginHooks | Promise<PluginHooks>
  /** Free-form description shown by `tollgate --help`. */
  description?: string
}

/* ------------------------------ thread messages ------------------------------ */

/** The serve task piscina runs, once per worker thread, for the thread's life. */
export interface ServeTask {
  slot: number
  /** A SO_REUSEPORT listening socket of this worker's own (see docs/threads.md). */
  fd: number
  /** The acceptor's shared memory (the WASM hot path's tables). */
  memory: WebAssembly.Memory
  /** This slot's metrics region (src/metrics/layout.ts): written by this thread only. */
  metrics: SharedArrayBuffer
  /** Control channel to the acceptor. */
  port: import('node:worker_threads').MessagePort
  generation: GenerationMessage
  logLevel: string
}

/** A config generation as it travels to workers: validated, defaults filled in. */
export interface GenerationMessage {
  number: number
  config: GatewayConfig
  configDir: string
  /** Plugin name -> module specifier (file URL) to import in the worker. */
  modules: Record<string, string>
  /** Entry path (`/routes/0/plugins/1`) -> what that entry's prepare() returned. */
  prepared: Record<string, unknown>
  /** IP table region (0 = A, 1 = B) holding this generation's sets. */
  ipRegion: number
  /** Route name -> its upstream's shared state (health, ejections, counts); made by the
   *  acceptor's UpstreamRegistry. Absent in a dry run: each route gets a private one. */
  upstreams?: Record<string, import('./upstream/state.js').SharedUpstream>
  /** The listener's certificates (listen.tls), read and checked by the acceptor. */
  tls?: import('./tls/material.js').TlsMaterial
}

export type AcceptorToWorker =
  /** Phase 1 of an update: build the generation's pipelines and hold them. */
  | { type: 'prepare-generation', generation: GenerationMessage }
  /** Phase 2: every worker built it; switch between requests. */
  | { type: 'commit-generation', number: number }
  /** Some worker could not build it: drop the held one. */
  | { type: 'abort-generation', number: number }
  /** Build and switch at once: a thread that started during an update catching up. */
  | { type: 'generation', generation: GenerationMessage }
  | { type: 'drain', deadlineMs: number }
  /** Drop cached responses (src/cache-purge.ts); `number` pairs the reply with the request. */
  | { type: 'purge-cache', number: number, selector: import('./cache-purge.js').PurgeSelector }
  /** The certificate files changed and passed the checks: serve them to new connections. */
  | { type: 'tls-material', tls: import('./tls/material.js').TlsMaterial }

export type WorkerToAcceptor =
  | { type: 'ready', slot: number, threadId: number, generation: number, address: { address: string, port: number, family: string } }
  | { type: 'generation-built', number: number }
  | { type: 'generation-applied', number: number }
  | { type: 'generation-failed', number: number, error: SerializedError }
  /** The generation's last request ended in this worker; its instances are closed. */
  | { type: 'generation-retired', number: number }
  | { type: 'drained', inFlight: number }
  | { type: 'cache-purged', number: number, entries: number }

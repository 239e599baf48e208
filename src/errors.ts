import { format } from 'node:util'

/**
 * Every error code tollgate raises, in one place. Startup and config errors are thrown
 * as `GatewayError`s; request-time denials are replies (problem+json) that carry one of the
 * `GW_*` request codes below in their `code` member.
 */
const kGatewayError = Symbol.for('tollgate.error')

export class GatewayError extends Error {
  code: string
  statusCode: number
  /** Where the problem is, for config errors: `file: /json/path: reason` lines. */
  details: readonly string[]

  constructor (code: string, message: string, statusCode: number, options?: { cause?: unknown, details?: readonly string[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'GatewayError'
    this.code = code
    this.statusCode = statusCode
    this.details = options?.details ?? []
  }

  // Branded with Symbol.for so instanceof holds across duplicate copies of this module
  // (a user plugin may bundle its own copy of tollgate), as undici's errors do.
  static override [Symbol.hasInstance] (value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kGatewayError] === true
  }

  get [kGatewayError] (): boolean { return true }

  /** The shape errors travel in between threads (piscina's ResponseMessage style). */
  toJSON (): SerializedError {
    return { code: this.code, message: this.message, statusCode: this.statusCode, details: [...this.details] }
  }
}

export interface SerializedError { code: string, message: string, statusCode: number, details?: string[] }

export interface ErrorFactory {
  (...args: unknown[]): GatewayError
  code: string
  statusCode: number
  template: string
}

function createError (code: string, template: string, statusCode = 500): ErrorFactory {
  const make = ((...args: unknown[]) => {
    let cause: unknown
    let details: string[] | undefined
    const last = args[args.length - 1]
    if (last !== null && typeof last === 'object' && !Array.isArray(last) && ('cause' in last || 'details' in last)) {
      args.pop()
      cause = (last as { cause?: unknown }).cause
      details = (last as { details?: string[] }).details
    }
    return new GatewayError(code, format(template, ...args), statusCode, { cause, details })
  }) as ErrorFactory
  make.code = code
  make.statusCode = statusCode
  make.template = template
  return make
}

export function reviveError (e: SerializedError): GatewayError {
  return new GatewayError(e.code, e.message, e.statusCode, { details: e.details })
}

export const codes = {
  /** Config */
  GW_ERR_CONFIG_READ: createError('GW_ERR_CONFIG_READ', "cannot read config file '%s': %s", 500),
  GW_ERR_CONFIG_PARSE: createError('GW_ERR_CONFIG_PARSE', "cannot parse config file '%s': %s", 500),
  GW_ERR_CONFIG_INVALID: createError('GW_ERR_CONFIG_INVALID', "invalid config '%s': %d problem(s)", 500),
  GW_ERR_CLI_USAGE: createError('GW_ERR_CLI_USAGE', '%s', 500),

  /** Policy updates and the admin API */
  GW_ERR_CONFIG_CONFLICT: createError('GW_ERR_CONFIG_CONFLICT', 'the config changed since version %d (now %d); fetch it and try again', 409),
  GW_ERR_VERSION_NOT_FOUND: createError('GW_ERR_VERSION_NOT_FOUND', 'no kept config version %s', 404),
  GW_ERR_UPDATE_FAILED: createError('GW_ERR_UPDATE_FAILED', 'the update was not applied: %s', 500),
  GW_ERR_ADMIN_AUTH: createError('GW_ERR_ADMIN_AUTH', 'a valid admin bearer token is required', 401),
  GW_ERR_ADMIN_UNSAFE: createError('GW_ERR_ADMIN_UNSAFE', 'the admin API on %s needs a token (admin.tokens): only loopback may go without', 500),
  GW_ERR_STATE: createError('GW_ERR_STATE', 'state directory %s: %s', 500),
  GW_ERR_BLOCK_NOT_FOUND: createError('GW_ERR_BLOCK_NOT_FOUND', '%s is not blocked', 404),
  GW_ERR_BLOCK_LIFT_UNAVAILABLE: createError('GW_ERR_BLOCK_LIFT_UNAVAILABLE', 'the fleet-wide block list (Redis) is unavailable, so %s was not unblocked anywhere: %s', 503),

  /** Plugin */
  GW_ERR_PLUGIN_INVALID: createError('GW_ERR_PLUGIN_INVALID', "plugin '%s' is not a tollgate plugin: %s", 500),
  GW_ERR_PLUGIN_NOT_FOUND: createError('GW_ERR_PLUGIN_NOT_FOUND', "plugin '%s' not found: %s", 500),
  GW_ERR_PLUGIN_LOAD: createError('GW_ERR_PLUGIN_LOAD', "plugin '%s' failed to load: %s", 500),
  GW_ERR_PLUGIN_VERSION: createError('GW_ERR_PLUGIN_VERSION', "plugin '%s' expects tollgate '%s', this is %s", 500),
  GW_ERR_PLUGIN_DEPENDENCY: createError('GW_ERR_PLUGIN_DEPENDENCY', "plugin '%s' requires '%s' in the same pipeline", 500),
  GW_ERR_PLUGIN_DUPLICATE: createError('GW_ERR_PLUGIN_DUPLICATE', "plugin '%s' is listed twice in %s", 500),
  GW_ERR_PLUGIN_NAME_TAKEN: createError('GW_ERR_PLUGIN_NAME_TAKEN', "plugin name '%s' is used by both %s and %s", 500),
  GW_ERR_PLUGIN_CREATE: createError('GW_ERR_PLUGIN_CREATE', "plugin '%s' failed in create(): %s", 500),
  GW_ERR_PLUGIN_HOOK: createError('GW_ERR_PLUGIN_HOOK', "plugin '%s' returned an invalid hook '%s'", 500),

  /** Startup and threads */
  GW_ERR_LISTEN: createError('GW_ERR_LISTEN', 'cannot listen on %s:%d: %s', 500),
  GW_ERR_WORKER_START: createError('GW_ERR_WORKER_START', 'worker thread failed to start: %s', 500),
  GW_ERR_WASM: createError('GW_ERR_WASM', 'the WASM module could not be loaded: %s', 500),

  /** TLS */
  GW_ERR_TLS_CERT: createError('GW_ERR_TLS_CERT', "TLS file '%s' refused: %s", 500),

  /** Request: the `code` member of problem+json replies */
  GW_BAD_REQUEST: createError('GW_BAD_REQUEST', 'The request is malformed: %s', 400),
  GW_HEADERS_TOO_LARGE: createError('GW_HEADERS_TOO_LARGE', 'The request header block is too large', 431),
  GW_REQUEST_TIMEOUT: createError('GW_REQUEST_TIMEOUT', 'The client did not send the request in time', 408),
  GW_VERSION_NOT_SUPPORTED: createError('GW_VERSION_NOT_SUPPORTED', 'HTTP version %s is not supported', 505),
  GW_NOT_IMPLEMENTED: createError('GW_NOT_IMPLEMENTED', 'The request needs a feature the gateway does not implement: %s', 501),
  GW_WEBSOCKET_HANDSHAKE: createError('GW_WEBSOCKET_HANDSHAKE', 'The WebSocket opening handshake is invalid: %s', 400),
  GW_NO_ROUTE: createError('GW_NO_ROUTE', 'No route matches %s', 404),
  GW_METHOD_NOT_ALLOWED: createError('GW_METHOD_NOT_ALLOWED', 'Method %s is not allowed on this route', 405),
  GW_BODY_TOO_LARGE: createError('GW_BODY_TOO_LARGE', 'The request body is too large', 413),
  GW_UNAUTHENTICATED: createError('GW_UNAUTHENTICATED', 'The request is not authenticated', 401),
  GW_PLUGIN_FAILURE: createError('GW_PLUGIN_FAILURE', 'A policy failed while handling the request', 500),
  GW_UPSTREAM_UNAVAILABLE: createError('GW_UPSTREAM_UNAVAILABLE', 'The upstream service could not be reached', 502),
  GW_UPSTREAM_BAD_RESPONSE: createError('GW_UPSTREAM_BAD_RESPONSE', 'The upstream service sent an invalid response', 502),
  GW_UPSTREAM_TIMEOUT: createError('GW_UPSTREAM_TIMEOUT', 'The upstream service did not answer in time', 504),
  GW_UPSTREAM_NO_HEALTHY: createError('GW_UPSTREAM_NO_HEALTHY', 'No healthy upstream target is available', 503),
  GW_UPSTREAM_OVERLOADED: createError('GW_UPSTREAM_OVERLOADED', 'The upstream service is at its connection or request limit', 503),
  GW_IP_AUTO_BLOCKED: createError('GW_IP_AUTO_BLOCKED', 'The client address is blocked for a while after too many refused requests', 403),
  GW_UPSTREAM_TLS: createError('GW_UPSTREAM_TLS', "The upstream service's TLS certificate could not be verified", 502),
  GW_MISDIRECTED_REQUEST: createError('GW_MISDIRECTED_REQUEST', 'The Host header names another server than the TLS connection (SNI) was made for', 421),
  GW_HTTPS_REQUIRED: createError('GW_HTTPS_REQUIRED', 'This route is served over HTTPS only', 308),
  GW_RATE_LIMIT_UNAVAILABLE: createError('GW_RATE_LIMIT_UNAVAILABLE', 'The fleet-wide rate-limit store (Redis) is unavailable', 503)
} as const

export type ErrorCode = keyof typeof codes

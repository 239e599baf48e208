import { hash } from 'node:crypto'
import { FIXED } from '../../src/metrics/layout.js'
import { threadMetrics } from '../../src/metrics/writer.js'
import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { Pool } from 'undici'
import type { Dispatcher } from 'undici'
import type { Logger } from 'pino'
import { consumersOf } from '../../src/auth/registry.js'
import type { ConsumerRegistry } from '../../src/auth/registry.js'
import { toMs } from '../../src/duration.js'
import type { AuthFailure, ConsumerIdentity, PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import type { OAuth2IntrospectionConfig } from './schema.js'

/** Most bytes read from an introspection response; a larger one is a failure. */
const MAX_BODY = 64 * 1024
/** Longest Authorization value looked at; anything longer is refused unread. */
const MAX_CREDENTIAL = 8192
/** RFC 6750 2.1: `Bearer 1*SP b64token`, the scheme case-insensitive. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i
const BEARER_SCHEME = /^bearer(?: |$)/i
/** Failures of the endpoint are logged at most this often per cache (per worker). */
const LOG_EVERY_MS = 5000

/*
 * Connection pools to authorization servers: one per origin per worker thread, shared by
 * every instance and every generation, so a reload keeps its warm connections. An origin's
 * pool is closed when no live instance uses it any more (counted by create()/close(); the
 * two-phase switch builds the new generation before the old one is closed, so an unchanged
 * endpoint never drops to zero).
 */
const pools = new Map<string, { pool: Pool, refs: number }>()

function acquirePool (origin: string): Pool {
  let p = pools.get(origin)
  if (p === undefined) {
    p = { pool: new Pool(origin, { connections: 64, keepAliveTimeout: 4000 }), refs: 0 }
    pools.set(origin, p)
  }
  p.refs++
  return p.pool
}

function releasePool (origin: string): void {
  const p = pools.get(origin)
  if (p === undefined || --p.refs > 0) return
  pools.delete(origin)
  // In-flight calls finish; nothing new is queued on it.
  p.pool.close().catch(() => {})
}

/** An introspection response as the authorization server sent it (a JSON object). */
type Introspected = Readonly<Record<string, unknown>>

type Decision = { readonly ok: true, readonly identity: ConsumerIdentity } | { readonly ok: false, readonly failure: AuthFailure }

/**
 * A cached response. The decision it leads to depends on the instance's checks and on its
 * generation's consumers, so it is kept beside the response for the instance that made it
 * (`policy`) and made again when another instance reads the entry.
 */
interface Entry {
  readonly response: Introspected
  /** Date.now() after which the entry is not used. */
  readonly expiresAt: number
  policy: object | undefined
  decision: Decision | undefined
}

/** What one call to the endpoint gave: a response, or why there is none. */
type CallResult = { readonly entry: Entry } | { readonly error: string }

/**
 * Results per endpoint, client and cache settings, per worker thread: shared by every
 * instance with the same settings and kept across reloads (counted like the pools). Keys
 * are SHA-256 digests of tokens; the tokens themselves are never kept.
 *
 * Active and inactive results are kept apart, each bounded by `size`, so a flood of made-up
 * tokens (each one inactive) cannot push the callers' good tokens out. Entries are dropped
 * oldest-inserted first: with one TTL per map, insertion order is close to expiry order, so
 * this is an O(1) stand-in for "drop the soonest to expire" without a heap.
 */
class ResultCache {
  readonly active = new Map<string, Entry>()
  readonly inactive = new Map<string, Entry>()
  /** Single flight: digest -> the call in progress for that token. */
  readonly inflight = new Map<string, Promise<CallResult>>()
  refs = 0
  lastLog = 0
  suppressed = 0
  constructor (readonly size: number) {}

  get (digest: string, now: number): Entry | undefined {
    let map = this.active
    let e = map.get(digest)
    if (e === undefined) {
      map = this.inactive
      e = map.get(digest)
      if (e === undefined) return undefined
    }
    if (e.expiresAt > now) return e
    map.delete(digest)
    return undefined
  }

  set (digest: string, e: Entry, active: boolean): void {
    const map = active ? this.active : this.inactive
    ;(active ? this.inactive : this.active).delete(digest)
    map.delete(digest)
    if (map.size >= this.size) {
      const oldest = map.keys().next()
      if (oldest.done !== true) map.delete(oldest.value)
    }
    map.set(digest, e)
  }
}

const caches = new Map<string, ResultCache>()

function formEncode (s: string): string {
  return new URLSearchParams({ v: s }).toString().slice(2)
}

function readSecret (config: OAuth2IntrospectionConfig, configDir: string): string {
  const inline = config.clientSecret
  const file = config.clientSecretFile
  if (inline !== undefined && file !== undefined) throw new Error('set one of clientSecret and clientSecretFile, not both')
  if (inline !== undefined) return inline
  if (file === undefined) throw new Error('clientSecret or clientSecretFile is required (the gateway authenticates to the introspection endpoint)')
  const path = isAbsolute(file) ? file : resolve(configDir, file)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new Error(`cannot read clientSecretFile ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  const secret = text.replace(/\r?\n$/, '')
  if (secret === '') throw new Error(`clientSecretFile ${path} is empty`)
  if (/[\r\n]/.test(secret)) throw new Error(`clientSecretFile ${path} holds more than one line`)
  return secret
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i

/** Reads at most `max` bytes of a body; more is a failure (the rest is discarded). */
async function readBounded (body: Dispatcher.ResponseData['body'], max: number): Promise<string | undefined> {
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of body) {
    length += (chunk as Buffer).length
    if (length > max) {
      body.destroy()
      return undefined
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, length).toString('utf8')
}

function stringList (v: unknown): readonly string[] | undefined {
  if (typeof v === 'string') return [v]
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[]
  return undefined
}

/**
 * Builds one instance: parses and checks the config, precomputes the request to the
 * endpoint and the answers that do not depend on the token, and returns the hook.
 *
 * Request path, in order: an earlier authn plugin already authenticated -> nothing to do;
 * no Authorization -> MISSING_TOKEN (presented: false); more than one -> 400; not a Bearer
 * token -> MISSING_TOKEN; a malformed one -> 401; then the cache (synchronous: a hit
 * returns nothing, so the runner does not await), else the single-flight call.
 */
export function createOAuth2Introspection (config: OAuth2IntrospectionConfig, api: PluginApi): PluginHooks {
  const secret = readSecret(config, api.configDir)
  const url = new URL(config.endpoint)
  if (url.hash !== '') throw new Error('endpoint must not have a #fragment')
  const timeoutMs = toMs(config.timeout)
  if (timeoutMs < 1 || timeoutMs > 60_000) throw new Error('timeout must be between 1ms and 60s')
  const ttlMs = toMs(config.cacheTtl)
  const negativeTtlMs = toMs(config.negativeCacheTtl)
  if (url.protocol === 'http:' && !LOOPBACK.test(url.hostname) && api.mode === 'dry-run') {
    api.log.warn({ endpoint: url.origin }, 'oauth2-introspection: the endpoint is plain http; tokens and the client secret cross the network unencrypted')
  }

  const origin = url.origin
  const path = url.pathname + url.search
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json'
  }
  // RFC 6749 2.3.1: id and secret are form-encoded, then joined for HTTP Basic.
  if (config.authMethod === 'client_secret_basic') {
    headers.authorization = 'Basic ' + Buffer.from(`${formEncode(config.clientId)}:${formEncode(secret)}`).toString('base64')
  }
  const clientPart = config.authMethod === 'client_secret_post' ? `&client_id=${formEncode(config.clientId)}&client_secret=${formEncode(secret)}` : ''

  const fingerprint = JSON.stringify([origin, path, config.clientId, config.authMethod, hash('sha256', secret, 'hex'), timeoutMs, ttlMs, negativeTtlMs, config.cacheSize])
  let cache = caches.get(fingerprint)
  if (cache === undefined) caches.set(fingerprint, (cache = new ResultCache(config.cacheSize)))
  cache.refs++
  const pool = acquirePool(origin)
  const results: ResultCache = cache
  const log: Logger = api.log

  const registry: ConsumerRegistry = consumersOf(api.gateway)
  const claim = config.consumer.claim
  const lookupIssuer = config.consumer.issuer ?? config.issuer
  const required = config.consumer.required
  const audiences = config.audience === undefined ? undefined : new Set(stringList(config.audience))
  const expectedIssuer = config.issuer
  const hide = config.hideCredentials
  const unavailableStatus = config.onError === 'unavailable' ? 503 : 401

  const realm = `Bearer realm="${config.realm}"`
  const invalidToken = `${realm}, error="invalid_token"`
  const fail = (code: string, detail: string): Decision => ({ ok: false, failure: Object.freeze({ status: 401, code, detail, challenge: invalidToken, presented: true }) })
  const MISSING: AuthFailure = Object.freeze({ status: 401, code: 'MISSING_TOKEN', detail: 'a bearer token is required', challenge: realm, presented: false })
  const AMBIGUOUS: AuthFailure = Object.freeze({ status: 400, code: 'AMBIGUOUS_CREDENTIALS', detail: 'the request has more than one Authorization header', challenge: `${realm}, error="invalid_request"`, presented: true })
  const MALFORMED: AuthFailure = Object.freeze({ status: 401, code: 'INVALID_TOKEN', detail: 'the bearer token is malformed', challenge: invalidToken, presented: true })
  const UNAVAILABLE: AuthFailure = Object.freeze({ status: unavailableStatus, code: 'INTROSPECTION_UNAVAILABLE', detail: 'the token could not be checked: the authorization server did not answer in time or answered with an error', challenge: realm, presented: true })
  const INACTIVE = fail('INACTIVE_TOKEN', 'the token is not active')
  const EXPIRED = fail('TOKEN_EXPIRED', 'the token has expired')
  // The decisions of this instance: the identity of the instance, for Entry.policy.
  const policy = {}

  /** What a response means for this instance. */
  function decide (r: Introspected, now: number): Decision {
    if (r.active !== true) return INACTIVE
    const exp = r.exp
    if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp))) return fail('INVALID_CLAIMS', "the introspection response's exp is not a number")
    if (typeof exp === 'number' && exp * 1000 <= now) return EXPIRED
    if (expectedIssuer !== undefined && r.iss !== expectedIssuer) return fail('WRONG_ISSUER', 'the token was not issued by the expected issuer')
    if (audiences !== undefined) {
      const aud = stringList(r.aud)
      if (aud === undefined || !aud.some((a) => audiences.has(a))) return fail('WRONG_AUDIENCE', 'the token is not meant for this audience')
    }
    let scopes: readonly string[] = []
    if (r.scope !== undefined) {
      if (typeof r.scope !== 'string') return fail('INVALID_CLAIMS', "the introspection response's scope is not a string")
      scopes = Object.freeze(r.scope.split(' ').filter((s) => s !== ''))
    }
    const value = r[claim]
    if (typeof value !== 'string' || value === '') {
      return required ? fail('UNKNOWN_CONSUMER', `the token names no consumer (no '${claim}')`) : fail('MISSING_CLAIM', `the introspection response has no '${claim}'`)
    }
    const issuer = lookupIssuer ?? (typeof r.iss === 'string' ? r.iss : origin)
    const known = registry.bySubject(issuer, value)
    if (known === undefined && required) return fail('UNKNOWN_CONSUMER', 'the token names no configured consumer')
    return {
      ok: true,
      identity: Object.freeze({ id: known?.id ?? value, groups: known?.groups ?? [], scopes, claims: r })
    }
  }

  function apply (ctx: RequestContext, e: Entry, now: number): void {
    let d = e.decision
    if (e.policy !== policy || d === undefined) {
      d = decide(e.response, now)
      e.policy = policy
      e.decision = d
    }
    if (d.ok) {
      ctx.authenticate(d.identity)
      if (hide) ctx.removeUpstreamHeader('authorization')
    } else {
      ctx.authFailed(d.failure)
    }
  }

  function warn (reason: string): void {
    const now = Date.now()
    if (now - results.lastLog < LOG_EVERY_MS) {
      results.suppressed++
      return
    }
    log.warn({ endpoint: origin + url.pathname, reason, suppressed: results.suppressed }, 'oauth2-introspection: the introspection endpoint failed; requests are refused')
    results.lastLog = now
    results.suppressed = 0
  }

  /** One call to the endpoint. Never rejects: a failure is a result, and never cached. */
  /** One call, counted by result (tollgate_introspection_requests_total). */
  async function call (token: string, digest: string): Promise<CallResult> {
    const r = await callOnce(token, digest)
    threadMetrics().add(FIXED.introspection + ('error' in r ? 2 : r.entry.response.active === true ? 0 : 1))
    return r
  }

  async function callOnce (token: string, digest: string): Promise<CallResult> {
    let text: string | undefined
    try {
      const res = await pool.request({
        method: 'POST',
        path,
        headers,
        body: `token=${formEncode(token)}&token_type_hint=access_token${clientPart}`,
        // The signal bounds the whole call; the undici timeouts only its parts.
        signal: AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs
      })
      if (res.statusCode !== 200) {
        res.body.dump().catch(() => {})
        return { error: `status ${res.statusCode}` }
      }
      const length = Number(res.headers['content-length'])
      if (length > MAX_BODY) {
        res.body.destroy()
        return { error: `response larger than ${MAX_BODY} bytes` }
      }
      text = await readBounded(res.body, MAX_BODY)
      if (text === undefined) return { error: `response larger than ${MAX_BODY} bytes` }
    } catch (err) {
      const e = err as Error & { code?: string }
      return { error: e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : (e.code ?? e.name) }
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      // Not the parser's message: it quotes the body.
      return { error: 'response is not JSON' }
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { error: 'response is not a JSON object' }
    const response: Introspected = Object.freeze(parsed as Record<string, unknown>)
    const now = Date.now()
    const exp = response.exp
    let expiresAt: number
    const active = response.active === true && !(typeof exp === 'number' && exp * 1000 <= now)
    if (active) {
      // RFC 7662 4: a cached answer must not outlive the token (exp), nor the configured TTL.
      expiresAt = now + ttlMs
      if (typeof exp === 'number' && exp * 1000 < expiresAt) expiresAt = exp * 1000
    } else {
      expiresAt = now + negativeTtlMs
    }
    const entry: Entry = { response, expiresAt, policy: undefined, decision: undefined }
    if (expiresAt > now) results.set(digest, entry, active)
    return { entry }
  }

  function introspect (token: string, digest: string): Promise<CallResult> {
    let p = results.inflight.get(digest)
    if (p === undefined) {
      p = call(token, digest)
      results.inflight.set(digest, p)
      void p.then((r) => {
        results.inflight.delete(digest)
        if ('error' in r) warn(r.error)
      })
    }
    return p
  }

  return {
    onRequest (ctx) {
      if (ctx.consumer !== undefined) return
      // Node keeps only the first of repeated Authorization lines in ctx.headers, so the
      // distinct values are read for the count; a request without one costs one lookup.
      if (ctx.headers.authorization === undefined) {
        ctx.authFailed(MISSING)
        return
      }
      const values = ctx.headerValues('authorization')
      if (values.length > 1) {
        ctx.authFailed(AMBIGUOUS)
        return
      }
      const value = values[0] ?? ''
      const m = value.length > MAX_CREDENTIAL ? null : BEARER.exec(value)
      if (m === null) {
        ctx.authFailed(BEARER_SCHEME.test(value) ? MALFORMED : MISSING)
        return
      }
      const token = m[1] as string
      const digest = hash('sha256', token, 'base64')
      const now = Date.now()
      const hit = results.get(digest, now)
      threadMetrics().add(FIXED.introspectionCache + (hit !== undefined ? 0 : 1))
      if (hit !== undefined) {
        apply(ctx, hit, now)
        return
      }
      return introspect(token, digest).then((r) => {
        if ('error' in r) ctx.authFailed(UNAVAILABLE)
        else apply(ctx, r.entry, Date.now())
      })
    },
    close () {
      releasePool(origin)
      if (--results.refs === 0 && caches.get(fingerprint) === results) caches.delete(fingerprint)
    }
  }
}

/** White-box access for the tests: this thread's result caches and pools. */
export const kTestInternals = { caches, pools }

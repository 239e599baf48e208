import { createHash, createPublicKey, webcrypto } from 'node:crypto'
import { FIXED } from '../../src/metrics/layout.js'
import { threadMetrics } from '../../src/metrics/writer.js'
import type { JsonWebKey } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { isAbsolute, resolve } from 'node:path'
import { createRemoteJWKSet, customFetch, importJWK, jwtVerify } from 'jose'
import type { CryptoKey, JWK, JWTPayload, JWTVerifyGetKey, JWTVerifyOptions } from 'jose'
import type { Logger } from 'pino'
import { consumersOf } from '../../src/auth/registry.js'
import { toMs } from '../../src/duration.js'
import { HOP_BY_HOP, isSafeHeaderValue } from '../../src/headers.js'
import { takeParam } from '../../src/query.js'
import { kTestInternals } from '../../src/symbols.js'
import type { AuthFailure, ConsumerIdentity, PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import type { Algorithm, IssuerConfig, JwtAuthConfig, KeyConfig } from './schema.js'

/* --------------------------------- JWKS sets --------------------------------- */

type RemoteSet = ReturnType<typeof createRemoteJWKSet>

/** A remote key set as every instance in this thread shares it. */
interface SharedJwks {
  readonly id: string
  readonly set: RemoteSet
  readonly cacheMaxAgeMs: number
  /** Instances (of any generation) using it; the set is dropped when none does. */
  refs: number
  /** Date.now() when the last good set arrived (0: none yet). Keys from it are used until
   *  fetchedAt + cacheMaxAge, so no verified-token cache entry may outlive that. */
  fetchedAt: number
}

/*
 * One RemoteJWKSet per URL and options per thread, shared by every instance of every
 * generation. A reload makes new plugin instances, and they find the set (and its keys)
 * already here, so 100 reloads cost no fetch (CHECKLIST C14). jose's set does the caching:
 *
 *   fresh (fetched < cacheMaxAge ago) ---- kid known ----------------------> key, no fetch
 *          |                          \--- kid unknown, last fetch < cooldown -> no key (401)
 *          |                           \-- kid unknown, otherwise ---------> refetch once
 *   stale -+-------------------------------------------------------------> refetch
 *
 * jose only remembers successful fetches, so against a key source that is down every
 * request with an unknown kid (or every request, once the keys are stale) would try again.
 * The fetch below therefore refuses to touch the network for cooldownDuration after a
 * failure: whatever the traffic, a worker fetches at most once per cooldown.
 */
const sharedSets = new Map<string, SharedJwks>()

/** What the key resolver throws when the key source could not be reached: 503, not 401. */
const KEY_SOURCE_DOWN = new Error('the JWKS could not be fetched')
const MAX_JWKS_CHARS = 1 << 20

interface JwksOptions { url: URL, timeoutMs: number, cooldownMs: number, cacheMaxAgeMs: number }

function acquireJwks (o: JwksOptions, log: Logger): { shared: SharedJwks, created: boolean } {
  const id = `${o.url.href} ${o.timeoutMs} ${o.cooldownMs} ${o.cacheMaxAgeMs}`
  const found = sharedSets.get(id)
  if (found !== undefined) {
    found.refs++
    return { shared: found, created: false }
  }
  let failedAt = Number.NEGATIVE_INFINITY
  const state = { fetchedAt: 0 }
  const fetchJwks = async (href: string, init: RequestInit): Promise<Response> => {
    if (Date.now() - failedAt < o.cooldownMs) throw KEY_SOURCE_DOWN
    internals.fetches++
    try {
      const res = await fetch(href, init)
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`)
      const text = await res.text()
      if (text.length > MAX_JWKS_CHARS) throw new Error('larger than 1 MiB')
      const json = JSON.parse(text) as { keys?: unknown }
      if (json === null || typeof json !== 'object' || !Array.isArray(json.keys)) throw new Error('not a JSON Web Key Set')
      state.fetchedAt = Date.now()
      threadMetrics().add(FIXED.jwksFetches)
      return new Response(text, { status: 200, headers: { 'content-type': 'application/json' } })
    } catch (err) {
      failedAt = Date.now()
      threadMetrics().add(FIXED.jwksFetches + 1)
      log.warn({ jwks: href, reason: (err as Error).message }, 'JWKS fetch failed: cached keys stay in use until cacheMaxAge; next try after cooldownDuration')
      throw err
    }
  }
  const set = createRemoteJWKSet(o.url, {
    timeoutDuration: o.timeoutMs,
    cooldownDuration: o.cooldownMs,
    cacheMaxAge: o.cacheMaxAgeMs,
    [customFetch]: fetchJwks
  })
  const shared: SharedJwks = {
    id,
    set,
    cacheMaxAgeMs: o.cacheMaxAgeMs,
    refs: 1,
    get fetchedAt () { return state.fetchedAt }
  }
  sharedSets.set(id, shared)
  return { shared, created: true }
}

function releaseJwks (s: SharedJwks): void {
  if (--s.refs === 0 && sharedSets.get(s.id) === s) sharedSets.delete(s.id)
}

/** The key resolver jose calls for an issuer with a JWKS: key-source failures become 503s. */
function jwksResolver (s: SharedJwks): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await s.set(header, token)
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code
      if (code === 'ERR_JWKS_NO_MATCHING_KEY' || code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw err
      throw KEY_SOURCE_DOWN
    }
  }
}

const internals = { verifications: 0, fetches: 0, sharedSets }
/** White-box counters for the tests (this thread only): signature verifications started,
 *  JWKS fetches that went to the network, and the shared sets. */
export const jwtAuthInternals: { readonly [kTestInternals]: typeof internals } = { [kTestInternals]: internals }

/* -------------------------------- static keys -------------------------------- */

type Loaded =
  | { where: string, kid: string | undefined, alg: string | undefined, secret: Uint8Array, jwk?: undefined }
  | { where: string, kid: string | undefined, alg: string | undefined, jwk: JWK, secret?: undefined }

async function readText (file: string, dir: string, where: string): Promise<string> {
  const path = isAbsolute(file) ? file : resolve(dir, file)
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new Error(`${where}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

function publicJwk (key: Parameters<typeof createPublicKey>[0], where: string, what: string): JWK {
  try {
    return createPublicKey(key).export({ format: 'jwk' }) as JWK
  } catch (err) {
    throw new Error(`${where}: not a usable ${what}: ${(err as Error).message}`)
  }
}

async function loadKey (k: KeyConfig, where: string, dir: string): Promise<Loaded> {
  const given = (['pem', 'pemFile', 'jwk', 'secret', 'secretFile'] as const).filter((n) => k[n] !== undefined)
  if (given.length !== 1) throw new Error(`${where}: give exactly one of pem, pemFile, jwk, secret, secretFile${given.length > 1 ? ` (got ${given.join(', ')})` : ''}`)
  const isSecret = k.secret !== undefined || k.secretFile !== undefined
  if (k.encoding !== undefined && !isSecret) throw new Error(`${where}: encoding applies to secret and secretFile only`)
  if (k.pem !== undefined || k.pemFile !== undefined) {
    const text = k.pem ?? await readText(k.pemFile as string, dir, where)
    if (/PRIVATE KEY-----/.test(text)) throw new Error(`${where}: this is a private key; give the public key or certificate`)
    return { where, kid: k.kid, alg: undefined, jwk: publicJwk(text, where, 'PEM public key or certificate') }
  }
  if (k.jwk !== undefined) {
    const jwk = k.jwk
    const kid = k.kid ?? (typeof jwk.kid === 'string' && jwk.kid !== '' ? jwk.kid : undefined)
    const alg = typeof jwk.alg === 'string' ? jwk.alg : undefined
    if (jwk.kty === 'oct') {
      if (typeof jwk.k !== 'string' || jwk.k === '') throw new Error(`${where}: an oct JWK needs its k`)
      return { where, kid, alg, secret: new Uint8Array(Buffer.from(jwk.k, 'base64url')) }
    }
    if ('d' in jwk) throw new Error(`${where}: this JWK is a private key; give the public key only`)
    return { where, kid, alg, jwk: publicJwk({ key: jwk as JsonWebKey, format: 'jwk' }, where, 'public JWK') }
  }
  let raw = k.secret ?? await readText(k.secretFile as string, dir, where)
  if (k.secret === undefined) raw = raw.replace(/\r?\n$/, '')
  // A public key is public: as an HMAC secret it lets anyone sign (the key-confusion attack).
  if (raw.includes('-----BEGIN ')) throw new Error(`${where}: this looks like a PEM key, not a shared secret; a public key goes in pem`)
  return { where, kid: k.kid, alg: undefined, secret: new Uint8Array(Buffer.from(raw, k.encoding ?? 'utf8')) }
}

const CURVES: Partial<Record<Algorithm, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521', EdDSA: 'Ed25519', Ed25519: 'Ed25519' }

function isHmac (alg: string): boolean { return alg.startsWith('HS') }

function needs (alg: Algorithm): string {
  if (isHmac(alg)) return `a shared secret of at least ${Number(alg.slice(2)) / 8} bytes (secret, secretFile or an oct jwk)`
  if (alg.startsWith('RS') || alg.startsWith('PS')) return 'an RSA public key'
  return `an ${alg.startsWith('ES') ? 'EC' : 'OKP'} ${CURVES[alg] ?? ''} public key`
}

function describe (l: Loaded): string {
  if (l.secret !== undefined) return 'a shared secret'
  const crv = typeof l.jwk.crv === 'string' ? ` ${l.jwk.crv}` : ''
  return `an ${l.jwk.kty ?? '?'}${crv} public key`
}

function fits (alg: Algorithm, l: Loaded): boolean {
  if (l.alg !== undefined && l.alg !== alg) return false
  if (isHmac(alg)) return l.secret !== undefined
  if (l.jwk === undefined) return false
  if (alg.startsWith('RS') || alg.startsWith('PS')) return l.jwk.kty === 'RSA'
  return (l.jwk.kty === (alg.startsWith('ES') ? 'EC' : 'OKP')) && l.jwk.crv === CURVES[alg]
}

function importFor (alg: Algorithm, l: Loaded): Promise<CryptoKey> {
  if (l.secret !== undefined) {
    // Imported once here; jose would import a raw secret again on every verification.
    return webcrypto.subtle.importKey('raw', l.secret, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']) as Promise<CryptoKey>
  }
  return importJWK(l.jwk, alg) as Promise<CryptoKey>
}

/** An issuer's static keys for one algorithm. `kid` is only ever a key into `byKid`. */
interface AlgKeys { byKid: Map<string, CryptoKey>, noKid: CryptoKey | undefined, only: CryptoKey | undefined }

async function staticKeys (cfg: IssuerConfig, where: string, dir: string): Promise<Map<string, AlgKeys>> {
  const loaded: Loaded[] = []
  for (const [i, k] of (cfg.keys ?? []).entries()) loaded.push(await loadKey(k, `${where}/keys/${i}`, dir))
  for (const l of loaded) {
    if (l.alg !== undefined && !(cfg.algorithms as string[]).includes(l.alg)) throw new Error(`${l.where}: the JWK's alg ${l.alg} is not among the issuer's algorithms (${cfg.algorithms.join(', ')})`)
    if (!cfg.algorithms.some((a) => fits(a, l))) {
      throw new Error(`${l.where}: ${describe(l)} fits none of the issuer's algorithms (${cfg.algorithms.join(', ')})${l.secret !== undefined ? '; a secret needs an HS algorithm' : ''}`)
    }
    if (l.jwk?.kty === 'RSA' && Buffer.from(l.jwk.n ?? '', 'base64url').length * 8 < 2048) throw new Error(`${l.where}: RSA keys must be 2048 bits or larger`)
  }
  const out = new Map<string, AlgKeys>()
  for (const alg of cfg.algorithms) {
    const mine = loaded.filter((l) => fits(alg, l))
    if (mine.length === 0) throw new Error(`${where}: ${alg} needs ${needs(alg)} in keys`)
    const keys: AlgKeys = { byKid: new Map(), noKid: undefined, only: undefined }
    for (const l of mine) {
      if (l.secret !== undefined && l.secret.length * 8 < Number(alg.slice(2))) {
        throw new Error(`${l.where}: ${alg} needs a secret of at least ${Number(alg.slice(2)) / 8} bytes (RFC 7518 §3.2); this one has ${l.secret.length}`)
      }
      const key = await importFor(alg, l)
      if (l.kid === undefined) {
        if (keys.noKid !== undefined) throw new Error(`${l.where}: several ${alg} keys have no kid; give each a kid`)
        keys.noKid = key
      } else {
        if (keys.byKid.has(l.kid)) throw new Error(`${l.where}: kid '${l.kid}' is used twice for ${alg}`)
        keys.byKid.set(l.kid, key)
      }
      if (mine.length === 1) keys.only = key
    }
    out.set(alg, keys)
  }
  return out
}

function lookup (keys: Map<string, AlgKeys>, alg: string, kid: string | undefined): CryptoKey | undefined {
  const k = keys.get(alg)
  if (k === undefined) return undefined
  if (kid !== undefined) return k.byKid.get(kid) ?? k.noKid
  return k.noKid ?? k.only
}

/* ---------------------------------- issuers ---------------------------------- */

interface Issuer {
  readonly name: string
  readonly algorithms: ReadonlySet<string>
  /** Static keys, by algorithm; undefined for a JWKS issuer. */
  readonly keys: Map<string, AlgKeys> | undefined
  readonly jwks: SharedJwks | undefined
  readonly resolver: JWTVerifyGetKey | undefined
  readonly options: JWTVerifyOptions
  readonly maxTokenAgeMs: number | undefined
  /** Longest a verified token from this issuer stays cached. */
  readonly cacheMs: number
  /** Seconds until its key source is tried again at the latest (JWKS issuers), for Retry-After. */
  readonly retryAfterS: number
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/

function jwksOptions (cfg: IssuerConfig, where: string): JwksOptions {
  const j = cfg.jwks
  if (j === undefined) throw new Error(`${where}: no jwks`)
  let url: URL
  try {
    url = new URL(j.url)
  } catch {
    throw new Error(`${where}/jwks/url: not a URL: ${j.url}`)
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.test(url.hostname))) {
    throw new Error(`${where}/jwks/url: must be https:// (http:// only for a loopback host), got ${url.protocol}//${url.host}`)
  }
  if (url.username !== '' || url.password !== '') throw new Error(`${where}/jwks/url: credentials in the URL are not allowed`)
  const timeoutMs = toMs(j.timeoutDuration)
  const cooldownMs = toMs(j.cooldownDuration)
  const cacheMaxAgeMs = toMs(j.cacheMaxAge)
  if (timeoutMs < 100) throw new Error(`${where}/jwks/timeoutDuration: must be at least 100ms`)
  if (cooldownMs < 1000) throw new Error(`${where}/jwks/cooldownDuration: must be at least 1s (it bounds the fetches that unknown kids can cause)`)
  if (cacheMaxAgeMs < 1000) throw new Error(`${where}/jwks/cacheMaxAge: must be at least 1s`)
  return { url, timeoutMs, cooldownMs, cacheMaxAgeMs }
}

/* --------------------------------- the plugin -------------------------------- */

/** What a verified token grants: kept in the cache, applied to each request it comes with. */
interface Grant {
  readonly identity: ConsumerIdentity
  readonly headers: ReadonlyArray<readonly [string, string]>
  /** Date.now() bounds within which the grant holds. */
  readonly notBefore: number
  readonly until: number
}

type Outcome = Grant | AuthFailure

interface Checked { issuer: Issuer, key: CryptoKey | undefined }

// Compact JWS: three base64url parts, the signature not empty. Linear: no part contains a dot.
const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/
const MAX_KID = 256

function decodePart (part: string): Record<string, unknown> | undefined {
  if (part.length % 4 === 1) return undefined
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

function deepFreeze<T> (v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}

/** A claim as one header value: strings, numbers, booleans, or a list of them joined. */
function headerText (v: unknown): string | undefined {
  if (typeof v === 'string') return v
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : undefined
  if (typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) {
    const parts: string[] = []
    for (const x of v) {
      if (typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x))) parts.push(String(x))
      else return undefined
    }
    return parts.join(', ')
  }
  return undefined
}

/** `scope` (space-separated) or `scp` (string or array), each scope an RFC 6749 scope-token. */
function scopesOf (p: JWTPayload): readonly string[] | undefined {
  const raw = p.scope !== undefined ? p.scope : p.scp
  if (raw === undefined) return Object.freeze([])
  let list: unknown[]
  if (typeof raw === 'string') list = raw.split(' ').filter((s) => s !== '')
  else if (Array.isArray(raw)) list = raw
  else return undefined
  for (const s of list) if (typeof s !== 'string' || !SCOPE_TOKEN.test(s)) return undefined
  return Object.freeze(list as string[])
}

/** Header names a claim may not be forwarded in: framing, routing, credentials, and what the
 *  gateway itself sets. */
function forbiddenHeaders (api: PluginApi): Set<string> {
  const h = api.gateway.identity.headers
  return new Set([
    ...HOP_BY_HOP, 'host', 'content-length', 'content-type', 'expect', 'authorization', 'cookie',
    'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip',
    h.id.toLowerCase(), h.groups.toLowerCase(), h.scope.toLowerCase(), h.anonymous.toLowerCase()
  ])
}

/**
 * Builds the plugin once per worker per generation: keys imported, JWKS sets shared, every
 * answer it can give made up front. Per request: the token is found and size-checked, then
 * looked up by SHA-256 in the verified-token cache (a hit stays sync); a miss is checked
 * without crypto (shape, header, issuer, algorithm, key) before jose verifies it.
 */
export async function createJwtAuth (config: JwtAuthConfig, api: PluginApi): Promise<PluginHooks> {
  const realm = config.realm
  const tolMs = toMs(config.clockTolerance)
  const cacheMaxMs = toMs(config.cache.maxAge)
  const { header: fromHeader, cookie, query, maxBytes } = config.token
  const hideCredentials = config.hideCredentials
  if (!fromHeader && cookie === undefined && query === undefined) throw new Error('/token: no token source: header is false and neither cookie nor query is set')

  const forbidden = forbiddenHeaders(api)
  const forward: Array<[string, string]> = []
  const seenHeaders = new Set<string>()
  for (const [claim, name] of Object.entries(config.forwardClaims)) {
    const lower = name.toLowerCase()
    if (forbidden.has(lower)) throw new Error(`/forwardClaims/${claim}: ${name} cannot carry a claim (the gateway or HTTP framing owns it)`)
    if (seenHeaders.has(lower)) throw new Error(`/forwardClaims/${claim}: ${name} is used by two claims`)
    seenHeaders.add(lower)
    forward.push([claim, lower])
  }
  const forwardNames = forward.map(([, n]) => n)

  const issuers = new Map<string, Issuer>()
  const acquired: SharedJwks[] = []
  try {
    for (const [i, cfg] of config.issuers.entries()) {
      const where = `/issuers/${i}`
      if (issuers.has(cfg.issuer)) throw new Error(`${where}: issuer '${cfg.issuer}' is listed twice`)
      if ((cfg.keys === undefined) === (cfg.jwks === undefined)) throw new Error(`${where}: give keys or jwks${cfg.keys !== undefined ? ', not both' : ''}`)
      let keys: Map<string, AlgKeys> | undefined
      let jwks: SharedJwks | undefined
      let cacheMs = cacheMaxMs
      let retryAfterS = 0
      if (cfg.jwks !== undefined) {
        const hs = cfg.algorithms.find(isHmac)
        if (hs !== undefined) throw new Error(`${where}: ${hs} needs a shared secret in keys; a JWKS URL cannot carry one`)
        const o = jwksOptions(cfg, where)
        const got = acquireJwks(o, api.log)
        jwks = got.shared
        acquired.push(jwks)
        cacheMs = Math.min(cacheMs, o.cacheMaxAgeMs)
        retryAfterS = Math.ceil(o.cooldownMs / 1000)
        // Fetched ahead of the first request, in workers only: a dry run never fetches.
        if (got.created && api.mode === 'worker') jwks.set.reload().catch(() => {})
      } else {
        keys = await staticKeys(cfg, where, api.configDir)
      }
      const maxTokenAgeMs = cfg.maxTokenAge === undefined ? undefined : toMs(cfg.maxTokenAge)
      issuers.set(cfg.issuer, Object.freeze({
        name: cfg.issuer,
        algorithms: new Set(cfg.algorithms),
        keys,
        jwks,
        resolver: jwks === undefined ? undefined : jwksResolver(jwks),
        maxTokenAgeMs,
        cacheMs,
        retryAfterS,
        options: Object.freeze({
          algorithms: [...cfg.algorithms],
          issuer: cfg.issuer,
          audience: cfg.audience,
          typ: cfg.typ,
          clockTolerance: tolMs / 1000,
          maxTokenAge: maxTokenAgeMs === undefined ? undefined : maxTokenAgeMs / 1000,
          requiredClaims: [...new Set([...(config.requireExp ? ['exp'] : []), ...cfg.requiredClaims])]
        })
      }))
    }
  } catch (err) {
    for (const s of acquired) releaseJwks(s)
    throw err
  }

  const registry = consumersOf(api.gateway)
  const { claim: consumerClaim, required: consumerRequired } = config.consumer

  /* Every answer, made once. Details are RFC 6750 error_description text: no quotes. */
  const challenge = (error: string, detail: string): string => `Bearer realm="${realm}", error="${error}", error_description="${detail}"`
  const bad = (code: string, detail: string): AuthFailure => Object.freeze({ status: 401, code, detail, challenge: challenge('invalid_token', detail), presented: true })
  const F = {
    MISSING: Object.freeze<AuthFailure>({ status: 401, code: 'MISSING_TOKEN', detail: 'a bearer token is required', challenge: `Bearer realm="${realm}"`, presented: false }),
    AMBIGUOUS: Object.freeze<AuthFailure>({ status: 400, code: 'AMBIGUOUS_CREDENTIALS', detail: 'the request carries more than one bearer token', challenge: challenge('invalid_request', 'the request carries more than one bearer token'), presented: true }),
    TOO_LARGE: bad('TOKEN_TOO_LARGE', `the token is larger than ${maxBytes} bytes`),
    MALFORMED: bad('INVALID_TOKEN', 'the token is not a well-formed signed JWT'),
    BAD_KID: bad('INVALID_TOKEN', 'the kid header is not a usable key id'),
    ALG: bad('INVALID_TOKEN', "the token's algorithm is not allowed for its issuer"),
    SIGNATURE: bad('INVALID_TOKEN', 'the token signature is invalid'),
    UNSUPPORTED: bad('INVALID_TOKEN', 'the token is malformed or uses an unsupported feature'),
    NO_ISSUER: bad('UNKNOWN_ISSUER', 'the token names no issuer'),
    UNKNOWN_ISSUER: bad('UNKNOWN_ISSUER', "the token's issuer is not trusted here"),
    UNKNOWN_KEY: bad('UNKNOWN_KEY', "no key of the token's issuer matches its kid and algorithm"),
    MANY_KEYS: bad('UNKNOWN_KEY', 'several keys match the token; it must name its key with kid'),
    EXPIRED: bad('TOKEN_EXPIRED', 'the token has expired'),
    TOO_OLD: bad('TOKEN_EXPIRED', 'the token is older than the issuer allows (maxTokenAge)'),
    IAT_FUTURE: bad('INVALID_CLAIM', 'the token was issued in the future (iat)'),
    UNKNOWN_CONSUMER: bad('UNKNOWN_CONSUMER', 'the token names no known consumer'),
    CONSUMER_CLAIM: bad('INVALID_CLAIM', `the ${consumerClaim} claim must be a non-empty string that can be sent in a header`),
    CONSUMER_TAKEN: bad('UNKNOWN_CONSUMER', `the ${consumerClaim} claim names a configured consumer that this issuer is not mapped to`),
    SCOPES: bad('INVALID_CLAIM', 'the scope or scp claim is not a list of scope tokens'),
    JWKS: Object.freeze<AuthFailure>({ status: 503, code: 'JWKS_UNAVAILABLE', detail: "the issuer's keys could not be fetched", presented: true })
  }
  const claimFailures = new Map<string, AuthFailure>()
  const claimFailure = (claim: string, reason: string): AuthFailure => {
    const id = `${claim} ${reason}`
    let f = claimFailures.get(id)
    if (f === undefined) {
      const detail = claim === 'typ'
        ? 'the token typ header is not the required one'
        : claim === 'nbf' && reason === 'check_failed'
          ? 'the token is not valid yet (nbf)'
          : claim === 'iat' && reason === 'check_failed'
            ? 'the token was issued in the future (iat)'
            : claim === 'aud' && reason === 'check_failed'
              ? 'the token is not meant for this audience (aud)'
              : `the ${claim} claim is ${reason === 'missing' ? 'missing' : 'not valid'}`
      f = bad('INVALID_CLAIM', detail)
      claimFailures.set(id, f)
    }
    return f
  }
  // 503s say when the key source will be tried again: at most one cooldown from now.
  const unavailable = new Map([...issuers.values()].filter((i) => i.jwks !== undefined).map((i) => [i, Object.freeze<AuthFailure>({ ...F.JWKS, headers: { 'retry-after': i.retryAfterS } })]))
  const forwardFailures = new Map(forward.map(([claim]) => [claim, bad('INVALID_CLAIM', `the ${claim} claim cannot be forwarded (not a string, number, boolean or list of these, or not safe in a header)`)]))

  const failureOf = (err: unknown): AuthFailure => {
    if (err === KEY_SOURCE_DOWN) return F.JWKS
    const e = err as { code?: unknown, claim?: unknown, reason?: unknown } | null
    switch (e?.code) {
      case 'ERR_JWT_EXPIRED': return e.claim === 'iat' ? F.TOO_OLD : F.EXPIRED
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED': return claimFailure(String(e.claim), String(e.reason))
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED': return F.SIGNATURE
      case 'ERR_JWKS_NO_MATCHING_KEY': return F.UNKNOWN_KEY
      case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS': return F.MANY_KEYS
      case 'ERR_JOSE_ALG_NOT_ALLOWED': return F.ALG
      default:
        if (typeof e?.code !== 'string' || !e.code.startsWith('ERR_J')) api.log.debug({ err }, 'jwt-auth: unexpected verification error')
        return F.UNSUPPORTED
    }
  }

  /* The verified-token cache: SHA-256 of the token -> grant. Bounded; the oldest entry goes
   * first (insertion order), and an entry never outlives the token's exp, its maxTokenAge,
   * cache.maxAge, or the JWKS snapshot its key came from. */
  const cacheEntries = config.cache.entries
  const cache = new Map<string, Grant>()
  const inflight = new Map<string, Promise<Outcome>>()

  const remember = (digest: string, g: Grant): void => {
    if (cacheEntries === 0) return
    if (cache.size >= cacheEntries) {
      const oldest = cache.keys().next()
      if (oldest.done !== true) cache.delete(oldest.value)
    }
    cache.set(digest, g)
  }

  /** After jose verified the signature and the standard claims: what it grants. */
  const admit = (digest: string, iss: Issuer, p: JWTPayload): Outcome => {
    const now = Date.now()
    if (typeof p.iat === 'number' && p.iat * 1000 > now + tolMs) return F.IAT_FUTURE
    const scopes = scopesOf(p)
    if (scopes === undefined) return F.SCOPES
    const subject = p[consumerClaim]
    if (typeof subject !== 'string' || subject === '') return F.CONSUMER_CLAIM
    const claims = deepFreeze(p) as Readonly<Record<string, unknown>>
    let identity: ConsumerIdentity
    const known = registry.bySubject(iss.name, subject)
    if (known !== undefined) {
      identity = Object.freeze({ id: known.id, groups: known.groups, scopes, claims })
    } else if (consumerRequired) {
      return F.UNKNOWN_CONSUMER
    } else {
      if (subject.length > 256 || !isSafeHeaderValue(subject)) return F.CONSUMER_CLAIM
      // A token this issuer's subjects do not map must not pass for a configured consumer.
      if (registry.byId.has(subject)) return F.CONSUMER_TAKEN
      identity = Object.freeze({ id: subject, groups: Object.freeze([]), scopes, claims })
    }
    const headers: Array<readonly [string, string]> = []
    for (const [claim, name] of forward) {
      const v = p[claim]
      if (v === undefined || v === null) continue
      const text = headerText(v)
      if (text === undefined || !isSafeHeaderValue(text)) return forwardFailures.get(claim) as AuthFailure
      if (text !== '') headers.push([name, text])
    }
    let until = now + iss.cacheMs
    if (iss.jwks !== undefined) until = Math.min(until, iss.jwks.fetchedAt + iss.jwks.cacheMaxAgeMs)
    if (typeof p.exp === 'number') until = Math.min(until, p.exp * 1000 + tolMs)
    if (iss.maxTokenAgeMs !== undefined && typeof p.iat === 'number') until = Math.min(until, p.iat * 1000 + iss.maxTokenAgeMs + tolMs)
    const grant: Grant = Object.freeze({
      identity,
      headers: Object.freeze(headers),
      notBefore: typeof p.nbf === 'number' ? p.nbf * 1000 - tolMs : 0,
      until
    })
    if (until > now) remember(digest, grant)
    return grant
  }

  const verify = async (token: string, digest: string, c: Checked): Promise<Outcome> => {
    internals.verifications++
    let payload: JWTPayload
    try {
      payload = (await jwtVerify(token, c.key ?? c.issuer.resolver as JWTVerifyGetKey, c.issuer.options)).payload
    } catch (err) {
      const f = failureOf(err)
      return f === F.JWKS ? unavailable.get(c.issuer) ?? f : f
    }
    return admit(digest, c.issuer, payload)
  }

  /** Everything that can be refused without crypto, in order of cost. */
  const check = (token: string): Checked | AuthFailure => {
    if (!JWS_SHAPE.test(token)) return F.MALFORMED
    const dot1 = token.indexOf('.')
    const dot2 = token.indexOf('.', dot1 + 1)
    const header = decodePart(token.slice(0, dot1))
    if (header === undefined || typeof header.alg !== 'string') return F.MALFORMED
    // jku, x5u, jwk and x5c are never read: keys come from the config only (RFC 8725 §3.10).
    const kid = header.kid
    if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID)) return F.BAD_KID
    const payload = decodePart(token.slice(dot1 + 1, dot2))
    if (payload === undefined) return F.MALFORMED
    // The unverified iss only picks the issuer; jose then checks iss against it.
    if (typeof payload.iss !== 'string') return F.NO_ISSUER
    const issuer = issuers.get(payload.iss)
    if (issuer === undefined) return F.UNKNOWN_ISSUER
    if (!issuer.algorithms.has(header.alg)) return F.ALG
    if (issuer.keys === undefined) return { issuer, key: undefined }
    const key = lookup(issuer.keys, header.alg, kid)
    return key === undefined ? F.UNKNOWN_KEY : { issuer, key }
  }

  /** The request's one token, or why there is none. RFC 6750 §2: one method per request. */
  const readToken = (ctx: RequestContext): string | AuthFailure => {
    let found: string | undefined
    let count = 0
    if (fromHeader && ctx.headers.authorization !== undefined) {
      const lines = ctx.headerValues('authorization')
      if (lines.length > 1) return F.AMBIGUOUS
      const v = lines[0] ?? ctx.headers.authorization
      // `Bearer` is case-insensitive (RFC 9110 §11.1); another scheme is not ours.
      if (v.length >= 6 && (v.startsWith('Bearer') || v.slice(0, 6).toLowerCase() === 'bearer')) {
        if (v.length === 6) found = ''
        else if (v.charCodeAt(6) === 32) found = v.slice(7).trim()
        if (found !== undefined) count++
      }
    }
    if (cookie !== undefined) {
      for (const line of ctx.headerValues('cookie')) {
        for (const pair of line.split(';')) {
          const eq = pair.indexOf('=')
          // An empty cookie (`session=`, as after a logout) is no token.
          if (eq !== -1 && pair.slice(0, eq).trim() === cookie) {
            const v = pair.slice(eq + 1).trim()
            if (v !== '') {
              found = v
              count++
            }
          }
        }
      }
    }
    if (query !== undefined && ctx.query !== '') {
      // An empty value is no token; a malformed escape is a value no JWT can match.
      for (const v of takeParam(ctx.query, query).values) {
        if (v === '') continue
        found = v
        count++
      }
    }
    if (count > 1) return F.AMBIGUOUS
    if (found === undefined) return F.MISSING
    return found === '' ? F.MALFORMED : found
  }

  /** hideCredentials: the token does not go upstream, whoever authenticated the request. */
  const hide = (ctx: RequestContext): void => {
    const auth = ctx.headers.authorization
    if (fromHeader && auth !== undefined && auth.length >= 6 && auth.slice(0, 6).toLowerCase() === 'bearer') ctx.removeUpstreamHeader('authorization')
    if (cookie !== undefined && ctx.headers.cookie !== undefined) {
      const kept = ctx.headers.cookie.split(';').filter((pair) => { const eq = pair.indexOf('='); return eq === -1 || pair.slice(0, eq).trim() !== cookie })
      if (kept.length === 0) ctx.removeUpstreamHeader('cookie')
      else ctx.setUpstreamHeader('cookie', kept.map((p) => p.trim()).join('; '))
    }
    if (query !== undefined && ctx.upstreamQuery !== '') {
      // From what goes upstream so far: another plugin may have removed its own parameter.
      const q = takeParam(ctx.upstreamQuery, query)
      if (q.values.length > 0) ctx.setUpstreamQuery(q.rest)
    }
  }

  const grant = (ctx: RequestContext, g: Grant): void => {
    ctx.authenticate(g.identity)
    for (let i = 0; i < g.headers.length; i++) {
      const h = g.headers[i] as readonly [string, string]
      ctx.setUpstreamHeader(h[0], h[1])
    }
  }
  const settle = (ctx: RequestContext, out: Outcome): void => {
    if ('identity' in out) grant(ctx, out)
    else ctx.authFailed(out)
  }

  return {
    onRequest (ctx: RequestContext): void | Promise<void> {
      // Whatever the client sent under a forwarded claim's name never goes upstream.
      for (let i = 0; i < forwardNames.length; i++) ctx.removeUpstreamHeader(forwardNames[i] as string)
      if (hideCredentials) hide(ctx)
      if (ctx.consumer !== undefined) return
      const token = readToken(ctx)
      if (typeof token !== 'string') return ctx.authFailed(token)
      // Before any hashing, decoding or crypto.
      if (token.length > maxBytes) return ctx.authFailed(F.TOO_LARGE)
      const digest = createHash('sha256').update(token).digest('base64')
      const hit = cache.get(digest)
      if (hit !== undefined) {
        const now = Date.now()
        if (now < hit.until && now >= hit.notBefore) return grant(ctx, hit)
        cache.delete(digest)
      }
      let pending = inflight.get(digest)
      if (pending === undefined) {
        const checked = check(token)
        if ('code' in checked) return ctx.authFailed(checked)
        // Concurrent requests with the same new token share one verification.
        const p = verify(token, digest, checked)
        inflight.set(digest, p)
        void p.then(() => { inflight.delete(digest) })
        pending = p
      }
      return pending.then((out) => settle(ctx, out))
    },
    close () {
      for (const s of acquired) releaseJwks(s)
      acquired.length = 0
      cache.clear()
    }
  }
}

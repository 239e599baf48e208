import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { dirname, extname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { createConfigAjv } from './ajv.js'
import { gatewaySchema, HTTP_DEFAULTS } from './config-schema.js'
import { WEBSOCKET_DEFAULTS } from './config-schema.js'
import type { ClientIpConfig, GatewayConfig, RouteConfig, TimeoutsConfig, WebSocketConfig } from './config-schema.js'
import { CidrError, parseCidr } from './ip/parse.js'
import { toMs } from './duration.js'
import { codes } from './errors.js'
import { formatSchemaErrors } from './schema-errors.js'
import { compileRewrite, RewriteError } from './upstream/rewrite.js'
import { checkUpstream } from './upstream/spec.js'
import { SYNC_RANGE, TIMEOUT_RANGE } from './cluster/config.js'
import { parseRedisUrl, RedisUrlError } from './cluster/redis-url.js'
import { checkClusterTls } from './cluster/tls.js'

const ajv = createConfigAjv()
const validateGateway = ajv.compile(gatewaySchema)

/** A config as read from somewhere, before validation. */
export interface RawConfig {
  /** The file it came from, or a label such as `<command line>`; used in every error line. */
  source: string
  /** Directory that relative paths in it resolve against. */
  dir: string
  value: unknown
}

/** Read and parse a YAML or JSON file. Errors name the file. */
export async function readConfigFile (file: string): Promise<RawConfig> {
  const path = resolve(file)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw codes.GW_ERR_CONFIG_READ(file, (err as NodeJS.ErrnoException).code ?? (err as Error).message, { details: [`${file}: cannot read: ${(err as Error).message}`] })
  }
  let value: unknown
  try {
    value = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 })
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0] ?? 'parse error'
    throw codes.GW_ERR_CONFIG_PARSE(file, reason, { details: [`${file}: ${reason}`] })
  }
  return { source: file, dir: dirname(path), value }
}

/**
 * Check a raw config against the gateway schema and return it with defaults filled in and
 * durations in milliseconds. Throws GW_ERR_CONFIG_INVALID listing every problem as
 * `source: /json/path: reason`. Plugin configs are checked later, by the plugin loader,
 * once the plugins' own schemas are known.
 */
export function validateGatewayConfig (raw: RawConfig, opts: { warn?: (msg: string) => void } = {}): GatewayConfig {
  const value = structuredClone(raw.value ?? {})
  if (!validateGateway(value)) {
    const lines = formatSchemaErrors(validateGateway.errors ?? [], value).map((l) => `${raw.source}: ${l}`)
    throw codes.GW_ERR_CONFIG_INVALID(raw.source, lines.length, { details: lines })
  }
  const cfg = value as unknown as GatewayConfig & { workers?: number }
  const problems: string[] = []
  const names = new Set<string>()
  cfg.routes.forEach((r, i) => {
    if (names.has(r.name)) problems.push(`${raw.source}: /routes/${i}/name: route name '${r.name}' is used twice`)
    names.add(r.name)
  })
  const checkProxies = (list: string[] | undefined, at: string): void => {
    list?.forEach((c, i) => {
      try {
        parseCidr(c)
      } catch (err) {
        if (!(err instanceof CidrError)) throw err
        problems.push(`${raw.source}: ${at}/trustedProxies/${i}: ${err.message}`)
      }
    })
  }
  cfg.routes.forEach((r, i) => {
    for (const p of checkUpstream(r.upstream, `/routes/${i}/upstream`)) problems.push(`${raw.source}: ${p}`)
    if (r.rewrite !== undefined) {
      try {
        compileRewrite(r.rewrite.pattern)
      } catch (err) {
        if (!(err instanceof RewriteError)) throw err
        problems.push(`${raw.source}: /routes/${i}/rewrite/pattern: ${err.message}`)
      }
    }
  })
  checkProxies(cfg.clientIp.trustedProxies, '/clientIp')
  cfg.routes.forEach((r, i) => checkProxies((r.clientIp as Partial<ClientIpConfig> | undefined)?.trustedProxies, `/routes/${i}/clientIp`))
  problems.push(...checkConsumers(cfg, raw.source, opts.warn))
  const entries = (cfg as GatewayConfig).counters.entries
  if ((entries & (entries - 1)) !== 0) problems.push(`${raw.source}: /counters/entries: must be a power of two (1024, 2048, ... 2097152)`)
  problems.push(...checkCluster(cfg, raw.source, raw.dir))
  const out = normalize(cfg)
  // Node refuses a headers timeout longer than the request timeout; say so in config terms.
  if (out.limits.headersTimeout > out.limits.requestTimeout) {
    problems.push(`${raw.source}: /limits/headersTimeout: must not be greater than requestTimeout (${out.limits.requestTimeout} ms)`)
  }
  if (problems.length > 0) throw codes.GW_ERR_CONFIG_INVALID(raw.source, problems.length, { details: problems })
  return out
}

/** cluster: a Redis URL of a form we know (its password never echoed), durations in range. */
function checkCluster (cfg: GatewayConfig, source: string, dir: string): string[] {
  const c = cfg.cluster as (Omit<NonNullable<GatewayConfig['cluster']>, 'timeout' | 'syncInterval'> & { timeout: number | string, syncInterval: number | string }) | undefined
  if (c === undefined) return []
  const problems: string[] = []
  try {
    const target = parseRedisUrl(c.redis)
    if (c.tls !== undefined && !(target.kind === 'single' ? /^rediss:/.test(c.redis) : target.tls)) {
      problems.push(`${source}: /cluster/tls: TLS settings need a TLS URL (rediss://, rediss+cluster:// or rediss+sentinel://)`)
    }
  } catch (err) {
    if (!(err instanceof RedisUrlError)) throw err
    problems.push(`${source}: /cluster/redis: ${err.message}`)
  }
  if (c.tls !== undefined) problems.push(...checkClusterTls(c.tls, dir).map((p) => `${source}: ${p}`))
  c.timeout = toMs(c.timeout)
  c.syncInterval = toMs(c.syncInterval)
  if (c.timeout < TIMEOUT_RANGE.min || c.timeout > TIMEOUT_RANGE.max) problems.push(`${source}: /cluster/timeout: must be from 1ms to 10s, got ${c.timeout} ms`)
  if (c.syncInterval < SYNC_RANGE.min || c.syncInterval > SYNC_RANGE.max) problems.push(`${source}: /cluster/syncInterval: must be from 10ms to 10s, got ${c.syncInterval} ms`)
  return problems
}

/** `sha256:<hex>`: how API keys are stored and looked up. */
export function keyDigest (key: string): string {
  return 'sha256:' + createHash('sha256').update(key, 'utf8').digest('hex')
}

/**
 * Consumers: unique ids, each key digest and token subject naming one consumer only, every
 * route's anonymous consumer defined. Plain keys are replaced by their digests here, so a
 * plain key never reaches a worker thread.
 */
function checkConsumers (cfg: GatewayConfig, source: string, warn?: (msg: string) => void): string[] {
  const problems: string[] = []
  const ids = new Map<string, number>()
  const digests = new Map<string, string>()
  const subjects = new Map<string, string>()
  const certificates = new Map<string, string>()
  cfg.consumers.forEach((c, i) => {
    const at = `${source}: /consumers/${i}`
    if (ids.has(c.id)) problems.push(`${at}/id: consumer id '${c.id}' is used twice`)
    ids.set(c.id, i)
    const keys = c.credentials.keys as Array<{ digest?: string, key?: string, name?: string }>
    keys.forEach((k, j) => {
      if ((k.key === undefined) === (k.digest === undefined)) {
        problems.push(`${at}/credentials/keys/${j}: give exactly one of digest and key`)
        return
      }
      if (k.key !== undefined) {
        warn?.(`${at}/credentials/keys/${j}: a plain API key in the config; store its digest instead: ${keyDigest(k.key)}`)
        k.digest = keyDigest(k.key)
        delete k.key
      }
      const d = k.digest as string
      const owner = digests.get(d)
      if (owner !== undefined) problems.push(`${at}/credentials/keys/${j}: the same key is already given to consumer '${owner}'`)
      else digests.set(d, c.id)
    })
    c.credentials.subjects.forEach((s, j) => {
      const key = s.issuer + '\u0000' + s.subject
      const owner = subjects.get(key)
      if (owner !== undefined) problems.push(`${at}/credentials/subjects/${j}: issuer '${s.issuer}' subject '${s.subject}' already names consumer '${owner}'`)
      else subjects.set(key, c.id)
    })
    c.credentials.certificates.forEach((m, j) => {
      const key = `${m.subject ?? ''}\u0000${m.san ?? ''}`
      const owner = certificates.get(key)
      if (owner !== undefined) problems.push(`${at}/credentials/certificates/${j}: the same certificate match already names consumer '${owner}'`)
      else certificates.set(key, c.id)
    })
  })
  cfg.routes.forEach((r, i) => {
    if (r.anonymous !== undefined && !ids.has(r.anonymous)) problems.push(`${source}: /routes/${i}/anonymous: no consumer has the id '${r.anonymous}'`)
  })
  return problems
}

function normalizeTimeouts (t: Record<string, number | string>): TimeoutsConfig {
  return { connect: toMs(t.connect ?? 5000), headers: toMs(t.headers ?? 30000), body: toMs(t.body ?? 30000), total: toMs(t.total ?? 0) }
}

/** `websocket: true` or a block -> limits in ms; false or absent -> undefined (not proxied). */
function normalizeWebSocket (w: unknown): WebSocketConfig | undefined {
  if (w === undefined || w === false) return undefined
  const b = (w === true ? {} : w) as { idleTimeout?: number | string, maxLifetime?: number | string }
  return { idleTimeout: toMs(b.idleTimeout ?? WEBSOCKET_DEFAULTS.idleTimeout), maxLifetime: toMs(b.maxLifetime ?? WEBSOCKET_DEFAULTS.maxLifetime) }
}

function normalize (cfg: GatewayConfig & { workers?: number }): GatewayConfig {
  const limits = cfg.limits as unknown as Record<string, number | string>
  for (const k of ['headersTimeout', 'requestTimeout', 'keepAliveTimeout', 'drainTimeout']) limits[k] = toMs(limits[k] as number | string)
  if (limits.bodyIdleTimeout !== undefined) limits.bodyIdleTimeout = toMs(limits.bodyIdleTimeout)
  cfg.timeouts = normalizeTimeouts(cfg.timeouts as unknown as Record<string, number | string>)
  const otlp = cfg.tracing?.otlp as unknown as Record<string, number | string> | undefined
  if (otlp !== undefined) for (const k of ['flushInterval', 'timeout']) otlp[k] = toMs(otlp[k] as number | string)
  cfg.workers = cfg.workers ?? Math.max(1, availableParallelism())
  const tls = cfg.listen.tls as unknown as Record<string, number | string> | undefined
  if (tls !== undefined) tls.handshakeTimeout = toMs(tls.handshakeTimeout as number | string)
  cfg.routes = cfg.routes.map((r): RouteConfig => {
    const { websocket, ...rest } = r as RouteConfig & { websocket?: unknown }
    const ws = normalizeWebSocket(websocket)
    return {
      ...rest,
      ...(ws === undefined ? {} : { websocket: ws }),
      // A route's own timeouts and client-IP settings override the global ones field by field.
      timeouts: normalizeTimeouts({ ...cfg.timeouts, ...(r.timeouts as unknown as Record<string, number | string>) }),
      maxBodySize: (r.maxBodySize as number | undefined) ?? cfg.limits.maxBodySize ?? HTTP_DEFAULTS.maxBodySize,
      clientIp: { ...cfg.clientIp, ...(r.clientIp as Partial<ClientIpConfig> | undefined) }
    }
  })
  return cfg as GatewayConfig
}

/** A config from command-line flags: one catch-all route to one upstream. */
export function configFromFlags (flags: { upstream: string, host?: string, port?: number, workers?: number, logLevel?: string, plugins: Array<{ name: string, module?: string }> }): RawConfig {
  const value: Record<string, unknown> = {
    listen: { host: flags.host ?? '127.0.0.1', port: flags.port ?? 8080 },
    plugins: flags.plugins.map((p) => (p.module === undefined ? { name: p.name } : { name: p.name, module: p.module })),
    routes: [{ name: 'default', match: { path: '/' }, upstream: flags.upstream }]
  }
  if (flags.workers !== undefined) value.workers = flags.workers
  if (flags.logLevel !== undefined) value.logLevel = flags.logLevel
  return { source: '<command line>', dir: process.cwd(), value }
}

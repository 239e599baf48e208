import { request } from 'undici'
import { isHttpUrl } from '../ajv.js'
import type { ChangeSummary, GatewayStatus, UpdateResult } from '../control/types.js'
import type { UpstreamStatus } from '../upstream/status.js'
import { codes, GatewayError } from '../errors.js'

/** Where `tollgate reload` and `tollgate status` look for the admin API by default. */
export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9901'

export interface AdminResponse { status: number, etag: string | undefined, body: unknown }

/** Same rule as the admin config's token pattern: a b64token, sent unquoted. */
const TOKEN = /^[A-Za-z0-9._~+/-]+=*$/

/**
 * A minimal admin API client for the CLI. Every failure is thrown as one line: a transport
 * failure as `cannot reach the admin API at URL: reason`, an answer that is a problem as a
 * GatewayError with the problem's code and its `problems` as details. The token is sent and
 * never written anywhere.
 */
export class AdminClient {
  readonly url: string
  readonly #base: string
  readonly #token: string | undefined

  constructor (url: string = DEFAULT_ADMIN_URL, token?: string) {
    if (!isHttpUrl(url)) throw codes.GW_ERR_CLI_USAGE(`--admin must be an http:// or https:// URL, got '${url.slice(0, 200)}'`)
    // Not echoed: a token mistyped into the wrong flag is still a secret.
    if (token !== undefined && !TOKEN.test(token)) throw codes.GW_ERR_CLI_USAGE('the admin token (--token or TOLLGATE_ADMIN_TOKEN) has characters a bearer token cannot have')
    this.url = url
    this.#base = url.replace(/\/+$/, '')
    this.#token = token === '' ? undefined : token
  }

  async call (method: 'GET' | 'PUT' | 'POST', path: string, opts: { json?: unknown, headers?: Record<string, string> } = {}): Promise<AdminResponse> {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers }
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`
    let body: string | undefined
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json)
      headers['content-type'] = 'application/json'
    }
    let res: Awaited<ReturnType<typeof request>>
    try {
      res = await request(this.#base + path, { method, headers, body, headersTimeout: 60_000, bodyTimeout: 60_000 })
    } catch (err) {
      throw new Error(`cannot reach the admin API at ${this.url}: ${(err as Error).message}`)
    }
    const text = await res.body.text()
    if (res.statusCode === 401) {
      throw new GatewayError(codes.GW_ERR_ADMIN_AUTH.code, `the admin API at ${this.url} refused the request: ${this.#token === undefined ? 'it needs a token (--token or TOLLGATE_ADMIN_TOKEN)' : 'the token is not valid'}`, 401)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new Error(`the admin API at ${this.url} answered ${res.statusCode} with a body that is not JSON; is this the admin port?`)
    }
    if (res.statusCode >= 400) {
      const p = (parsed ?? {}) as { detail?: unknown, code?: unknown, problems?: unknown }
      const code = typeof p.code === 'string' ? p.code : 'GW_ERR_UPDATE_FAILED'
      const detail = typeof p.detail === 'string' ? p.detail : `HTTP ${res.statusCode}`
      const problems = Array.isArray(p.problems) ? p.problems.map(String) : []
      throw new GatewayError(code, `the admin API refused ${method} ${path} (${res.statusCode}): ${detail}`, res.statusCode, { details: problems })
    }
    const etag = res.headers.etag
    return { status: res.statusCode, etag: typeof etag === 'string' ? etag : undefined, body: parsed }
  }

  async status (): Promise<GatewayStatus> {
    return (await this.call('GET', '/status')).body as GatewayStatus
  }

  /** Apply a whole config, based on the version running now (so a change made since is not undone). */
  async applyConfig (value: unknown): Promise<UpdateResult & { ok: true }> {
    const current = await this.call('GET', '/config')
    const headers: Record<string, string> = current.etag === undefined ? {} : { 'if-match': current.etag }
    return (await this.call('PUT', '/config', { json: value, headers })).body as UpdateResult & { ok: true }
  }

  /** Ask the gateway to re-read its own config file. */
  async reloadFromFile (): Promise<UpdateResult & { ok: true }> {
    return (await this.call('POST', '/config/reload')).body as UpdateResult & { ok: true }
  }
}

/** `1d 2h 3m 4s`, leading zero units left out. */
export function formatUptime (seconds: number): string {
  let s = Math.max(0, Math.floor(seconds))
  const parts: string[] = []
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= n || parts.length > 0) parts.push(`${Math.floor(s / n)}${unit}`)
    s %= n
  }
  parts.push(`${s}s`)
  return parts.join(' ')
}

/** The lines `tollgate status` prints. */
export function formatStatus (s: GatewayStatus): string {
  const alive = s.workers.filter((w) => w.alive).length
  return [
    `tollgate ${s.version} on ${s.listen.host}:${s.listen.port}`,
    `config version ${s.configVersion}, generation ${s.generation}`,
    `workers ${alive}/${s.workers.length} alive`,
    `uptime ${formatUptime(s.uptimeS)}`,
    // A gateway older than upstream status sends none.
    ...(s.upstreams ?? []).flatMap(formatUpstream)
  ].join('\n') + '\n'
}

/** `upstream a,b: 1/2 targets healthy`, then one indented line per target that is not. */
function formatUpstream (u: UpstreamStatus): string[] {
  const healthy = u.targets.filter((x) => x.health === 'healthy').length
  const lines = [`upstream ${u.routes.join(',')}: ${healthy}/${u.targets.length} targets healthy`]
  for (const x of u.targets) {
    if (x.health !== 'healthy') lines.push(`  ${x.url} ${x.health}${x.ejectedUntil === undefined ? '' : ` until ${x.ejectedUntil}`}`)
  }
  return lines
}

/** One line for an applied update: version, generation, time, what changed. */
export function formatApplied (r: { version: number, generation: number, ms: number, summary?: ChangeSummary }): string {
  const changes: string[] = []
  const part = (label: string, c: { added: string[], removed: string[], changed: string[] } | undefined): void => {
    if (c === undefined) return
    const items = [...c.added.map((n) => `+${n}`), ...c.removed.map((n) => `-${n}`), ...c.changed.map((n) => `~${n}`)]
    if (items.length > 0) changes.push(`${label} ${items.join(' ')}`)
  }
  part('routes', r.summary?.routes)
  part('plugins', r.summary?.plugins)
  if (r.summary !== undefined && r.summary.settings.length > 0) changes.push(`settings ${r.summary.settings.join(' ')}`)
  return `applied: config version ${r.version}, generation ${r.generation} (${Math.round(r.ms)} ms); ${changes.length > 0 ? changes.join('; ') : 'no changes'}\n`
}

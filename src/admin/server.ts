import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, STATUS_CODES } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { isIP } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { parse as parseYaml } from 'yaml'
import { maskSecrets } from '../control/diff.js'
import type { PurgeSelector } from '../cache-purge.js'
import type { Actor, GatewayControl, UpdateResult } from '../control/types.js'
import { codes, GatewayError } from '../errors.js'
import { applyMergePatch, deeperThan, isPlainObject } from './merge-patch.js'
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard-page.js'
import type { BlockEntry, BlockStats } from '../block-list.js'
import type { AdminConfig } from './schema.js'

/** A whole config (PUT /config, validate, a route). */
const MAX_CONFIG_BODY = 10 * 1024 * 1024
/** Everything else (rollback). */
const MAX_SMALL_BODY = 64 * 1024
/** Objects nested deeper than this are refused before any code walks them recursively. */
const MAX_DEPTH = 64
const MAX_AUDIT_LIMIT = 1000
const SOURCE = 'admin API'

const JSON_TYPES = new Set(['application/json', 'application/merge-patch+json'])
const YAML_TYPES = new Set(['application/yaml', 'text/yaml', 'application/x-yaml'])

// Codes the admin API has no exact code for yet (413, 415, 428, a missing config object):
// the nearest request code is sent, with the HTTP status telling them apart.
const C_BAD_REQUEST = codes.GW_BAD_REQUEST.code
const C_NOT_FOUND = codes.GW_NO_ROUTE.code

export interface AuditSource {
  /** The newest `limit` entries, newest first. */
  entries: (limit: number) => Promise<object[]>
}

export interface AdminServerOptions {
  log: Logger
  /** Serves GET /audit; without it that path answers 404. */
  audit?: AuditSource
  /** Serves POST /config/reload (re-read the gateway's own config file); without it, 404. */
  reloadFromFile?: (actor: Actor) => Promise<UpdateResult>
  /** Serves GET /metrics (Prometheus text); without it that path answers 404. */
  metrics?: { contentType: string, text: () => Promise<string> }
  /** Serves GET /blocks and DELETE /blocks/:ip (threat-guard's shared deny list); without it, 404. */
  blocks?: BlockAdmin
}

/** The shared block list as the admin API uses it (src/block-list.ts). */
export interface BlockAdmin {
  list: () => BlockEntry[]
  /**
   * Lifts a block on every worker at once (in cluster mode: on every instance); false if the
   * address was not blocked. Throws (or rejects with) a RangeError for a text that is not an
   * address, and a GatewayError when the fleet's block list cannot be reached.
   */
  lift: (ip: string) => boolean | Promise<boolean>
  stats: () => BlockStats
}

export interface AdminServer {
  /** Bind where `cfg` says; resolves with the address actually bound (port 0 picks one). */
  listen: () => Promise<{ host: string, port: number }>
  /** Stop accepting, let in-flight requests finish (5 s at most), close every connection. */
  close: () => Promise<void>
}

/** A reply decided deep inside a handler: thrown, sent as problem+json by the dispatcher. */
class Problem extends Error {
  constructor (readonly status: number, readonly code: string, detail: string, readonly extra: { problems?: string[], headers?: Record<string, string> } = {}) {
    super(detail)
  }
}

interface Ctx {
  req: IncomingMessage
  res: ServerResponse
  actor: Actor
  params: string[]
  query: URLSearchParams
  bodyRead: boolean
}

type Handler = (ctx: Ctx) => Promise<void>

interface Endpoint {
  /** Path segments; `:` is a parameter. */
  path: string[]
  methods: Partial<Record<string, Handler>>
}

/**
 * True for addresses that only this machine can reach: 127.0.0.0/8, ::1 (also written in full
 * or IPv4-mapped) and `localhost`.
 */
export function isLoopbackHost (host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  if (h === 'localhost') return true
  const family = isIP(h)
  if (family === 4) return h.startsWith('127.')
  if (family !== 6) return false
  let norm: string
  try {
    norm = new URL(`http://[${h}]/`).hostname
  } catch {
    return false
  }
  return norm === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(norm)
}

/** The host part of a Host header: `a:80` -> `a`, `[::1]:80` -> `::1`. */
function hostOf (header: string): string {
  if (header.startsWith('[')) return header.slice(1, header.indexOf(']') === -1 ? undefined : header.indexOf(']'))
  const colon = header.lastIndexOf(':')
  return colon === -1 ? header : header.slice(0, colon)
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest()

/**
 * Bearer-token check. Both sides are hashed to SHA-256 first, so timingSafeEqual always
 * compares 32 bytes and neither a token's length nor its content shows in the timing; every
 * configured token is compared on every request, a match does not stop the loop.
 */
function makeAuthenticator (tokens: AdminConfig['tokens']): (header: string | undefined) => Actor | undefined {
  const known = tokens.map((t) => ({ name: t.name, digest: sha256(t.token) }))
  return (header) => {
    if (header === undefined) return undefined
    const m = /^bearer +([^ ]+) *$/i.exec(header)
    if (m === null) return undefined
    const presented = sha256(m[1] as string)
    let actor: Actor | undefined
    for (const k of known) {
      const same = timingSafeEqual(presented, k.digest)
      if (same && actor === undefined) actor = k.name
    }
    return actor
  }
}

/** `"7"` or `7` -> 7; `*` -> '*'; absent -> undefined; anything else is a 400. */
function parseIfMatch (req: IncomingMessage): number | '*' | undefined {
  const h = req.headers['if-match']
  if (h === undefined) return undefined
  const v = h.trim()
  if (v === '*') return '*'
  const m = /^(?:"([1-9][0-9]{0,14})"|([1-9][0-9]{0,14}))$/.exec(v)
  if (m === null) throw new Problem(400, C_BAD_REQUEST, 'If-Match must name one config version, as the ETag of GET /config: "7" (or 7)')
  return Number(m[1] ?? m[2])
}

function requireIfMatch (req: IncomingMessage): number | '*' {
  const v = parseIfMatch(req)
  if (v === undefined) throw new Problem(428, C_BAD_REQUEST, 'this change needs If-Match: "<version>" (the ETag of GET /config), so that it cannot undo a change made since')
  return v
}

function hasBody (req: IncomingMessage): boolean {
  const cl = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
}

/**
 * Read and parse a JSON or YAML body, bounded: a declared length over the limit is refused
 * before a byte is read, a stream that overflows is refused as soon as it does (and the
 * connection is closed, since the rest of the body stays unread).
 */
async function readBody (ctx: Ctx, limit: number): Promise<unknown> {
  const { req } = ctx
  const [type = '', ...params] = (req.headers['content-type'] ?? '').split(';').map((s) => s.trim().toLowerCase())
  const charset = params.find((p) => p.startsWith('charset='))?.slice(8).replace(/"/g, '')
  const yaml = YAML_TYPES.has(type)
  if ((!yaml && !JSON_TYPES.has(type)) || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) {
    throw new Problem(415, C_BAD_REQUEST, `send the body as application/json or application/yaml (UTF-8), not '${type === '' ? 'nothing' : type.slice(0, 100)}'`)
  }
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > limit) throw new Problem(413, C_BAD_REQUEST, `the body is over ${limit} bytes`)
  ctx.bodyRead = true
  const buf = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (c: Buffer): void => {
      size += c.length
      if (size > limit) {
        cleanup()
        req.pause()
        ctx.bodyRead = false
        reject(new Problem(413, C_BAD_REQUEST, `the body is over ${limit} bytes`))
        return
      }
      chunks.push(c)
    }
    const onEnd = (): void => { cleanup(); resolve(Buffer.concat(chunks, size)) }
    const onError = (err: Error): void => { cleanup(); reject(err) }
    // A client gone mid-body may close without an error event: do not wait forever.
    const onClose = (): void => { cleanup(); reject(new Error('the client closed the connection mid-body')) }
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf)
  } catch {
    throw new Problem(400, C_BAD_REQUEST, 'the body is not valid UTF-8')
  }
  if (text.trim() === '') throw new Problem(400, C_BAD_REQUEST, 'a request body is required')
  let value: unknown
  try {
    value = yaml ? parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 }) : JSON.parse(text)
  } catch (err) {
    const reason = ((err as Error).message.split('\n')[0] ?? '').slice(0, 200)
    throw new Problem(400, C_BAD_REQUEST, `the body is not valid ${yaml ? 'YAML' : 'JSON'}: ${reason}`)
  }
  if (deeperThan(value, MAX_DEPTH)) throw new Problem(400, C_BAD_REQUEST, `the body nests deeper than ${MAX_DEPTH} levels`)
  return value
}

function send (ctx: Ctx, status: number, body: unknown, contentType: string, headers: Record<string, string> = {}): void {
  const { req, res } = ctx
  const text = JSON.stringify(body)
  for (const k in headers) res.setHeader(k, headers[k] as string)
  res.setHeader('content-type', contentType)
  res.setHeader('content-length', Buffer.byteLength(text))
  res.setHeader('cache-control', 'no-store')
  res.setHeader('x-content-type-options', 'nosniff')
  // A body we did not read stays unread: close rather than read on (or desync) a keep-alive.
  if (!ctx.bodyRead && hasBody(req)) res.setHeader('connection', 'close')
  res.statusCode = status
  res.end(text)
}

/** The dashboard: one static page, locked down by its Content-Security-Policy. */
function sendDashboard (ctx: Ctx): void {
  const { req, res } = ctx
  res.statusCode = 200
  res.setHeader('content-type', 'text/html; charset=utf-8')
  res.setHeader('content-length', Buffer.byteLength(DASHBOARD_HTML))
  res.setHeader('content-security-policy', DASHBOARD_CSP)
  res.setHeader('cache-control', 'no-store')
  res.setHeader('x-content-type-options', 'nosniff')
  res.setHeader('x-frame-options', 'DENY')
  res.setHeader('referrer-policy', 'no-referrer')
  if (hasBody(req)) res.setHeader('connection', 'close')
  res.end(req.method === 'HEAD' ? undefined : DASHBOARD_HTML)
}

const sendJson = (ctx: Ctx, status: number, body: unknown, headers?: Record<string, string>): void =>
  send(ctx, status, body, 'application/json; charset=utf-8', headers)

function sendProblem (ctx: Ctx, p: Problem): void {
  const body: Record<string, unknown> = { type: 'about:blank', title: STATUS_CODES[p.status] ?? 'Error', status: p.status, detail: p.message, code: p.code }
  if (p.extra.problems !== undefined) body.problems = p.extra.problems
  send(ctx, p.status, body, 'application/problem+json', p.extra.headers)
}

/** An UpdateResult as the answer: the result itself when applied, its problem when not. */
function sendUpdate (ctx: Ctx, r: UpdateResult, okStatus = 200): void {
  if (r.ok) sendJson(ctx, okStatus, r, { etag: `"${r.version}"` })
  else sendProblem(ctx, new Problem(r.status, r.code, r.message, { problems: r.problems }))
}

/** DELETE /cache?key=|prefix=[&host=]: which cached responses to drop (none given: all). */
function purgeSelector (q: URLSearchParams): PurgeSelector {
  for (const k of q.keys()) if (k !== 'key' && k !== 'prefix' && k !== 'host') throw new Problem(400, C_BAD_REQUEST, `unknown parameter '${k.slice(0, 40)}'; use key, prefix and host`)
  const one = (k: string): string | undefined => {
    const all = q.getAll(k)
    if (all.length > 1) throw new Problem(400, C_BAD_REQUEST, `'${k}' is given more than once`)
    if (all[0] === '') throw new Problem(400, C_BAD_REQUEST, `'${k}' is empty`)
    return all[0]
  }
  const key = one('key')
  const prefix = one('prefix')
  const host = one('host')?.toLowerCase()
  if (key !== undefined && prefix !== undefined) throw new Problem(400, C_BAD_REQUEST, 'give key or prefix, not both')
  for (const v of [key, prefix]) if (v !== undefined && !v.startsWith('/')) throw new Problem(400, C_BAD_REQUEST, 'key and prefix are request targets: they start with /')
  return { ...(key !== undefined ? { key } : {}), ...(prefix !== undefined ? { prefix } : {}), ...(host !== undefined ? { host } : {}) }
}

/** Collections of the config edited one member at a time, and the member that names each. */
const KEYED = { routes: 'name', consumers: 'id' } as const
type KeyedCollection = keyof typeof KEYED

function parseIndex (s: string): number {
  if (!/^(0|[1-9][0-9]{0,5})$/.test(s)) throw new Problem(400, C_BAD_REQUEST, `'${s.slice(0, 20)}' is not a list index (0, 1, 2, ...)`)
  return Number(s)
}

function listIn (parent: Record<string, unknown>, key: string, what: string): unknown[] {
  const list = parent[key]
  if (list === undefined) return []
  if (!Array.isArray(list)) throw new Problem(409, codes.GW_ERR_CONFIG_CONFLICT.code, `${what} in the current config is not a list`)
  return list
}

function findKeyed (root: Record<string, unknown>, coll: KeyedCollection, id: string): { list: unknown[], index: number } {
  const list = listIn(root, coll, coll)
  const key = KEYED[coll]
  return { list, index: list.findIndex((o) => isPlainObject(o) && o[key] === id) }
}

const notFound = (what: string, version: number): Problem => new Problem(404, C_NOT_FOUND, `config version ${version} has no ${what}`)

function objectBody (v: unknown, what: string): Record<string, unknown> {
  if (!isPlainObject(v)) throw new Problem(400, C_BAD_REQUEST, `the body must be an object (${what})`)
  return v
}

/**
 * Create the admin API server. It does not listen until `listen()`. Throws
 * GW_ERR_ADMIN_UNSAFE when `cfg.host` is not loopback and no token is configured.
 * `cfg.enabled` is the caller's business: this builds the server either way.
 */
export function createAdminServer (control: GatewayControl, cfg: AdminConfig, opts: AdminServerOptions): AdminServer {
  const { log } = opts
  const tokens = cfg.tokens ?? []
  const open = tokens.length === 0
  if (open && !isLoopbackHost(cfg.host)) throw codes.GW_ERR_ADMIN_UNSAFE(cfg.host)
  const dup: string[] = []
  tokens.forEach((t, i) => {
    if (tokens.findIndex((o) => o.name === t.name) !== i) dup.push(`admin: /admin/tokens/${i}/name: '${t.name}' is used twice`)
    if (tokens.findIndex((o) => o.token === t.token) !== i) dup.push(`admin: /admin/tokens/${i}/token: the same token is given twice`)
  })
  if (dup.length > 0) throw codes.GW_ERR_CONFIG_INVALID('admin', dup.length, { details: dup })
  const authenticate = makeAuthenticator(tokens)

  /** Copy the running config, change it, apply the result based on that same version. */
  async function edit (ctx: Ctx, ifMatch: number | '*', reason: string, change: (root: Record<string, unknown>, version: number) => boolean | void): Promise<void> {
    const base = control.current()
    if (ifMatch !== '*' && ifMatch !== base.version) throw new Problem(409, codes.GW_ERR_CONFIG_CONFLICT.code, codes.GW_ERR_CONFIG_CONFLICT(ifMatch, base.version).message)
    const root = structuredClone(base.raw)
    if (!isPlainObject(root)) throw new Problem(409, codes.GW_ERR_CONFIG_CONFLICT.code, `config version ${base.version} is not an object`)
    const created = change(root, base.version) === true
    // ifMatch is always the base version, `*` included: the edit was made on that version's
    // copy, so a change that lands meanwhile must refuse this one, not be silently undone.
    const r = await control.apply(root, ctx.actor, { ifMatch: base.version, reason, source: SOURCE })
    sendUpdate(ctx, r, created ? 201 : 200)
  }

  const keyedEndpoint = (coll: KeyedCollection): Endpoint => ({
    path: ['config', coll, ':'],
    methods: {
      PATCH: async (ctx) => {
        const ifMatch = requireIfMatch(ctx.req)
        const patch = objectBody(await readBody(ctx, MAX_CONFIG_BODY), 'a JSON merge patch')
        const id = ctx.params[0] as string
        await edit(ctx, ifMatch, `patch ${coll}/${id}`, (root, version) => {
          const { list, index } = findKeyed(root, coll, id)
          if (index === -1) throw notFound(`${coll}/${id}`, version)
          list[index] = applyMergePatch(list[index], patch)
        })
      },
      PUT: async (ctx) => {
        const ifMatch = requireIfMatch(ctx.req)
        const id = ctx.params[0] as string
        const key = KEYED[coll]
        const item = objectBody(await readBody(ctx, MAX_CONFIG_BODY), `one member of ${coll}`)
        if (item[key] === undefined) item[key] = id
        else if (item[key] !== id) throw new Problem(400, C_BAD_REQUEST, `the body's ${key} must be '${id}' as in the path, or absent`)
        await edit(ctx, ifMatch, `put ${coll}/${id}`, (root) => {
          const { list, index } = findKeyed(root, coll, id)
          if (index !== -1) {
            list[index] = item
            return false
          }
          list.push(item)
          root[coll] = list
          return true
        })
      },
      DELETE: async (ctx) => {
        const ifMatch = requireIfMatch(ctx.req)
        const id = ctx.params[0] as string
        await edit(ctx, ifMatch, `delete ${coll}/${id}`, (root, version) => {
          const { list, index } = findKeyed(root, coll, id)
          if (index === -1) throw notFound(`${coll}/${id}`, version)
          list.splice(index, 1)
        })
      }
    }
  })

  const endpoints: Endpoint[] = [
    {
      path: ['config'],
      methods: {
        GET: async (ctx) => {
          // Never the raw config: it holds secrets, and there is no way to ask for them.
          const c = control.current()
          sendJson(ctx, 200, { version: c.version, generation: c.generation, appliedAt: c.appliedAt, actor: c.actor, reason: c.reason, config: maskSecrets(c.raw) }, { etag: `"${c.version}"` })
        },
        PUT: async (ctx) => {
          const ifMatch = parseIfMatch(ctx.req)
          const raw = await readBody(ctx, MAX_CONFIG_BODY)
          const r = await control.apply(raw, ctx.actor, { ...(typeof ifMatch === 'number' ? { ifMatch } : {}), reason: 'apply', source: SOURCE })
          sendUpdate(ctx, r)
        }
      }
    },
    {
      path: ['config', 'versions'],
      methods: {
        GET: async (ctx) => {
          const versions = control.versions()
            .map((v) => ({ version: v.version, appliedAt: v.appliedAt, actor: v.actor, reason: v.reason, generation: v.generation }))
            .sort((a, b) => b.version - a.version)
          sendJson(ctx, 200, { versions })
        }
      }
    },
    {
      path: ['config', 'validate'],
      methods: {
        POST: async (ctx) => {
          const r = await control.validate(await readBody(ctx, MAX_CONFIG_BODY), SOURCE)
          if (r.ok) sendJson(ctx, 200, { ok: true, summary: r.summary })
          else sendUpdate(ctx, r)
        }
      }
    },
    {
      path: ['config', 'reload'],
      methods: {
        POST: async (ctx) => {
          if (opts.reloadFromFile === undefined) throw new Problem(404, C_NOT_FOUND, 'this gateway has no config file to reload')
          sendUpdate(ctx, await opts.reloadFromFile(ctx.actor))
        }
      }
    },
    {
      path: ['config', 'rollback'],
      methods: {
        POST: async (ctx) => {
          const body = objectBody(await readBody(ctx, MAX_SMALL_BODY), '{ "version": N }')
          const v = body.version
          if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new Problem(400, C_BAD_REQUEST, 'the body must be { "version": N } with N a kept version (GET /config/versions)')
          sendUpdate(ctx, await control.rollback(v, ctx.actor))
        }
      }
    },
    keyedEndpoint('routes'),
    keyedEndpoint('consumers'),
    {
      path: ['config', 'plugins', ':'],
      methods: {
        PATCH: async (ctx) => {
          const ifMatch = requireIfMatch(ctx.req)
          const i = parseIndex(ctx.params[0] as string)
          const patch = objectBody(await readBody(ctx, MAX_CONFIG_BODY), 'a JSON merge patch')
          await edit(ctx, ifMatch, `patch plugins/${i}`, (root, version) => {
            const list = listIn(root, 'plugins', 'plugins')
            if (i >= list.length) throw notFound(`plugins/${i}`, version)
            list[i] = applyMergePatch(list[i], patch)
          })
        }
      }
    },
    {
      path: ['config', 'routes', ':', 'plugins', ':'],
      methods: {
        PATCH: async (ctx) => {
          const ifMatch = requireIfMatch(ctx.req)
          const name = ctx.params[0] as string
          const i = parseIndex(ctx.params[1] as string)
          const patch = objectBody(await readBody(ctx, MAX_CONFIG_BODY), 'a JSON merge patch')
          await edit(ctx, ifMatch, `patch routes/${name}/plugins/${i}`, (root, version) => {
            const { list, index } = findKeyed(root, 'routes', name)
            if (index === -1) throw notFound(`routes/${name}`, version)
            const plugins = listIn(list[index] as Record<string, unknown>, 'plugins', `routes/${name}/plugins`)
            if (i >= plugins.length) throw notFound(`routes/${name}/plugins/${i}`, version)
            plugins[i] = applyMergePatch(plugins[i], patch)
          })
        }
      }
    },
    {
      path: ['cache'],
      methods: {
        DELETE: async (ctx) => {
          if (control.purgeCache === undefined) throw new Problem(404, C_NOT_FOUND, 'this gateway has no response cache')
          sendJson(ctx, 200, await control.purgeCache(purgeSelector(ctx.query)))
        }
      }
    },
    {
      path: ['blocks'],
      methods: {
        GET: async (ctx) => {
          if (opts.blocks === undefined) throw new Problem(404, C_NOT_FOUND, 'this gateway keeps no block list')
          const blocks = opts.blocks.list()
          const { autoblocksTotal, tableFull } = opts.blocks.stats()
          sendJson(ctx, 200, { blocks, blockedIps: blocks.length, autoblocksTotal, tableFull })
        }
      }
    },
    {
      path: ['blocks', ':'],
      methods: {
        DELETE: async (ctx) => {
          if (opts.blocks === undefined) throw new Problem(404, C_NOT_FOUND, 'this gateway keeps no block list')
          const ip = ctx.params[0] as string
          let lifted: boolean
          try {
            lifted = await opts.blocks.lift(ip)
          } catch (err) {
            if (err instanceof RangeError) throw new Problem(400, C_BAD_REQUEST, err.message)
            throw err
          }
          if (!lifted) throw new Problem(404, codes.GW_ERR_BLOCK_NOT_FOUND.code, codes.GW_ERR_BLOCK_NOT_FOUND(ip.slice(0, 60)).message)
          log.info({ actor: ctx.actor, ip }, 'admin API: block lifted')
          sendJson(ctx, 200, { ip, lifted: true })
        }
      }
    },
    {
      path: ['status'],
      methods: { GET: async (ctx) => sendJson(ctx, 200, control.status()) }
    },
    {
      path: ['metrics'],
      methods: {
        GET: async (ctx) => {
          if (opts.metrics === undefined) throw new Problem(404, C_NOT_FOUND, 'this gateway keeps no metrics')
          const text = await opts.metrics.text()
          const { res } = ctx
          res.setHeader('content-type', opts.metrics.contentType)
          res.setHeader('content-length', Buffer.byteLength(text))
          res.setHeader('cache-control', 'no-store')
          res.setHeader('x-content-type-options', 'nosniff')
          res.statusCode = 200
          res.end(ctx.req.method === 'HEAD' ? undefined : text)
        }
      }
    },
    {
      path: ['audit'],
      methods: {
        GET: async (ctx) => {
          if (opts.audit === undefined) throw new Problem(404, C_NOT_FOUND, 'this gateway keeps no audit log')
          const l = ctx.query.get('limit') ?? '100'
          if (!/^[1-9][0-9]{0,3}$/.test(l) || Number(l) > MAX_AUDIT_LIMIT) throw new Problem(400, C_BAD_REQUEST, `limit must be an integer from 1 to ${MAX_AUDIT_LIMIT}`)
          sendJson(ctx, 200, { entries: await opts.audit.entries(Number(l)) })
        }
      }
    }
  ]

  function route (segments: string[]): { endpoint: Endpoint, params: string[] } | undefined {
    for (const endpoint of endpoints) {
      if (endpoint.path.length !== segments.length) continue
      const params: string[] = []
      let ok = true
      for (let i = 0; i < segments.length && ok; i++) {
        const p = endpoint.path[i] as string
        if (p === ':') params.push(segments[i] as string)
        else ok = p === segments[i]
      }
      if (ok) return { endpoint, params }
    }
    return undefined
  }

  /** Why a request may not use a token-less admin API, if it may not. */
  function browserRefusal (req: IncomingMessage): string | undefined {
    // With no tokens, anything on this machine may call us: that includes a web page in a
    // browser. A cross-site page's writes carry Origin; a DNS-rebinding page has its own name
    // in Host. Bearer tokens are never sent by browsers on their own, so with tokens this
    // check is not needed.
    if (req.headers.origin !== undefined) return 'requests from web pages (with Origin) are refused; configure admin.tokens to use the admin API from a browser'
    if (!isLoopbackHost(hostOf(req.headers.host ?? ''))) return 'without admin.tokens, the Host header must be a loopback address'
    return undefined
  }

  let closing = false

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint()
    const ctx: Ctx = { req, res, actor: 'local', params: [], query: new URLSearchParams(), bodyRead: false }
    const method = req.method ?? ''
    if (closing) res.setHeader('connection', 'close')
    let path = ''
    try {
      // The dashboard page is served without a token: it is static and holds no data; the
      // data comes from the endpoints below, which the page calls with the token the user
      // types in (kept in sessionStorage). Without tokens, the same Host/Origin checks apply.
      if ((method === 'GET' || method === 'HEAD') && req.url === '/') {
        if (open) {
          const refusal = browserRefusal(req)
          if (refusal !== undefined) throw new Problem(403, codes.GW_ERR_ADMIN_AUTH.code, refusal)
        }
        sendDashboard(ctx)
        return
      }
      if (cfg.metricsWithoutToken === true && (method === 'GET' || method === 'HEAD') && (req.url === '/metrics' || req.url?.startsWith('/metrics?') === true)) {
        // Opened on purpose (admin.metricsWithoutToken): counts only, no config, no secrets.
        ctx.actor = 'metrics'
      } else if (open) {
        const refusal = browserRefusal(req)
        if (refusal !== undefined) throw new Problem(403, codes.GW_ERR_ADMIN_AUTH.code, refusal)
      } else {
        const actor = authenticate(req.headers.authorization)
        if (actor === undefined) {
          log.warn({ remoteAddress: req.socket.remoteAddress, method, hasAuthorization: req.headers.authorization !== undefined }, 'admin API: request without a valid token')
          throw new Problem(401, codes.GW_ERR_ADMIN_AUTH.code, codes.GW_ERR_ADMIN_AUTH().message, { headers: { 'www-authenticate': 'Bearer realm="tollgate-admin"' } })
        }
        ctx.actor = actor
      }
      const target = req.url ?? ''
      if (!target.startsWith('/')) throw new Problem(400, C_BAD_REQUEST, 'the request target must be a path')
      const url = new URL(target, 'http://admin.invalid')
      path = url.pathname
      ctx.query = url.searchParams
      let segments: string[]
      try {
        segments = path.split('/').slice(1).map((s) => decodeURIComponent(s))
      } catch {
        throw new Problem(400, C_BAD_REQUEST, 'the path has a malformed %-escape')
      }
      const found = route(segments)
      if (found === undefined) throw new Problem(404, C_NOT_FOUND, `no admin endpoint ${path.slice(0, 200)}`)
      ctx.params = found.params
      const m = found.endpoint.methods
      const handler = m[method] ?? (method === 'HEAD' ? m.GET : undefined)
      if (handler === undefined) {
        const allow = Object.keys(m)
        if (m.GET !== undefined) allow.splice(allow.indexOf('GET') + 1, 0, 'HEAD')
        throw new Problem(405, codes.GW_METHOD_NOT_ALLOWED.code, `${method.slice(0, 20)} is not allowed on ${path}`, { headers: { allow: allow.join(', ') } })
      }
      await handler(ctx)
    } catch (err) {
      if (err instanceof Problem) {
        sendProblem(ctx, err)
      } else if (err instanceof GatewayError) {
        sendProblem(ctx, new Problem(err.statusCode, err.code, err.message, { problems: [...err.details] }))
      } else if (req.destroyed || res.destroyed) {
        return
      } else {
        log.error({ err, method, path }, 'admin API: request failed')
        sendProblem(ctx, new Problem(500, codes.GW_ERR_UPDATE_FAILED.code, codes.GW_ERR_UPDATE_FAILED('internal error; see the gateway log').message))
      }
    }
    const entry = { actor: ctx.actor, method, path, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }
    if (method === 'GET' || method === 'HEAD') log.debug(entry, 'admin API')
    else log.info(entry, 'admin API')
  }

  const server = createServer({
    // Headers and bodies are bounded and slow clients are cut off (CHECKLIST B1-B4, B6).
    maxHeaderSize: 16384,
    headersTimeout: 10_000,
    requestTimeout: 60_000,
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: 1_000
  }, (req, res) => { void handle(req, res) })
  server.maxHeadersCount = 100
  server.on('error', (err) => log.error({ err }, 'admin API server error'))

  return {
    async listen () {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(codes.GW_ERR_LISTEN(cfg.host, cfg.port, err.message, { cause: err }))
        server.once('error', onError)
        server.listen({ host: cfg.host, port: cfg.port }, () => {
          server.off('error', onError)
          resolve()
        })
      })
      const a = server.address() as AddressInfo
      // `localhost` is a name: if it resolved to something else, do not stay open on it.
      if (open && !isLoopbackHost(a.address)) {
        await new Promise<void>((resolve) => server.close(() => resolve()))
        throw codes.GW_ERR_ADMIN_UNSAFE(`${cfg.host} (${a.address})`)
      }
      log.info({ host: a.address, port: a.port, tokens: tokens.length }, 'admin API listening')
      return { host: a.address, port: a.port }
    },
    async close () {
      closing = true
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), 5_000)
        force.unref()
        server.close(() => { clearTimeout(force); resolve() })
        server.closeIdleConnections()
      })
    }
  }
}

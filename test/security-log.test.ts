import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { rawRequest, startGateway, startUpstream } from './helpers/gateway.js'

type Line = Record<string, unknown>
const readLines = (file: string): Line[] => existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line) : []

// Each secret is unique, so a leak names where it came from.
const KEY = 'SECRET-apikey-header-a1b2c3d4e5'
const QKEY = 'SECRET-apikey-query-f6g7h8i9j0'
const CUSTOM = 'SECRET-custom-header-k1l2m3n4'
const BEARER = 'SECRET-bearer-o5p6q7r8'
const COOKIE = 'SECRET-cookie-s9t0u1v2'
const SESSION = 'SECRET-session-w3x4y5z6'
const sha = 'sha256:'

t.test('denials go to the security log with their reason code; no secret in any log line', async (t) => {
  const { createHash } = await import('node:crypto')
  const digest = (k: string): string => sha + createHash('sha256').update(k).digest('hex')
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 2,
      logLevel: 'info',
      securityLog: { destination: 'logs/security.log' },
      consumers: [{ id: 'alice', credentials: { keys: [{ digest: digest(KEY) }, { digest: digest(QKEY) }, { digest: digest(CUSTOM) }] } }],
      plugins: [
        { name: 'request-id' },
        { name: 'access-log', config: { destination: 'logs/access.log', headers: ['authorization', 'cookie', 'x-api-key', 'x-tenant-key', 'x-session', 'user-agent'], redact: ['x-session'], query: true } }
      ],
      routes: [
        { name: 'keyed', match: { path: '/keyed' }, upstream: up.url, plugins: [{ name: 'key-auth', config: { headers: ['x-api-key', 'x-tenant-key'], query: 'api_key' } }, { name: 'acl', config: { deny: ['nobody'] } }] },
        { name: 'blocked', match: { path: '/blocked' }, upstream: up.url, plugins: [{ name: 'ip-filter', config: { deny: ['127.0.0.0/8'] } }] },
        { name: 'limited', match: { path: '/limited' }, upstream: up.url, plugins: [{ name: 'rate-limit', config: { limits: [{ limit: 1, window: '1m' }] } }] }
      ]
    }
  })
  const send = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number, id: string }> => {
    const res = await request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${BEARER}`, cookie: `s=${COOKIE}`, 'x-session': SESSION, ...headers } })
    await res.body.text()
    return { status: res.statusCode, id: res.headers['x-request-id'] as string }
  }
  const ok1 = await send('/keyed/a', { 'x-api-key': KEY })
  const ok2 = await send(`/keyed/b?api_key=${QKEY}&q=1`)
  const ok3 = await send(`/keyed/c?api%5Fkey=${QKEY}`)
  const ok4 = await send('/keyed/d', { 'x-tenant-key': CUSTOM })
  const bad = await send('/keyed/e', { 'x-api-key': 'SECRET-wrong-key-0000000000' })
  const missing = await send('/keyed/f')
  const blocked = await send('/blocked')
  const lim1 = await send('/limited')
  const lim2 = await send('/limited')
  const none = await send('/nowhere')
  t.same([ok1, ok2, ok3, ok4, bad, missing, blocked, lim1, lim2, none].map((r) => r.status), [200, 200, 200, 200, 401, 401, 403, 200, 429, 404])
  t.match(await rawRequest(gw.port, `GET /keyed?api_key=${QKEY} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n`), /^HTTP\/1\.1 501/)

  t.same(await gw.stop(), { code: 0, signal: null })
  const dir = t.testdirName
  const security = readLines(join(dir, 'logs', 'security.log'))
  const access = readLines(join(dir, 'logs', 'access.log'))
  const everything = readFileSync(join(dir, 'logs', 'security.log'), 'utf8') + readFileSync(join(dir, 'logs', 'access.log'), 'utf8') + JSON.stringify(gw.lines) + gw.stderr()
  t.notMatch(everything, /SECRET/, 'no secret in any log line: headers, cookies, API keys in headers and query, bearer tokens')

  const ev = (id: string): Line | undefined => security.find((l) => l.id === id)
  t.match(ev(bad.id), { msg: 'security', event: 'denial', code: 'INVALID_API_KEY', status: 401, plugin: 'key-auth', route: 'keyed', client: '127.0.0.1', method: 'GET', path: '/keyed/e', traceId: String })
  t.match(ev(missing.id), { code: 'MISSING_API_KEY', plugin: 'key-auth' })
  t.match(ev(blocked.id), { code: 'IP_DENIED', plugin: 'ip-filter', route: 'blocked' })
  t.match(ev(lim2.id), { code: 'RATE_LIMITED', plugin: 'rate-limit', status: 429 })
  t.match(ev(none.id), { code: 'GW_NO_ROUTE', plugin: 'gateway', route: '' })
  t.ok(security.some((l) => l.code === 'GW_NOT_IMPLEMENTED' && l.status === 501 && l.plugin === 'gateway'), 'a hardening refusal')
  t.equal(security.length, 6, 'one event per denial, none for answered requests')

  const line = (id: string): Line | undefined => access.find((l) => l.id === id)
  t.equal(line(ok1.id)?.consumer, 'alice')
  t.match((line(ok1.id)?.headers as Line), { authorization: '[redacted]', cookie: '[redacted]', 'x-api-key': '[redacted]', 'x-session': '[redacted]' })
  t.same(line(ok2.id)?.query, { api_key: '[redacted]', q: '1' }, "key-auth's query parameter is redacted")
  t.same(line(ok3.id)?.query, { api_key: '[redacted]' }, 'also when its name is percent-encoded')
  t.match((line(ok4.id)?.headers as Line), { 'x-tenant-key': '[redacted]' }, "key-auth's configured header is redacted")
  t.match(line(bad.id), { repliedBy: 'key-auth', code: 'INVALID_API_KEY' }, 'the deciding plugin and reason code')
})

t.test('access-log sampling keeps every denial; enabled: false switches it off per route', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await startGateway(t, {
    config: {
      workers: 2,
      logLevel: 'warn',
      plugins: [{ name: 'access-log', config: { destination: 'access.log', sampleRate: 0 } }],
      routes: [
        { name: 'api', match: { path: '/api' }, upstream: up.url },
        { name: 'quiet', match: { path: '/quiet' }, upstream: up.url, plugins: [{ name: 'access-log', enabled: false }] },
        { name: 'blocked', match: { path: '/blocked' }, upstream: up.url, plugins: [{ name: 'ip-filter', config: { deny: ['127.0.0.0/8'] } }] }
      ]
    }
  })
  for (const p of ['/api/1', '/api/2', '/api/3', '/quiet/1', '/blocked', '/blocked', '/nowhere']) {
    const res = await request(`${gw.url}${p}`)
    await res.body.text()
  }
  await gw.stop()
  const lines = readLines(join(t.testdirName, 'access.log'))
  t.same(lines.map((l) => `${l.path as string} ${l.status as number}`).sort(), ['/blocked 403', '/blocked 403', '/nowhere 404'], 'sampleRate 0: only the denials')
})

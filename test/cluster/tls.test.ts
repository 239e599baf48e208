// cluster.redis as rediss:// to a real redis-server with TLS on (--tls-port, plain port
// off), certificates made by a throwaway CA at test time. Strict mode is exact through it;
// certificates are verified (a CA that did not sign Redis's certificate gets nothing, and
// onRedisDown answers); Redis asking for client certificates gets cluster.tls's.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { validateGatewayConfig } from '../../src/config.js'
import { GatewayError } from '../../src/errors.js'
import { issue, makeCa } from '../helpers/certs.js'
import { startUpstream } from '../helpers/gateway.js'
import { clusterReady, NO_PERSISTENCE, spread, startInDir, startRedisProcess, tempDir } from './redis.js'

t.setTimeout(600_000)

const rateLimited = (upstream: string): Record<string, unknown> => ({
  name: 'api',
  match: { path: '/' },
  upstream,
  plugins: [{ name: 'rate-limit', config: { key: 'header:x-client', limits: [{ limit: 10, window: '24h', algorithm: 'gcra' }] } }]
})

t.test('rediss:// with a CA and a client certificate: strict mode exact; a wrong CA gets nothing', async (t) => {
  const ca = makeCa('tollgate redis test CA', (fn) => t.teardown(fn))
  const server = issue(ca, 'redis.test', ['DNS:redis.test', 'IP:127.0.0.1'])
  const client = issue(ca, 'tollgate-client')
  const other = makeCa('some other CA', (fn) => t.teardown(fn))
  const dir = tempDir(t, {
    'ca.crt': ca.cert,
    'server.crt': server.cert,
    'server.key': server.key,
    'client.crt': client.cert,
    'client.key': client.key,
    'other-ca.crt': other.cert
  })
  // TLS only (port 0 turns the plain port off), and a client certificate required.
  const redis = await startRedisProcess(t, (port) => ['--port', '0', '--tls-port', String(port), ...NO_PERSISTENCE,
    '--tls-cert-file', join(dir, 'server.crt'), '--tls-key-file', join(dir, 'server.key'), '--tls-ca-cert-file', join(dir, 'ca.crt'), '--tls-auth-clients', 'yes'])
  const url = `rediss://127.0.0.1:${redis.port}`
  const up = await startUpstream(t)
  const config = (id: string, tls: Record<string, string>): Record<string, unknown> => ({
    workers: 1,
    cluster: { redis: url, mode: 'strict', timeout: '2s', instanceId: id, tls },
    routes: [rateLimited(up.url)]
  })
  // Relative paths: from the config file's directory.
  const tlsOk = { ca: join(dir, 'ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') }
  const a = await startInDir(t, tempDir(t), config('t1', tlsOk))
  const bDir = tempDir(t, { 'ca.crt': ca.cert, 'client.crt': client.cert, 'client.key': client.key })
  const b = await startInDir(t, bDir, config('t2', { ca: 'ca.crt', cert: 'client.crt', key: 'client.key' }))
  await Promise.all([a, b].map(clusterReady))
  const r = await spread([a.url + '/x', b.url + '/x'], 40, 8, { 'x-client': 'one' })
  t.equal(up.seen.length, 10, 'exactly the limit reached the upstream, through TLS')
  t.same(r.byStatus, { 200: 10, 429: 30 })

  // The same Redis, verified against a CA that did not sign it: no connection, so every
  // decision is onRedisDown's (deny: 503).
  const wrong = await startInDir(t, tempDir(t), config('t3', { ca: join(dir, 'other-ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') }))
  const w = await spread([wrong.url + '/x'], 5, 1, { 'x-client': 'two' })
  t.same(w.byStatus, { 503: 5 }, 'an unverified Redis decides nothing')
  t.same(w.byCode, { GW_RATE_LIMIT_UNAVAILABLE: 5 })
  t.ok(wrong.lines.some((l) => typeof l.err === 'string' && /certificate/i.test(l.err)), 'the log says why: the certificate')
  // Without a client certificate Redis refuses the handshake.
  const anon = await startInDir(t, tempDir(t), config('t4', { ca: join(dir, 'ca.crt') }))
  t.same((await spread([anon.url + '/x'], 3, 1, { 'x-client': 'three' })).byStatus, { 503: 3 }, 'no client certificate: Redis refuses it')
  t.equal(up.seen.length, 10, 'nothing more reached the upstream')
})

t.test('cluster.tls is refused whole when a file is missing or wrong, or the URL is not TLS', async (t) => {
  const ca = makeCa('refusal CA', (fn) => t.teardown(fn))
  const dir = tempDir(t, { 'ca.crt': ca.cert, 'not-pem.txt': 'hello' })
  writeFileSync(join(dir, 'key.pem'), ca.key)
  const routes = [{ name: 'r', match: { path: '/' }, upstream: 'http://127.0.0.1:1' }]
  const check = (cluster: unknown): string => {
    try {
      validateGatewayConfig({ source: 'g.yaml', dir, value: { routes, cluster } })
      return ''
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err
      t.equal(err.code, 'GW_ERR_CONFIG_INVALID')
      return err.details.join('\n')
    }
  }
  const url = 'rediss://127.0.0.1:6380'
  t.match(check({ redis: url, tls: { ca: 'missing.crt' } }), /g\.yaml: \/cluster\/tls\/ca: .*missing\.crt: cannot read: ENOENT/)
  t.match(check({ redis: url, tls: { ca: 'not-pem.txt' } }), /\/cluster\/tls\/ca: .*no PEM certificate/)
  t.match(check({ redis: url, tls: { ca: 'ca.crt', cert: 'ca.crt' } }), /\/cluster\/tls: a client certificate needs both cert and key/)
  t.match(check({ redis: url, tls: { ca: 'ca.crt', cert: 'ca.crt', key: 'not-pem.txt' } }), /\/cluster\/tls\/key: .*not a private key/)
  t.match(check({ redis: 'redis://127.0.0.1:6379', tls: { ca: 'ca.crt' } }), /\/cluster\/tls: TLS settings need a TLS URL/)
  t.match(check({ redis: url, tls: { ca: 'ca.crt', verify: false } }), /\/cluster\/tls/, 'no switch to turn verification off')
  const ok = validateGatewayConfig({ source: 'g.yaml', dir, value: { routes, cluster: { redis: url, tls: { ca: 'ca.crt', cert: 'ca.crt', key: 'key.pem' } } } })
  t.same(ok.cluster?.tls, { ca: join(dir, 'ca.crt'), cert: join(dir, 'ca.crt'), key: join(dir, 'key.pem') }, 'paths are made absolute from the config file\'s directory')
})

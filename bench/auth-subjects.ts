// The authentication subjects of the bench (issue #4's per-plugin cost): tollgate with one
// authn plugin on its only route, each request carrying a valid credential, so every
// request is verified (or found in the plugin's cache) and proxied. Compare with the
// `tollgate` subject (no plugins) run in the same sitting.
import { createHash, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { startServer } from './lib/children.js'
import { announcedPort } from './lib/ready.js'
import { startTollgateWithConfig } from './lib/tollgate.js'
import type { ControlRequest, RunningSubject, Subject, SubjectContext, SubjectGroup } from './lib/subject.js'

const HOST = '127.0.0.1'
const ISSUER = 'https://issuer.bench.test'
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))

/** tollgate, 1 worker, with `config`; every request carries `headers`. */
async function startTollgate (ctx: SubjectContext, name: string, config: Record<string, unknown>, headers: Record<string, string>, alsoStop?: () => Promise<void>): Promise<RunningSubject> {
  const s = await startTollgateWithConfig(ctx.root, name, { config, alsoStop })
  // The proof the plugin ran: the same request without the credential is refused.
  const controls: ControlRequest[] = [{ what: 'no credential', status: 401 }]
  return { url: `http://${HOST}:${s.port}/`, headers, pid: s.pid, commandLine: s.commandLine, controls, alive: s.alive, stop: s.stop }
}

function route (upstream: string, plugins: unknown[]): Record<string, unknown> {
  return { name: 'all', match: { path: '/' }, upstream, plugins }
}

/** 1,000 consumers with a key each: the lookup is a map hit by digest, whatever the count. */
async function keyAuth (ctx: SubjectContext): Promise<RunningSubject> {
  const keys = Array.from({ length: 1000 }, (_, i) => `bench-key-${i}-${randomBytes(12).toString('hex')}`)
  const consumers = keys.map((k, i) => ({ id: `c${i}`, groups: ['bench'], credentials: { keys: [{ digest: 'sha256:' + createHash('sha256').update(k).digest('hex') }] } }))
  return await startTollgate(ctx, 'tollgate-key-auth', { consumers, routes: [route(ctx.upstreamUrl, [{ name: 'key-auth' }])] }, { apikey: keys[500] as string })
}

async function token (alg: string, key: Parameters<SignJWT['sign']>[0]): Promise<string> {
  return await new SignJWT({ scope: 'orders:read orders:write' })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setSubject('bench-user')
    .setAudience('bench')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(key)
}

function jwtSubject (alg: 'HS256' | 'RS256' | 'ES256'): Subject {
  return {
    name: `tollgate-jwt-${alg.toLowerCase()}`,
    description: `tollgate, 1 worker: jwt-auth, ${alg}, one issuer, one valid token`,
    async start (ctx) {
      let keyConfig: Record<string, unknown>
      let jwt: string
      if (alg === 'HS256') {
        const secret = randomBytes(32).toString('base64url')
        keyConfig = { secret, encoding: 'base64url' }
        jwt = await token(alg, Buffer.from(secret, 'base64url'))
      } else {
        const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
        keyConfig = { pem: await exportSPKI(publicKey) }
        jwt = await token(alg, privateKey)
      }
      const plugin = { name: 'jwt-auth', config: { issuers: [{ issuer: ISSUER, algorithms: [alg], audience: 'bench', keys: [keyConfig] }] } }
      return await startTollgate(ctx, `tollgate-jwt-${alg.toLowerCase()}`, { routes: [route(ctx.upstreamUrl, [plugin])] }, { authorization: `Bearer ${jwt}` })
    },
  }
}

/** Opaque token, warm cache: the authorization server is called once per worker. */
async function introspection (ctx: SubjectContext): Promise<RunningSubject> {
  const as = await startServer({
    name: 'introspection-server',
    command: process.execPath,
    args: [here('./introspection-server.js'), '--host', HOST, '--port', '0'],
    ready: announcedPort,
    startTimeoutMs: 10_000,
  })
  const plugin = { name: 'oauth2-introspection', config: { endpoint: `http://${HOST}:${as.port}/introspect`, clientId: 'gateway', clientSecret: 'bench-secret', cacheTtl: '10m' } }
  try {
    return await startTollgate(ctx, 'tollgate-introspection', { routes: [route(ctx.upstreamUrl, [plugin])] }, { authorization: `Bearer ${randomBytes(24).toString('base64url')}` }, as.stop)
  } catch (err) {
    await as.stop()
    throw err
  }
}

export const authSubjects: readonly Subject[] = [
  { name: 'tollgate-key-auth', description: 'tollgate, 1 worker: key-auth, 1,000 consumers', start: keyAuth },
  jwtSubject('HS256'),
  jwtSubject('RS256'),
  jwtSubject('ES256'),
  { name: 'tollgate-introspection', description: 'tollgate, 1 worker: oauth2-introspection, warm cache (one AS call per worker)', start: introspection },
]

export const authGroup: SubjectGroup = { name: 'auth', description: 'each authn plugin alone, every request with a valid credential', subjects: authSubjects }

/** Issue #4's targets, as a fraction of the `tollgate` subject's req/s. */
export const authTargets: Readonly<Record<string, number>> = {
  'tollgate-key-auth': 0.95,
  'tollgate-introspection': 0.95,
  'tollgate-jwt-es256': 0.75,
}

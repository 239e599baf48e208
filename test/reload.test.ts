import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Pool, request } from 'undici'
import { FIXTURES, startGateway, startUpstream } from './helpers/gateway.js'
import type { RunningGateway } from './helpers/gateway.js'

interface Json { [k: string]: unknown }

async function admin (gw: RunningGateway, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: Json, headers: Record<string, unknown> }> {
  const line = gw.lines.find((l) => l.msg === 'listening') as { admin?: { port: number } }
  const port = line.admin?.port
  if (port === undefined) throw new Error('no admin listener')
  const res = await request(`http://127.0.0.1:${port}${path}`, {
    method: method as 'GET',
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.body.text()
  return { status: res.statusCode, body: text === '' ? {} : JSON.parse(text) as Json, headers: res.headers }
}

const policy = (upstream: string, n: number): Json => ({
  listen: { host: '127.0.0.1', port: 0 },
  workers: 2,
  logLevel: 'warn',
  admin: { port: 0, responseGenerationHeader: true },
  plugins: [{ name: 'request-id' }],
  routes: [{
    name: 'all',
    match: { path: '/' },
    upstream,
    // Alternating policies that differ but both admit the test client.
    plugins: n % 2 === 0
      ? [{ name: 'ip-filter', config: { allow: ['127.0.0.0/8', '::1/128'] } }, { name: 'rate-limit', config: { limits: [{ limit: 1000000, window: '1s' }] } }]
      : [{ name: 'ip-filter', config: { deny: [`10.${n % 256}.0.0/16`, '192.0.2.0/24'] } }]
  }]
})

t.test('100 updates under load: no failed request, each answer under one live generation', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await startGateway(t, { config: policy(up.url, 0) })
  const keepAlive = new Pool(gw.url, { connections: 8 })
  t.teardown(() => keepAlive.close())

  // published[g] = [time its PUT was sent, time it answered]
  const published = new Map<number, [number, number]>([[1, [0, 0]]])
  let failures = 0
  let bad = 0
  let count = 0
  let running = true
  const client = async (fresh: boolean): Promise<void> => {
    while (running) {
      const sent = performance.now()
      // Newest generation already acknowledged when this request left.
      const floor = Math.max(...[...published].filter(([, [, done]]) => done <= sent).map(([g]) => g))
      try {
        const r = fresh
          ? await request(`${gw.url}/x`, { reset: true, headers: { connection: 'close' } })
          : await keepAlive.request({ path: '/x', method: 'GET' })
        await r.body.text()
        const received = performance.now()
        const g = Number(r.headers['x-tollgate-generation'])
        // Newest generation whose update had started when the answer arrived.
        const ceiling = Math.max(...[...published].filter(([, [start]]) => start <= received).map(([gen]) => gen))
        if (r.statusCode !== 200 || !(g >= floor && g <= ceiling)) {
          if (bad++ === 0) t.comment(`first bad answer: status ${r.statusCode}, generation ${g}, allowed ${floor}..${ceiling}, fresh ${String(fresh)}`)
        }
        count++
      } catch {
        failures++
      }
    }
  }
  const load = [client(false), client(false), client(false), client(true)]
  for (let n = 1; n <= 100; n++) {
    // Update n makes generation n + 1: it may answer requests from the moment the PUT leaves.
    published.set(n + 1, [performance.now(), Number.POSITIVE_INFINITY])
    const r = await admin(gw, 'PUT', '/config', policy(up.url, n))
    t.equal(r.status, 200, `update ${n} applied`)
    t.equal(r.body.generation, n + 1)
    published.set(n + 1, [(published.get(n + 1) as [number, number])[0], performance.now()])
  }
  running = false
  await Promise.all(load)
  t.equal(failures, 0, `no request failed (${count} answered during 100 updates)`)
  t.equal(bad, 0, 'every answer was 200 and named a generation live during its request')
  t.ok(count > 100, 'the load ran throughout')
  const status = await admin(gw, 'GET', '/status')
  t.equal(status.body.generation, 101)
  for (const w of status.body.workers as Json[]) t.equal(w.generation, 101, `worker ${String(w.slot)} on the last generation`)
})

t.test('invalid updates are refused whole; the running config stays', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { config: policy(up.url, 0) })
  const base = policy(up.url, 0)
  const routes = base.routes as Json[]
  const bad: Array<[string, Json]> = [
    ['bad schema', { ...base, routes: [{ ...routes[0], upstream: 'not a url' }] }],
    ['bad CIDR', { ...base, routes: [{ ...routes[0], plugins: [{ name: 'ip-filter', config: { deny: ['10.0.0.1/8'] } }] }] }],
    ['unknown plugin', { ...base, plugins: [{ name: 'no-such-plugin' }] }],
    ['create() throws', { ...base, routes: [{ ...routes[0], plugins: [{ name: 'create-fails', module: join(FIXTURES, 'plugins/create-fails.mjs'), config: { limit: 0 } }] }] }]
  ]
  for (const [name, cfg] of bad) {
    const r = await admin(gw, 'PUT', '/config', cfg)
    t.equal(r.status, 400, `${name}: 400`)
    t.ok(Array.isArray(r.body.problems) && (r.body.problems as unknown[]).length > 0, `${name}: problems listed`)
    // Built by every worker, not dry-run in the acceptor: reported the same way all the same.
    if (name === 'create() throws') t.match(r.body.problems, [/\/routes\/0\/plugins\/0: plugin 'create-fails' failed in create\(\): limit must not be 0/])
    // Compiled while the workers build, not in the prepare step: still named by its path.
    if (name === 'bad CIDR') t.match(r.body.problems, [/\/routes\/0\/plugins\/0\/config\/deny\/0: .*host bits/])
    const res = await request(`${gw.url}/still`)
    await res.body.text()
    t.equal(res.statusCode, 200, `${name}: still serving`)
    t.equal(res.headers['x-tollgate-generation'], '1', `${name}: on the old generation`)
  }
  const versions = await admin(gw, 'GET', '/config/versions')
  t.equal((versions.body.versions as Json[]).length, 1, 'no version was added')
})

t.test('file edits and SIGHUP reload; admin changes persist across a restart; rollback', async (t) => {
  const up = await startUpstream(t)
  const dir = t.testdir({})
  const file = join(dir, 'gateway.json')
  const write = (cfg: Json): void => writeFileSync(file, JSON.stringify(cfg))
  const cfg = (n: number): Json => ({ ...policy(up.url, n), logLevel: 'info', routes: [{ name: 'all', match: { path: '/' }, upstream: up.url, plugins: n === 0 ? [] : [{ name: 'ip-filter', config: { deny: ['127.0.0.0/8'] } }] }] })
  write(cfg(0))
  const gw = await startGateway(t, { args: ['--config', file] })
  const status = async (): Promise<number> => { const r = await request(`${gw.url}/`); await r.body.text(); return r.statusCode }
  // Wait for one more log line like this than there were before `action` ran.
  const after = async (action: () => void, pred: (l: Record<string, unknown>) => boolean): Promise<void> => {
    const before = gw.lines.filter(pred).length
    action()
    await gw.waitFor(() => gw.lines.filter(pred).length > before)
  }
  const applied = (l: Record<string, unknown>): boolean => l.msg === 'policy update applied'
  t.equal(await status(), 200)

  await after(() => write(cfg(1)), (l) => applied(l) && l.actor === 'file') // deny ourselves
  t.equal(await status(), 403, 'a saved file is live')

  await after(() => writeFileSync(file, '{ "routes": [ broken'), (l) => l.msg === 'config file not reloaded; the running config stays')
  t.equal(await status(), 403, 'a broken file is refused; the running config stays')

  await after(() => write(cfg(0)), (l) => applied(l) && l.actor === 'file')
  t.equal(await status(), 200)
  await after(() => gw.proc.kill('SIGHUP'), (l) => applied(l) && l.actor === 'signal')
  t.equal(await status(), 200, 'SIGHUP re-reads the file')

  // An admin change, then a restart with the file untouched: the admin change is kept.
  const current = await admin(gw, 'GET', '/config')
  const put = await admin(gw, 'PUT', '/config', cfg(1), { 'if-match': `"${String(current.body.version)}"` })
  t.equal(put.status, 200)
  t.equal(await status(), 403)
  const stale = await admin(gw, 'PUT', '/config', cfg(0), { 'if-match': `"${String(current.body.version)}"` })
  t.equal(stale.status, 409, 'If-Match on an old version: 409')
  t.equal((await gw.stop()).code, 0)

  const again = await startGateway(t, { args: ['--config', file] })
  const r = await request(`${again.url}/`)
  await r.body.text()
  t.equal(r.statusCode, 403, 'after a restart the last applied version runs, not the file')
  const versions = await admin(again, 'GET', '/config/versions')
  const list = versions.body.versions as Json[]
  const first = list.at(-1) as Json
  const rb = await admin(again, 'POST', '/config/rollback', { version: first.version })
  t.equal(rb.status, 200, 'rollback to the first version')
  const r2 = await request(`${again.url}/`)
  await r2.body.text()
  t.equal(r2.statusCode, 200, 'the rolled-back config serves')
})

import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { BIN, FIXTURES, ROOT, runCli, startGateway, startUpstream } from './helpers/gateway.js'

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
const noStack = (s: string): boolean => !/\n\s+at /.test(s)

t.test('--help and --version', async (t) => {
  const help = await runCli(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage:/)
  t.match(help.stdout, /request-id, access-log/, 'lists the built-in plugins')
  const v = await runCli(['--version'])
  t.equal(v.code, 0)
  t.equal(v.stdout.trim(), pkg.version)
})

t.test('bad usage is one line and exit 2', async (t) => {
  for (const args of [['--bogus'], ['--port', 'eighty', '--upstream', 'http://127.0.0.1:1'], ['--upstream', 'ftp://x'], ['frobnicate'], ['--plugins', 'request-id'], ['validate']]) {
    const r = await runCli(args)
    t.equal(r.code, 2, `${args.join(' ')} -> exit 2`)
    t.match(r.stderr, /^tollgate: /, 'starts with tollgate:')
    t.ok(noStack(r.stderr), 'no stack trace')
  }
})

t.test('validate: a good file', async (t) => {
  const dir = t.testdir({
    'gateway.yaml': `
listen: { host: 127.0.0.1, port: 8080 }
workers: 2
plugins:
  - name: request-id
routes:
  - name: orders
    match: { path: /orders, methods: [GET, POST] }
    upstream: http://127.0.0.1:3000
    plugins:
      - name: access-log
        config: {}
`
  })
  const r = await runCli(['validate', join(dir, 'gateway.yaml')])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /gateway\.yaml: ok \(1 route\(s\), plugins: request-id, access-log\)/)
})

t.test('validate: every problem as file: /path: reason, exit 2', async (t) => {
  const dir = t.testdir({
    'bad.yaml': `
listen: { port: 99999 }
bogus: 1
plugins:
  - name: request-id
    config: { header: 5, extra: true }
  - name: no-such-plugin
routes:
  - name: orders
    match: { path: orders }
    upstream: not a url
  - name: orders
    match: { path: /b }
    upstream: { targets: [] }
    timeouts: { headers: 10 years }
`
  })
  const file = join(dir, 'bad.yaml')
  const r = await runCli(['validate', file])
  t.equal(r.code, 2)
  t.ok(noStack(r.stderr), 'no stack trace')
  const want = [
    `${file}: /: unknown property 'bogus'`,
    `${file}: /listen/port: must be <= 65535`,
    `${file}: /routes/0/match/path: must match ^/`,
    `${file}: /routes/0/upstream: must be a URL (http:// or https://)`,
    `${file}: /routes/1/upstream/targets: must NOT have fewer than 1 items`,
    `${file}: /routes/1/timeouts/headers: must be a duration such as 500ms, 10s or 2m`
  ]
  for (const line of want) t.ok(r.stderr.split('\n').includes(line), `reports: ${line}`, { got: r.stderr })

  // Plugin problems are found once the gateway's own shape is right.
  const dir2 = t.testdir({
    'plugins.yaml': `
plugins:
  - name: request-id
    config: { header: 5, extra: true }
  - name: no-such-plugin
routes:
  - name: a
    match: { path: /a }
    upstream: http://127.0.0.1:1
    plugins:
      - name: access-log
        config: { redact: [1] }
      - name: mine
        module: ./missing.mjs
`
  })
  const file2 = join(dir2, 'plugins.yaml')
  const r2 = await runCli(['validate', file2])
  t.equal(r2.code, 2)
  const want2 = [
    `${file2}: /plugins/0/config/header: must be a string`,
    `${file2}: /plugins/0/config: unknown property 'extra'`,
    `${file2}: /routes/0/plugins/0/config/redact/0: must be a string`
  ]
  for (const line of want2) t.ok(r2.stderr.split('\n').includes(line), `reports: ${line}`, { got: r2.stderr })
  t.match(r2.stderr, new RegExp(`${file2}: /plugins/1: plugin 'no-such-plugin' not found`), 'unknown plugin, with its path')
  t.match(r2.stderr, new RegExp(`${file2}: /routes/0/plugins/1: plugin 'mine' not found: no file at`), 'missing module, with its path')
})

t.test('validate: plugin create() failing in the dry run is a config error', async (t) => {
  const dir = t.testdir({
    'g.json': JSON.stringify({
      routes: [{ name: 'a', match: { path: '/' }, upstream: 'http://127.0.0.1:1', plugins: [{ name: 'create-fails', module: join(FIXTURES, 'plugins/create-fails.mjs'), config: { limit: 0 } }] }]
    })
  })
  const r = await runCli(['validate', join(dir, 'g.json')])
  t.equal(r.code, 2)
  t.match(r.stderr, /g\.json: \/routes\/0\/plugins\/0: plugin 'create-fails' failed in create\(\): limit must not be 0/)
})

t.test('validate: unreadable and unparsable files', async (t) => {
  const dir = t.testdir({ 'broken.yaml': 'routes: [\n  - name: a\n    oops: : :\n', 'dup.yaml': 'routes: []\nroutes: []\n', 'broken.json': '{"routes": [' })
  for (const f of ['broken.yaml', 'dup.yaml', 'broken.json']) {
    const r = await runCli(['validate', join(dir, f)])
    t.equal(r.code, 2, `${f} -> exit 2`)
    t.match(r.stderr, /cannot parse config file/)
    t.ok(noStack(r.stderr))
  }
  const missing = await runCli(['validate', join(dir, 'nope.yaml')])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /cannot read config file .*nope\.yaml.*ENOENT/)
  const notAPlugin = await runCli(['--upstream', 'http://127.0.0.1:1', '--plugin', join(FIXTURES, 'plugins/not-a-plugin.mjs'), '--port', '0'])
  t.equal(notAPlugin.code, 2)
  t.match(notAPlugin.stderr, /is not a tollgate plugin/)
})

t.test('a port in use is one clear line and exit 2', async (t) => {
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { blocker.close() })
  const port = (blocker.address() as AddressInfo).port
  const r = await runCli(['--upstream', 'http://127.0.0.1:1', '--port', String(port), '--workers', '1'])
  t.equal(r.code, 2)
  t.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use`))
  t.ok(noStack(r.stderr))
})

t.test('--config with flags: the file, plus --port override', async (t) => {
  const up = await startUpstream(t)
  const dir = t.testdir({})
  const file = join(dir, 'g.yaml')
  writeFileSync(file, `listen: { port: 1 }\nworkers: 1\nroutes:\n  - name: all\n    match: { path: / }\n    upstream: ${up.url}\n`)
  const gw = await startGateway(t, { args: ['--config', file, '--port', '0', '--log-level', 'warn'] })
  const res = await request(`${gw.url}/x`)
  t.equal(res.statusCode, 200)
  await res.body.text()
})

t.test('the embedded demo starts with no arguments and prints what to try', async (t) => {
  const gw = await startGateway(t, { args: ['--port', '0', '--workers', '1'] })
  // stderr and stdout are separate pipes: the banner may arrive after the listening line.
  for (let i = 0; i < 100 && !gw.stderr().includes('curl'); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.match(gw.stderr(), /curl -i http:\/\/127\.0\.0\.1:\d+\/hello/, 'prints curl commands')
  const res = await request(`${gw.url}/hello`)
  const body = await res.body.json() as Record<string, unknown>
  t.equal(res.statusCode, 200)
  t.equal(body.hello, 'from the demo upstream')
  t.equal(body.requestId, res.headers['x-request-id'], 'the demo runs request-id')
  const del = await request(`${gw.url}/orders`, { method: 'DELETE' })
  await del.body.text()
  t.equal(del.statusCode, 405)
  await gw.waitFor((l) => l.msg === 'access' && l.path === '/orders')
  t.equal((await gw.stop()).code, 0)
})

t.test('the binary is executable as tollgate', async (t) => {
  t.match(readFileSync(BIN, 'utf8'), /^#!\/usr\/bin\/env node/)
})

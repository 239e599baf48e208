// The admin dashboard (GET / on the admin listener) in headless Chromium: Debian's
// `chromium` package, driven by playwright-core through executablePath (.ci/run installs it).
// Two servers: the real gateway (status, blocks, the page as served, its CSP), and a small
// stand-in admin API that serves the same page with a Prometheus /metrics of known values,
// since this branch's gateway has no /metrics yet.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { DASHBOARD_CSP, DASHBOARD_HTML } from '../src/admin/dashboard-page.js'
import { ROOT, startGateway, startUpstream } from './helpers/gateway.js'

type Json = Record<string, any>
const TOKEN = 'dash-token-0123456789abcdef'
const VIEWPORT = { width: 1280, height: 800 }
const ARTIFACTS = join(ROOT, 'artifacts')

// Heavy: a browser and a gateway on a possibly loaded machine.
t.setTimeout(300_000)

const chromium = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p !== undefined && p !== '' && existsSync(p))

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

function get (port: number, path: string, opts: { method?: string, headers?: Record<string, string>, from?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false, localAddress: opts.from }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`${path}: no answer in 10 s`)))
    req.on('error', reject)
    req.end()
  })
}

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('base64')

/** Width and height from a PNG's IHDR chunk, after checking the signature. */
function pngSize (buf: Buffer): { width: number, height: number } | undefined {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  if (buf.length < 24 || !buf.subarray(0, 8).equals(sig) || buf.toString('latin1', 12, 16) !== 'IHDR') return undefined
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) }
}

async function launch (t: { teardown: (fn: () => void | Promise<void>) => void }): Promise<import('playwright-core').Browser> {
  const { chromium: pw } = await import('playwright-core')
  const browser = await pw.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] })
  t.teardown(() => browser.close())
  return browser
}

/** Console messages that say the page broke its own CSP, and uncaught page errors. */
function watchErrors (page: import('playwright-core').Page): string[] {
  const errors: string[] = []
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text()) })
  page.on('pageerror', (e) => errors.push(String(e)))
  return errors
}

t.test('GET / serves the page without a token, locked down by its CSP', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { config: { logLevel: 'warn', workers: 1, admin: { port: 0, tokens: [{ name: 'ops', token: TOKEN }] }, routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }] } })
  const admin = ((gw.lines.find((l) => l.msg === 'listening') as Json).admin as Json).port as number
  const page = await get(admin, '/')
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html; charset=utf-8/)
  t.equal(page.body, DASHBOARD_HTML)
  const csp = String(page.headers['content-security-policy'])
  t.equal(csp, DASHBOARD_CSP)
  t.match(csp, /default-src 'none'/)
  t.match(csp, /frame-ancestors 'none'/)
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'no inline or eval allowance')
  const script = /<script>([\s\S]*)<\/script>/.exec(page.body)?.[1] as string
  const style = /<style>([\s\S]*)<\/style>/.exec(page.body)?.[1] as string
  t.ok(csp.includes(`script-src 'sha256-${sha256(script)}'`), 'the inline script is allowed by its hash, and nothing else is')
  t.ok(csp.includes(`style-src 'sha256-${sha256(style)}'`), 'the same for the style')
  t.notMatch(page.body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/, 'the script never parses text as HTML or code')
  t.equal(page.headers['x-frame-options'], 'DENY')
  t.equal((await get(admin, '/', { method: 'HEAD' })).status, 200)
  t.equal((await get(admin, '/status')).status, 401, 'the data still needs the token')
  t.equal((await get(admin, '/index.html')).status, 401, 'only / is open')
})

t.test('in Chromium: the page asks for the token, then shows workers, generation and blocked addresses', async (t) => {
  if (chromium === undefined) {
    if (process.env.CI !== undefined && process.env.CI !== '') throw new Error('chromium is not installed, and CI must run the dashboard tests (.ci/run installs Debian\'s chromium)')
    t.skip('chromium is not installed (apt-get install chromium); CI runs this test')
    return
  }
  const up = await startUpstream(t, (req, res) => {
    const m = /^\/s\/([0-9]{3})$/.exec(req.url ?? '')
    res.writeHead(m === null ? 200 : Number(m[1]), { 'content-type': 'text/plain' })
    res.end('ok')
  })
  const gw = await startGateway(t, {
    config: {
      logLevel: 'warn',
      workers: 2,
      admin: { port: 0, tokens: [{ name: 'ops', token: TOKEN }] },
      plugins: [{ name: 'threat-guard', config: { threshold: 3, window: '1h', blockFor: '1h' } }],
      routes: [{ name: 'api', match: { path: '/' }, upstream: up.url }]
    }
  })
  const admin = ((gw.lines.find((l) => l.msg === 'listening') as Json).admin as Json).port as number
  const browser = await launch(t)
  const page = await browser.newPage({ viewport: VIEWPORT, deviceScaleFactor: 1 })
  const errors = watchErrors(page)
  await page.goto(`http://127.0.0.1:${admin}/`)
  await page.waitForFunction(() => document.getElementById('state')?.textContent === 'token required', undefined, { timeout: 30_000 })
  t.pass('without a token the page says one is required')
  await page.fill('#token', TOKEN)
  await page.click('#connect')
  await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 30_000 })
  t.equal(await page.inputValue('#token'), '', 'the token field is cleared once used')
  t.equal(await page.evaluate(() => sessionStorage.getItem('tollgate-admin-token')), TOKEN, 'the token is kept in sessionStorage')
  t.equal(await page.textContent('#workers'), '2 / 2 serving')
  t.equal(await page.textContent('#generation'), '1')
  t.equal(await page.locator('#worker-table tbody tr').count(), 2, 'a row per worker')
  t.same(await page.locator('#upstream-table tbody tr').first().locator('td').allTextContents(), ['api', up.url, '1', 'healthy', '0'], 'a row per upstream target, with its health')
  await page.waitForFunction(() => document.getElementById('metrics-state')?.textContent === 'metrics: live', undefined, { timeout: 30_000 })
  t.pass("the gateway's own /metrics is read (the page's parsing is checked on known values below)")
  // The block list is fetched after /metrics within one refresh: wait for it to be drawn.
  await page.waitForFunction(() => (document.querySelector('#blocked tbody')?.textContent ?? '') !== '', undefined, { timeout: 30_000 })
  t.match(await page.textContent('#blocked tbody'), /no address is blocked/)

  // Three strikes from 127.0.0.2 block it; the page shows it at its next refresh.
  for (let i = 0; i < 3; i++) t.equal((await get(gw.port, '/s/401', { from: '127.0.0.2' })).status, 401)
  await page.waitForFunction(() => (document.querySelector('#blocked tbody')?.textContent ?? '').includes('127.0.0.2'), undefined, { timeout: 30_000 })
  const row = await page.locator('#blocked tbody tr').first().locator('td').allTextContents()
  t.equal(row[0], '127.0.0.2')
  t.match(row[2], /^3 bad answers: 401 × 3$/)
  t.match(await page.textContent('#blocks-summary'), /^1 blocked now, 1 placed since start$/)

  mkdirSync(ARTIFACTS, { recursive: true })
  const file = join(ARTIFACTS, 'dashboard.png')
  await page.screenshot({ path: file })
  const png = readFileSync(file)
  t.ok(png.length > 1000, `the screenshot is not empty (${png.length} bytes, kept at ${file})`)
  t.same(pngSize(png), VIEWPORT, 'a PNG of the viewport size')
  t.same(errors, [], 'no CSP violation and no script error')
})

t.test('in Chromium: Prometheus metrics are parsed into rates, status classes, latency quantiles and denials, escaped', async (t) => {
  if (chromium === undefined) {
    if (process.env.CI !== undefined && process.env.CI !== '') throw new Error('chromium is not installed, and CI must run the dashboard tests')
    t.skip('chromium is not installed (apt-get install chromium); CI runs this test')
    return
  }
  // A stand-in admin API with the page and fixed figures; the request count grows by 30 per
  // scrape, so the page has a rate to show from its second refresh on.
  let scrapes = 0
  const hostile = '<img src=x id=pwned>'
  const metrics = (): string => {
    const n = 1000 + 30 * scrapes++
    const bucket = (route: string, le: string, c: number): string => `tollgate_request_duration_seconds_bucket{route="${route}",le="${le}"} ${c}`
    return [
      '# HELP tollgate_requests_total Requests by route, method and status class.',
      '# TYPE tollgate_requests_total counter',
      `tollgate_requests_total{route="api",method="GET",status_class="2xx"} ${n - 200}`,
      'tollgate_requests_total{route="api",method="GET",status_class="4xx"} 150',
      'tollgate_requests_total{route="api",method="POST",status_class="5xx"} 50',
      '# TYPE tollgate_request_duration_seconds histogram',
      ...['a', 'b'].flatMap((r) => [bucket(r, '0.005', 5), bucket(r, '0.01', 25), bucket(r, '0.025', 45), bucket(r, '0.05', 50), bucket(r, '0.1', 50), bucket(r, '+Inf', 50)]),
      'tollgate_request_duration_seconds_sum{route="a"} 1.2',
      'tollgate_request_duration_seconds_count{route="a"} 50',
      '# TYPE tollgate_denials_total counter',
      'tollgate_denials_total{plugin="rate-limit",code="RATE_LIMITED"} 7',
      `tollgate_denials_total{plugin="ip-filter",code="${hostile.replace(/"/g, '\\"')}"} 3`,
      'tollgate_denials_total{plugin="key-auth",code="KEY_\\"QUOTED\\""} 1',
      ''
    ].join('\n')
  }
  const server = createServer((req, res) => {
    const send = (status: number, type: string, body: string, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': type, ...headers })
      res.end(body)
    }
    if (req.url === '/') return send(200, 'text/html; charset=utf-8', DASHBOARD_HTML, { 'content-security-policy': DASHBOARD_CSP })
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(401, 'application/problem+json', '{}')
    if (req.url === '/status') return send(200, 'application/json', JSON.stringify({ generation: 7, configVersion: 3, uptimeS: 12, workers: [{ slot: 0, alive: true, generation: 7, inFlight: 0 }, { slot: 1, alive: false }] }))
    if (req.url === '/metrics') return send(200, 'text/plain; version=0.0.4', metrics())
    if (req.url === '/blocks') return send(200, 'application/json', JSON.stringify({ blocks: [], blockedIps: 0, autoblocksTotal: 0 }))
    send(404, 'text/plain', 'no')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const port = (server.address() as AddressInfo).port

  const browser = await launch(t)
  const page = await browser.newPage({ viewport: VIEWPORT })
  const errors = watchErrors(page)
  await page.goto(`http://127.0.0.1:${port}/`)
  await page.fill('#token', TOKEN)
  await page.click('#connect')
  await page.waitForFunction(() => document.getElementById('metrics-state')?.textContent === 'metrics: live', undefined, { timeout: 30_000 })
  t.equal(await page.textContent('#workers'), '1 / 2 serving')
  t.equal(await page.textContent('#generation'), '7')
  // Buckets summed over routes: 10, 50, 90, 100, 100 of 100. p50: rank 50 ends the 10 ms
  // bucket; p99: rank 99 is 9/10 of the way through the 25-50 ms bucket.
  t.equal(await page.textContent('#p50'), '10.0 ms')
  t.equal(await page.textContent('#p99'), '47.5 ms')
  const classes = await page.locator('#status-classes tbody tr').evaluateAll((rows) => rows.map((r) => [r.children[0]?.textContent, r.children[1]?.textContent]))
  t.same(classes, [['2xx', '800'], ['4xx', '150'], ['5xx', '50']], 'status classes summed over routes and methods')
  const denials = await page.locator('#denials tbody tr').evaluateAll((rows) => rows.map((r) => [...r.children].map((c) => c.textContent)))
  t.same(denials, [['rate-limit', 'RATE_LIMITED', '7'], ['ip-filter', hostile, '3'], ['key-auth', 'KEY_"QUOTED"', '1']], 'denials by plugin and code, most first; label escapes undone')
  t.equal(await page.locator('#pwned').count(), 0, 'a hostile label is shown as text, never made an element')
  await page.waitForFunction(() => /^[0-9]+\.[0-9]$/.test(document.getElementById('rps')?.textContent ?? ''), undefined, { timeout: 30_000 })
  t.ok(Number(await page.textContent('#rps')) > 0, 'a request rate from two scrapes')
  t.same(errors, [], 'no CSP violation and no script error')
})

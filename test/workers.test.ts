import t from 'tap'
import { request } from 'undici'
import { FIXTURES, startGateway, startUpstream } from './helpers/gateway.js'

const fixture = (name: string): string => `${FIXTURES}plugins/${name}.mjs`

async function threadOf (url: string): Promise<string> {
  // A new connection each time: the kernel spreads connections, not requests.
  const res = await request(url, { headers: { connection: 'close' }, reset: true })
  await res.body.text()
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
  return String(res.headers['x-thread-id'])
}

t.test('requests are served by more than one worker thread', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: { logLevel: 'warn', workers: 2, plugins: [{ name: 'thread-id', module: fixture('thread-id') }], routes: [{ name: 'r', match: { path: '/' }, upstream: up.url }] }
  })
  const seen = new Map<string, number>()
  for (let i = 0; i < 100; i++) {
    const id = await threadOf(`${gw.url}/`)
    seen.set(id, (seen.get(id) ?? 0) + 1)
  }
  t.equal(seen.size, 2, `both threads served (${JSON.stringify([...seen])})`)
  for (const [id, n] of seen) t.ok(n >= 10, `thread ${id} took a fair share (${n} of 100)`)
})

t.test('a crashed worker is replaced while the others keep serving', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      workers: 2,
      plugins: [{ name: 'thread-id', module: fixture('thread-id') }, { name: 'thrower', module: fixture('thrower') }],
      routes: [{ name: 'r', match: { path: '/' }, upstream: up.url }]
    }
  })
  const before = new Set<string>()
  for (let i = 0; i < 40; i++) before.add(await threadOf(`${gw.url}/`))
  t.equal(before.size, 2)

  // Keep a steady stream of requests going while one thread dies.
  let ok = 0
  let failed = 0
  let running = true
  const load = (async () => {
    while (running) {
      try {
        await threadOf(`${gw.url}/`)
        ok++
      } catch {
        failed++
      }
    }
  })()
  // The crashing request may or may not get its answer: the thread dies right after it.
  await request(`${gw.url}/crash`).then(async (r) => { await r.body.text() }, () => {})
  await gw.waitFor((l) => l.msg === 'worker thread died; replacing it')
  const serving = (): number => gw.lines.filter((l) => l.msg === 'worker serving').length
  await gw.waitFor(() => serving() > 2)
  t.equal(serving(), 3, 'two threads at start, then one replacement serving')
  await new Promise((resolve) => setTimeout(resolve, 300))
  running = false
  await load
  t.ok(ok > 20, `requests kept succeeding during the crash (${ok} ok)`)
  t.ok(failed <= 3, `at most the crashing thread's in-flight connections failed (${failed})`)

  const after = new Set<string>()
  for (let i = 0; i < 60; i++) after.add(await threadOf(`${gw.url}/`))
  t.equal(after.size, 2, 'two threads serve again')
  t.ok([...after].some((id) => !before.has(id)), 'one of them is the new thread')
})

t.test('SIGTERM drains: an in-flight slow request completes, then exit 0', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('slow but complete') }, 1500)
  })
  const gw = await startGateway(t, { config: { workers: 2, routes: [{ name: 'r', match: { path: '/' }, upstream: up.url }] } })
  const inflight = request(`${gw.url}/slow`)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const exit = gw.stop('SIGTERM')
  const res = await inflight
  t.equal(res.statusCode, 200, 'the in-flight request got its answer')
  t.equal(await res.body.text(), 'slow but complete')
  t.equal(res.headers.connection, 'close', 'and was told the connection closes')
  const { code } = await exit
  t.equal(code, 0, 'exit code 0')
  t.ok(gw.lines.some((l) => l.msg === 'draining'), 'logged draining')
  t.ok(gw.lines.some((l) => l.msg === 'stopped'), 'logged stopped')
  await t.rejects(request(`${gw.url}/after`), 'no longer accepting')
})

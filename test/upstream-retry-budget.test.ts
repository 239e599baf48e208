// CHECKLIST G7: with half of the upstream's answers failing, retries stay within the retry
// budget (Envoy's: 20% of the requests in flight), across worker threads.
import t from 'tap'
import { startGateway } from './helpers/gateway.js'
import { client, get, named, tally } from './helpers/upstreams.js'

t.test('G7: with half the requests failing, retries stay within the budget', async (t) => {
  let n = 0
  const flaky = await named(t, 'flaky', (_req, res) => {
    const fail = n++ % 2 === 0
    setTimeout(() => { res.writeHead(fail ? 503 : 200); res.end(fail ? 'no' : 'ok') }, 300)
  })
  const gw = await startGateway(t, {
    config: { logLevel: 'warn', routes: [{ name: 'f', match: { path: '/' }, upstream: { targets: [flaky.url], passive: { consecutiveFailures: 0 }, retries: { attempts: 3, backoff: 0 } } }] }
  })
  const agent = client(t, 200)
  await get(agent, `${gw.url}/warm`)
  n = 0
  const before = flaky.hits()
  const answers = await Promise.all(Array.from({ length: 100 }, async () => await get(agent, `${gw.url}/x`)))
  const retries = flaky.hits() - before - 100
  const counts = tally(answers, (a) => String(a.status))
  // Without a budget each of ~50 failures would be retried (and half of those again): ~75+.
  t.ok(retries <= 30, `retries stay near 20% of the 100 in flight (${retries})`)
  t.ok(retries >= 1, `but some were retried (${retries})`)
  t.ok((counts['503'] ?? 0) >= 10, `failures over the budget reach the client as the upstream's 503 (${JSON.stringify(counts)})`)
})

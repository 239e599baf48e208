import t from 'tap'
import { Router } from '../src/router.js'
import type { RouteDef } from '../src/router.js'

const def = (value: string, path: string, extra: Partial<RouteDef<string>> = {}): RouteDef<string> =>
  ({ path, exact: false, methods: undefined, hosts: undefined, value, ...extra })

const router = new Router<string>([
  def('orders', '/orders', { methods: ['GET', 'POST'] }),
  def('order', '/orders/:id', { methods: ['GET'] }),
  def('order-delete', '/orders/:id', { methods: ['DELETE'] }),
  def('health', '/health', { exact: true }),
  def('api-a', '/api', { hosts: ['a.example'] }),
  def('root', '/')
])

// [method, path, host, expected route or status]
const cases: Array<[string, string, string, string]> = [
  ['GET', '/orders', 'x', 'orders'],
  ['HEAD', '/orders', 'x', 'orders'],
  ['POST', '/orders/', 'x', 'orders'],
  ['GET', '/orders/42', 'x', 'order'],
  ['DELETE', '/orders/42', 'x', 'order-delete'],
  ['GET', '/orders/42/items', 'x', 'order'],
  ['PUT', '/orders/42', 'x', '405 GET, HEAD, DELETE'],
  ['DELETE', '/orders', 'x', '405 GET, HEAD, POST'],
  ['GET', '/ordersx', 'x', 'root'],
  ['GET', '/health', 'x', 'health'],
  ['GET', '/health/deep', 'x', 'root'],
  ['GET', '/api/v1', 'a.example', 'api-a'],
  ['GET', '/api/v1', 'b.example', 'root'],
  ['GET', '/', 'x', 'root'],
  ['GET', '/anything/else', 'x', 'root']
]

for (const [method, path, host, want] of cases) {
  const m = router.find(method, path, host)
  const got = m.kind === 'found' ? m.value : m.kind === 'method-not-allowed' ? `405 ${m.allowed.join(', ')}` : '404'
  t.equal(got, want, `${method} ${host}${path} -> ${want}`)
}

t.test('params', async (t) => {
  const m = router.find('GET', '/orders/a%20b/items', 'x')
  t.equal(m.kind, 'found')
  if (m.kind === 'found') t.same({ ...m.params }, { id: 'a b' }, 'decoded :id, no wildcard leftover')
})

t.test('no catch-all: unknown paths are 404', async (t) => {
  const r = new Router<string>([def('a', '/a')])
  t.equal(r.find('GET', '/b', 'x').kind, 'not-found')
  t.equal(r.find('GET', '/', 'x').kind, 'not-found')
  t.equal(r.find('GET', '/a/b', 'x').kind, 'found')
})

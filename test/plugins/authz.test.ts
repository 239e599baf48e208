import t from 'tap'
import acl from '../../plugins/acl/index.js'
import scopes from '../../plugins/scopes/index.js'
import { createPluginHarness } from '../../src/testing.js'

t.test('acl: config that checks nothing is refused', async (t) => {
  await t.rejects(createPluginHarness(acl, {}), { message: /a rule that checks nothing is a mistake/ })
  await t.rejects(createPluginHarness(acl, { allow: [] }), { details: ['/allow: must NOT have fewer than 1 items'] })
  await t.rejects(createPluginHarness(acl, { methods: { FETCH: { allow: ['a'] } } }), { details: [/^\/methods: unknown property 'FETCH'|^\/methods/] })
})

t.test('acl: deny wins, allow needs one group, per method', async (t) => {
  const h = await createPluginHarness(acl, { allow: ['staff', 'admins'], deny: ['suspended'], methods: { DELETE: { allow: ['admins'] } } })
  const cases: Array<[string, string[] | undefined, number | undefined, string | undefined]> = [
    ['GET', ['staff'], undefined, undefined],
    ['GET', ['admins', 'x'], undefined, undefined],
    ['GET', ['staff', 'suspended'], 403, 'GROUP_DENIED'],
    ['GET', ['guests'], 403, 'GROUP_NOT_ALLOWED'],
    ['GET', [], 403, 'GROUP_NOT_ALLOWED'],
    ['GET', undefined, 401, 'NOT_AUTHENTICATED'],
    ['DELETE', ['staff'], 403, 'GROUP_NOT_ALLOWED'],
    ['DELETE', ['admins'], undefined, undefined],
    // The DELETE rule replaces the top-level one: it has no deny list.
    ['DELETE', ['admins', 'suspended'], undefined, undefined]
  ]
  for (const [method, groups, status, code] of cases) {
    const r = await h.request({ method, consumer: groups === undefined ? undefined : { id: 'c', groups } })
    t.equal(r.status, status, `${method} ${JSON.stringify(groups)}`)
    t.equal(r.ctx.outcome.code, code)
  }
  // The anonymous consumer is judged by its groups like any other.
  t.equal((await h.request({ consumer: { id: 'guest', groups: ['guests'], anonymous: true } })).status, 403)
})

t.test('acl: only per-method rules leave other methods alone', async (t) => {
  const h = await createPluginHarness(acl, { methods: { POST: { allow: ['writers'] } } })
  t.equal((await h.request({ method: 'GET' })).replied, false)
  t.equal((await h.request({ method: 'POST', consumer: { id: 'c', groups: ['readers'] } })).status, 403)
  t.equal((await h.request({ method: 'POST', consumer: { id: 'c', groups: ['writers'] } })).replied, false)
})

t.test('scopes: any-of, all-of, per method, RFC 6750 challenge', async (t) => {
  await t.rejects(createPluginHarness(scopes, {}), { message: /a rule that requires nothing is a mistake/ })
  await t.rejects(createPluginHarness(scopes, { anyOf: ['a b'] }), { details: [/^\/anyOf\/0: must match/] })
  const h = await createPluginHarness(scopes, { anyOf: ['read', 'admin'], allOf: ['tenant:1'], methods: { PUT: { allOf: ['write', 'tenant:1'] } } })
  const cases: Array<[string, string[] | undefined, number | undefined]> = [
    ['GET', ['read', 'tenant:1'], undefined],
    ['GET', ['admin', 'tenant:1', 'x'], undefined],
    ['GET', ['read'], 403],
    ['GET', ['tenant:1'], 403],
    ['GET', [], 403],
    ['GET', undefined, 401],
    ['PUT', ['write', 'tenant:1'], undefined],
    ['PUT', ['write', 'read'], 403],
    ['PUT', ['read', 'tenant:1'], 403]
  ]
  for (const [method, has, status] of cases) {
    const r = await h.request({ method, consumer: has === undefined ? undefined : { id: 'c', scopes: has } })
    t.equal(r.status, status, `${method} ${JSON.stringify(has)}`)
    if (status === 403) {
      t.equal(r.ctx.outcome.code, 'INSUFFICIENT_SCOPE')
      t.equal(r.responseHeaders['www-authenticate'], method === 'PUT'
        ? 'Bearer realm="tollgate", error="insufficient_scope", scope="write tenant:1"'
        : 'Bearer realm="tollgate", error="insufficient_scope", scope="tenant:1 read admin"')
    }
  }
})

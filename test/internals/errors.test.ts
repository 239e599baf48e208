import { readFileSync } from 'node:fs'
import t from 'tap'
import { codes, GatewayError } from '../../src/errors.js'

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')

t.test('every error code is documented in docs/errors.md', async (t) => {
  for (const code of Object.keys(codes)) t.match(doc, `\`${code}\``, code)
})

t.test('factories make branded, coded errors', async (t) => {
  const e = codes.GW_ERR_PLUGIN_DEPENDENCY('a', 'b')
  t.ok(e instanceof GatewayError)
  t.ok(e instanceof Error)
  t.equal(e.code, 'GW_ERR_PLUGIN_DEPENDENCY')
  t.equal(e.message, "plugin 'a' requires 'b' in the same pipeline")
  t.same(e.toJSON(), { code: 'GW_ERR_PLUGIN_DEPENDENCY', message: "plugin 'a' requires 'b' in the same pipeline", statusCode: 500, details: [] })
  const withDetails = codes.GW_ERR_CONFIG_INVALID('f', 1, { details: ['f: /x: bad'] })
  t.same(withDetails.details, ['f: /x: bad'])
  // A look-alike from another copy of the module is recognised by its brand.
  t.ok(Object.assign(Object.create(null), { [Symbol.for('tollgate.error')]: true }) instanceof GatewayError)
  t.notOk(new Error('x') instanceof GatewayError)
})

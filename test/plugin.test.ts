import t from 'tap'
import { definePlugin, isPlugin, registerPlugin, pluginFromModule } from '../src/plugin.js'

const good = { name: 'good', phase: 'access' as const, schema: { type: 'object' }, create: () => ({}) }

t.test('definePlugin checks shape with a TypeError', async (t) => {
  t.ok(isPlugin(definePlugin(good)), 'a good definition is branded')
  const bad: Array<[string, unknown]> = [
    ['no object', null],
    ['bad name', { ...good, name: 'Bad Name' }],
    ['bad phase', { ...good, phase: 'later' }],
    ['schema not an object', { ...good, schema: 'x' }],
    ['create missing', { ...good, create: undefined }],
    ['bad semver range', { ...good, tollgate: 'not-a-range' }],
    ['dependencies not strings', { ...good, dependencies: [1] }],
    ['preparedKeys not strings', { ...good, preparedKeys: [1] }],
    ['prepare not a function', { ...good, prepare: 'x' }]
  ]
  for (const [name, def] of bad) t.throws(() => definePlugin(def as never), TypeError, name)
  t.ok(Object.isFrozen(definePlugin(good)), 'the result is frozen')
})

t.test('registerPlugin: version range and dependencies', async (t) => {
  t.throws(() => registerPlugin(definePlugin({ ...good, tollgate: '>=99' }), ['good']), { code: 'GW_ERR_PLUGIN_VERSION' })
  t.throws(() => registerPlugin(definePlugin({ ...good, dependencies: ['request-id'] }), ['good']), { code: 'GW_ERR_PLUGIN_DEPENDENCY', message: "plugin 'good' requires 'request-id' in the same pipeline" })
  t.doesNotThrow(() => registerPlugin(definePlugin({ ...good, tollgate: '>=0.1.0', dependencies: ['request-id'] }), ['request-id', 'good']))
})

t.test('pluginFromModule takes the default export or refuses', async (t) => {
  const p = definePlugin(good)
  t.equal(pluginFromModule('good', { default: p }), p)
  t.throws(() => pluginFromModule('x', { default: { name: 'x' } }), { code: 'GW_ERR_PLUGIN_INVALID' })
})

import { readFileSync } from 'node:fs'
import t from 'tap'
import { gatewaySchema } from '../../src/config-schema.js'

// The published schema is generated from the validator's own schema at build time; this
// catches a stale committed copy (fastify's test:validator:integrity, in spirit).
t.test('schema/gateway.schema.json matches the validator schema', async (t) => {
  const published = JSON.parse(readFileSync(new URL('../../schema/gateway.schema.json', import.meta.url), 'utf8')) as unknown
  const expected = JSON.parse(JSON.stringify(gatewaySchema).replaceAll('"format":"http-url"', '"format":"uri"')) as unknown
  t.same(published, expected)
})

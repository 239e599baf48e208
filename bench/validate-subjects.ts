// The request-validator subjects of the bench: tollgate POSTing a 1 KiB JSON order that a
// realistic schema accepts (so every request is read, scanned, parsed, validated and sent
// upstream from memory); and the same POST through tollgate without the plugin (streamed)
// and with a plugin that only reads the body (buffered, sent from memory), to tell the
// validator's own cost from the cost of carrying a body. Compare all with `tollgate`.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { startTollgateWithConfig } from './lib/tollgate.js'
import type { ControlRequest, RunningSubject, Subject, SubjectContext, SubjectGroup } from './lib/subject.js'

const HOST = '127.0.0.1'

/** An order as a shop's API takes it: nested objects, an array of line items, formats and patterns. */
export const ORDER_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['orderId', 'currency', 'customer', 'items', 'shipping'],
  properties: {
    orderId: { type: 'string', pattern: '^ord_[0-9a-f]{16}$' },
    createdAt: { type: 'string', format: 'date-time' },
    currency: { type: 'string', enum: ['EUR', 'USD', 'GBP'] },
    customer: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'email'],
      properties: {
        id: { type: 'string', minLength: 1, maxLength: 64 },
        email: { type: 'string', format: 'email', maxLength: 254 },
        name: { type: 'string', maxLength: 200 },
        phone: { type: 'string', pattern: '^\\+?[0-9 ()-]{6,20}$' }
      }
    },
    items: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['sku', 'quantity', 'unitPrice'],
        properties: {
          sku: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{4}$' },
          quantity: { type: 'integer', minimum: 1, maximum: 1000 },
          unitPrice: { type: 'number', minimum: 0 },
          note: { type: 'string', maxLength: 500 }
        }
      }
    },
    shipping: {
      type: 'object',
      additionalProperties: false,
      required: ['street', 'city', 'postalCode', 'country'],
      properties: {
        street: { type: 'string', maxLength: 200 },
        city: { type: 'string', maxLength: 100 },
        postalCode: { type: 'string', pattern: '^[A-Z0-9 -]{3,10}$' },
        country: { type: 'string', pattern: '^[A-Z]{2}$' }
      }
    },
    coupon: { type: ['string', 'null'], maxLength: 32 },
    tags: { type: 'array', maxItems: 10, uniqueItems: true, items: { type: 'string', maxLength: 32 } },
    metadata: { type: 'object', maxProperties: 20, additionalProperties: { type: 'string', maxLength: 256 } }
  }
}

/** A valid order of exactly 1 KiB (1,024 bytes of JSON). */
export function orderBody (size = 1024): string {
  const order = {
    orderId: 'ord_0123456789abcdef',
    createdAt: '2024-05-01T12:34:56Z',
    currency: 'EUR',
    customer: { id: 'cus_42', email: 'jane.doe@example.com', name: 'Jane Doe', phone: '+44 20 7946 0958' },
    items: Array.from({ length: 6 }, (_, i) => ({ sku: `ABC-${1000 + i}`, quantity: i + 1, unitPrice: 9.99 + i, note: 'gift wrap' })),
    shipping: { street: '221B Baker Street', city: 'London', postalCode: 'NW1 6XE', country: 'GB' },
    coupon: null,
    tags: ['web', 'priority'],
    metadata: { channel: 'web', campaign: 'spring', pad: '' }
  }
  const base = JSON.stringify(order).length
  if (base > size) throw new Error(`the order is ${base} bytes before padding, more than ${size}`)
  order.metadata.pad = 'x'.repeat(size - base)
  return JSON.stringify(order)
}

/**
 * A plugin that only reads the body (ctx.readBody), for the buffered baseline: the body is
 * then sent upstream from memory, as with the validator, but nothing is parsed or checked.
 */
function readBodyPlugin (root: string): string {
  return `import { definePlugin } from ${JSON.stringify(pathToFileURL(join(root, 'dist/src/plugin.js')).href)}
export default definePlugin({
  name: 'read-body',
  phase: 'validate',
  schema: { type: 'object', additionalProperties: false },
  create: () => ({ onRequest: (ctx) => ctx.readBody(1048576).then(() => {}) })
})
`
}

async function startTollgate (ctx: SubjectContext, name: string, plugins: unknown[], controls?: ControlRequest[]): Promise<RunningSubject> {
  const s = await startTollgateWithConfig(ctx.root, name, {
    config: { routes: [{ name: 'all', match: { path: '/' }, upstream: ctx.upstreamUrl, plugins }] },
    files: { 'read-body.mjs': readBodyPlugin(ctx.root) },
  })
  return {
    url: `http://${HOST}:${s.port}/`,
    headers: { 'content-type': 'application/json' },
    method: 'POST',
    body: orderBody(),
    pid: s.pid,
    controls,
    commandLine: s.commandLine,
    alive: s.alive,
    stop: s.stop,
  }
}

/** The proof the validator ran: an order with a bad currency is refused. */
export const invalidOrder: ControlRequest = {
  what: 'an order the schema refuses (currency XXX)',
  status: 400,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: orderBody().replace('"currency":"EUR"', '"currency":"XXX"')
}

export const validateSubjects: readonly Subject[] = [
  {
    name: 'tollgate-post',
    description: 'tollgate, 1 worker, no plugins, POSTing the 1 KiB JSON order (streamed)',
    start: (ctx) => startTollgate(ctx, 'tollgate-post', []),
  },
  {
    name: 'tollgate-read-body',
    description: 'tollgate, 1 worker: a plugin that only reads the body (ctx.readBody), POSTing the 1 KiB JSON order (buffered)',
    start: (ctx) => startTollgate(ctx, 'tollgate-read-body', [{ name: 'read-body', module: './read-body.mjs' }]),
  },
  {
    name: 'tollgate-validator',
    description: 'tollgate, 1 worker: request-validator with an order schema, POSTing a valid 1 KiB JSON order',
    start: (ctx) => startTollgate(ctx, 'tollgate-validator', [{ name: 'request-validator', config: { body: ORDER_SCHEMA } }], [invalidOrder]),
  },
]

export const validateGroup: SubjectGroup = { name: 'validate', description: 'request-validator with a 1 KiB JSON order, beside the same POST without it', subjects: validateSubjects }

/** The request-validator issue's target, as a fraction of the `tollgate` subject's req/s. */
export const validateTargets: Readonly<Record<string, number>> = {
  'tollgate-validator': 0.85,
}

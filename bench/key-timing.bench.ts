// CHECKLIST D2: does a wrong API key that shares a long prefix with a real one take longer
// to refuse than a wrong key that shares nothing? key-auth looks keys up by their SHA-256
// digest, so it should not: both cost one hash of the same length and one map miss.
// Run: `node dist/bench/key-timing.bench.js` after `npm run build` (about 10 s).
//
// The plugin's onRequest runs on a minimal context (no server), interleaving the three
// kinds of key batch by batch so drift hits them alike. Each figure is the median over
// batches of the per-call mean; the ratio near-prefix / no-prefix should be ~1.00.
import { createHash, randomBytes } from 'node:crypto'
import keyAuth from '../plugins/key-auth/index.js'
import { createPluginHarness } from '../src/testing.js'
import type { RequestContext } from '../src/types.js'
import { median } from './lib/stats.js'

const BATCHES = 31
const BATCH = 50_000

const real = randomBytes(24).toString('base64url') // 32 characters
const nearPrefix = real.slice(0, -1) + (real.endsWith('A') ? 'B' : 'A')
const noPrefix = (real.startsWith('A') ? 'B' : 'A') + randomBytes(24).toString('base64url').slice(1)
const consumers = Array.from({ length: 1000 }, (_, i) => ({ id: `c${i}`, credentials: { keys: [{ digest: 'sha256:' + createHash('sha256').update(i === 0 ? real : `other-${i}-${randomBytes(8).toString('hex')}`).digest('hex') }] } }))

const h = await createPluginHarness(keyAuth, {}, { consumers })
const onRequest = h.hooks.onRequest as (ctx: RequestContext) => void

function contextFor (key: string): { ctx: RequestContext, result: () => string } {
  let outcome = ''
  const values = [key]
  const ctx = {
    consumer: undefined,
    query: '',
    headerValues: (name: string) => (name === 'apikey' ? values : []),
    removeUpstreamHeader: () => {},
    authenticate: (c: { id: string }) => { outcome = c.id },
    authFailed: (f: { code: string }) => { outcome = f.code },
  } as unknown as RequestContext
  return { ctx, result: () => outcome }
}

const kinds = { 'right key': contextFor(real), 'wrong, 31 of 32 chars right': contextFor(nearPrefix), 'wrong, no prefix shared': contextFor(noPrefix) }
for (const [name, k] of Object.entries(kinds)) {
  onRequest(k.ctx)
  process.stderr.write(`${name.padEnd(30)} -> ${k.result()}\n`)
}
const ns: Record<string, number[]> = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]))
for (let b = 0; b < BATCHES + 3; b++) {
  for (const [name, k] of Object.entries(kinds)) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < BATCH; i++) onRequest(k.ctx)
    const per = Number(process.hrtime.bigint() - start) / BATCH
    if (b >= 3) ns[name]?.push(per)
  }
}
console.log(`key-auth onRequest, ${BATCHES} batches of ${BATCH.toLocaleString('en-US')}, 1,000 consumers`)
for (const [name, xs] of Object.entries(ns)) console.log(`  ${name.padEnd(30)} median ${median(xs).toFixed(0)} ns`)
const ratio = median(ns['wrong, 31 of 32 chars right'] ?? []) / median(ns['wrong, no prefix shared'] ?? [])
console.log(`  near-prefix / no-prefix: ${ratio.toFixed(3)} (1.00 = no timing signal)`)

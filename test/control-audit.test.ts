import t from 'tap'
import { appendFile, chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AuditLog } from '../src/control/audit.js'
import { maskSecrets, summarize } from '../src/control/diff.js'

const SECRET = 'sk_live_do-not-leak-4242'

const lines = async (file: string): Promise<Array<Record<string, unknown>>> =>
  (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)

t.test('entries are written as JSON lines and read back newest first', async (t) => {
  const file = join(t.testdir(), 'state', 'audit.log')
  const audit = AuditLog.open(file)
  const summary = summarize({ routes: [] }, { routes: [{ name: 'orders', match: { path: '/' }, upstream: 'http://a' }] })
  audit.record({ actor: 'startup', action: 'startup', result: 'applied', versionAfter: 1, generation: 1 })
  audit.record({ actor: 'ops', action: 'apply', result: 'applied', versionBefore: 1, versionAfter: 2, generation: 2, summary })
  audit.record({ actor: 'file', action: 'apply', result: 'refused', versionBefore: 2, reason: 'invalid config', problems: ['f.yaml: /routes: must be an array'] })
  audit.record({ actor: 'ops', action: 'rollback', result: 'failed', versionBefore: 2, reason: 'worker did not answer' })

  const got = await audit.entries()
  t.equal(got.length, 4)
  t.match(got, [
    { actor: 'ops', action: 'rollback', result: 'failed', versionBefore: 2, reason: 'worker did not answer' },
    { actor: 'file', action: 'apply', result: 'refused', problems: ['f.yaml: /routes: must be an array'] },
    { actor: 'ops', action: 'apply', result: 'applied', versionBefore: 1, versionAfter: 2, generation: 2, summary },
    { actor: 'startup', action: 'startup', result: 'applied', versionAfter: 1 }
  ])
  for (const e of got as Array<Record<string, unknown>>) {
    t.type(e.time, 'string')
    t.ok(!Number.isNaN(Date.parse(e.time as string)), 'time is an ISO date')
  }
  t.same(Object.keys(got[3] as object), ['level', 'time', 'actor', 'action', 'result', 'versionAfter', 'generation'], 'absent fields are left out')
  await audit.close()
  t.same((await audit.entries()).length, 4, 'readable after close')
})

t.test('only the entry fields are written', async (t) => {
  const file = join(t.testdir(), 'audit.log')
  const audit = AuditLog.open(file)
  const entry = { actor: 'ops', action: 'apply' as const, result: 'applied' as const, raw: { secret: SECRET } }
  audit.record(entry)
  await audit.close()
  t.notMatch(await readFile(file, 'utf8'), SECRET)
})

t.test('limit', async (t) => {
  const file = join(t.testdir(), 'audit.log')
  const audit = AuditLog.open(file)
  t.teardown(() => audit.close())
  t.same(await audit.entries(), [], 'nothing yet')
  for (let i = 1; i <= 30; i++) audit.record({ actor: 'ops', action: 'apply', result: 'applied', versionAfter: i })
  const five = await audit.entries(5)
  t.same(five.map((e) => (e as { versionAfter: number }).versionAfter), [30, 29, 28, 27, 26])
  t.equal((await audit.entries()).length, 30, 'default 100')
  t.same(await audit.entries(0), [])
  t.same(await audit.entries(-1), [])
})

t.test('no line lost after close() with many quick records, in order', async (t) => {
  const file = join(t.testdir(), 'audit.log')
  const audit = AuditLog.open(file)
  const N = 5000
  const reason = 'x'.repeat(200)
  for (let i = 0; i < N; i++) {
    audit.record({ actor: 'ops', action: 'patch', result: 'applied', versionAfter: i, reason })
    // Interleave with reads and event-loop turns so writes are in flight when flushes happen.
    if (i % 997 === 0) await audit.entries(1)
    if (i % 250 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  await audit.close()
  const all = await lines(file)
  t.equal(all.length, N)
  t.ok(all.every((e, i) => e.versionAfter === i), 'in record order')
  t.throws(() => audit.record({ actor: 'ops', action: 'apply', result: 'applied' }), { code: 'GW_ERR_STATE' })
  await audit.close()
})

t.test('close() right after open, before the file is even open', async (t) => {
  const file = join(t.testdir(), 'deep', 'er', 'audit.log')
  const audit = AuditLog.open(file)
  audit.record({ actor: 'signal', action: 'apply', result: 'applied', versionAfter: 3 })
  await audit.close()
  t.match(await lines(file), [{ actor: 'signal', versionAfter: 3 }])
})

t.test('appends to an existing log; entries() reads only the tail', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'audit.log')
  // 2 MiB of older history, then a line cut short by a crash.
  const old = JSON.stringify({ time: '2024-01-01T00:00:00.000Z', actor: 'old', action: 'apply', result: 'applied', reason: 'y'.repeat(1000) }) + '\n'
  await writeFile(file, old.repeat(Math.ceil(2 * 1024 * 1024 / old.length)))
  await appendFile(file, '{"time":"2024-01-01T00:00:00.000Z","actor":"cut sh')
  await appendFile(file, '\n')
  const audit = AuditLog.open(file)
  audit.record({ actor: 'ops', action: 'apply', result: 'applied', versionAfter: 9 })
  const got = await audit.entries(10_000)
  t.match(got[0], { actor: 'ops', versionAfter: 9 })
  t.ok(got.length < 1100, `bounded: ${got.length} entries from the last MiB`)
  t.ok(got.length > 900)
  t.ok(got.slice(1).every((e) => (e as { actor: string }).actor === 'old'), 'the cut line is skipped')
  await audit.close()
})

t.test('the file is 0600', { skip: process.platform === 'win32' && 'POSIX modes' }, async (t) => {
  const dir = t.testdir({ 'old.log': '' })
  const fresh = AuditLog.open(join(dir, 'audit.log'))
  fresh.record({ actor: 'ops', action: 'apply', result: 'applied' })
  await fresh.close()
  t.equal((await stat(join(dir, 'audit.log'))).mode & 0o777, 0o600)

  await chmod(join(dir, 'old.log'), 0o644)
  const existing = AuditLog.open(join(dir, 'old.log'))
  existing.record({ actor: 'ops', action: 'apply', result: 'applied' })
  await existing.close()
  t.equal((await stat(join(dir, 'old.log'))).mode & 0o777, 0o600, 'an existing file is tightened')
})

t.test('secrets never reach the file: a summary holds names only', async (t) => {
  const file = join(t.testdir(), 'audit.log')
  const audit = AuditLog.open(file)
  const before = { admin: { tokens: [{ name: 'ops', token: 'old' }] }, routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://a', plugins: [{ name: 'jwt', config: { secret: 'old' } }] }] }
  const after = { admin: { tokens: [{ name: 'ops', token: SECRET }] }, routes: [{ name: 'r', match: { path: '/' }, upstream: 'http://a', plugins: [{ name: 'jwt', config: { secret: SECRET } }] }] }
  // Summarised from the configs as written (not masked ones, where a rotated secret would
  // look unchanged): what changed is named, the values are not there.
  audit.record({ actor: 'ops', action: 'apply', result: 'applied', versionBefore: 1, versionAfter: 2, summary: summarize(before, after) })
  // A refusal whose problems the caller masked.
  audit.record({ actor: 'ops', action: 'apply', result: 'refused', versionBefore: 2, reason: 'invalid', problems: [JSON.stringify(maskSecrets(after.routes[0]?.plugins))] })
  await audit.close()
  t.notMatch(await readFile(file, 'utf8'), SECRET)
  t.match(await lines(file), [
    { summary: { plugins: { changed: ['r:jwt'] }, routes: { changed: ['r'] }, settings: ['admin'] } },
    { result: 'refused', problems: [/\[redacted\]/] }
  ])
})

t.test('a file that cannot be opened does not crash; close() reports it', async (t) => {
  const dir = t.testdir({ blocker: 'a file, not a directory' })
  const audit = AuditLog.open(join(dir, 'blocker', 'audit.log'))
  audit.record({ actor: 'ops', action: 'apply', result: 'applied' })
  await new Promise((resolve) => setTimeout(resolve, 50))
  await t.rejects(audit.close(), { code: 'GW_ERR_STATE', message: /could not be written/ })
})

import t from 'tap'
import { chmod, readdir, readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { VersionStore } from '../src/control/store.js'
import type { ConfigVersion } from '../src/control/types.js'

const cfg = (n: number): unknown => ({ routes: [{ name: `r${n}`, match: { path: '/' }, upstream: 'http://127.0.0.1:3000' }] })
const entry = (n: number, extra: Partial<ConfigVersion> = {}): Omit<ConfigVersion, 'version'> => ({
  raw: cfg(n), appliedAt: new Date(1_700_000_000_000 + n).toISOString(), actor: 'test', reason: 'apply', generation: n, ...extra
})
const versionFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => /^v\d+\.json$/.test(n)).sort()

t.test('append, list, get, latest', async (t) => {
  const dir = join(t.testdir(), 'state')
  const store = await VersionStore.open(dir, {})
  t.teardown(() => store.close())
  t.equal(store.latest(), undefined)
  t.same(store.list(), [])
  t.equal(store.nextVersion(), 1)
  t.same(store.warnings, [])

  const v1 = await store.append(entry(1))
  const v2 = await store.append(entry(2, { actor: 'alice', reason: 'patch' }))
  t.equal(v1.version, 1)
  t.equal(v2.version, 2)
  t.same(v2, { version: 2, raw: cfg(2), appliedAt: entry(2).appliedAt, actor: 'alice', reason: 'patch', generation: 2 })
  t.equal(store.latest()?.version, 2)
  t.same(store.list().map((v) => v.version), [2, 1], 'newest first')
  t.same(store.get(1)?.raw, cfg(1))
  t.equal(store.get(3), undefined)
  t.equal(store.nextVersion(), 3)
  t.same(await versionFiles(dir), ['v000001.json', 'v000002.json'])
  t.same(JSON.parse(await readFile(join(dir, 'v000002.json'), 'utf8')), v2, 'one version per file, as JSON')
})

t.test('the stored copy is not the caller object', async (t) => {
  const store = await VersionStore.open(t.testdir(), {})
  t.teardown(() => store.close())
  const raw = { routes: [] as unknown[] }
  await store.append({ raw, appliedAt: 'x', actor: 'a', reason: 'r', generation: 1 })
  raw.routes.push('changed later')
  t.same(store.latest()?.raw, { routes: [] })
})

t.test('concurrent appends are serialised and numbered in call order', async (t) => {
  const dir = t.testdir()
  const store = await VersionStore.open(dir, { keep: 100 })
  t.teardown(() => store.close())
  const out = await Promise.all(Array.from({ length: 20 }, async (_, i) => await store.append(entry(i))))
  t.same(out.map((v) => v.version), Array.from({ length: 20 }, (_, i) => i + 1))
  t.same(out.map((v) => v.generation), Array.from({ length: 20 }, (_, i) => i))
  t.equal((await versionFiles(dir)).length, 20)
  t.same((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'no temp file left')
})

t.test('an explicit version: higher is taken, reuse is refused', async (t) => {
  const store = await VersionStore.open(t.testdir(), {})
  t.teardown(() => store.close())
  await store.append(entry(1))
  t.equal((await store.append({ ...entry(2), version: 10 })).version, 10)
  t.equal(store.nextVersion(), 11)
  await t.rejects(store.append({ ...entry(3), version: 10 }), { code: 'GW_ERR_STATE', message: /would reuse a number/ })
  await t.rejects(store.append({ ...entry(3), version: 1.5 }), { code: 'GW_ERR_STATE' })
  t.equal((await store.append(entry(4))).version, 11, 'a refused append spends no number and does not block the chain')
})

t.test('a value that is not JSON is refused', async (t) => {
  const store = await VersionStore.open(t.testdir(), {})
  t.teardown(() => store.close())
  await t.rejects(store.append({ ...entry(1), raw: { n: 1n } }), { code: 'GW_ERR_STATE', message: /not JSON/ })
  t.equal(store.latest(), undefined)
})

t.test('a restart comes back with the latest version; numbering continues', async (t) => {
  const dir = t.testdir()
  const a = await VersionStore.open(dir, {})
  await a.append(entry(1))
  await a.append(entry(2))
  await a.append(entry(3))
  await a.close()

  const b = await VersionStore.open(dir, {})
  t.teardown(() => b.close())
  t.same(b.warnings, [])
  t.equal(b.latest()?.version, 3)
  t.same(b.latest()?.raw, cfg(3))
  t.same(b.list().map((v) => v.version), [3, 2, 1])
  t.equal(b.nextVersion(), 4)
  t.equal((await b.append(entry(4))).version, 4)
})

t.test('pruning keeps the newest; numbers are never reused', async (t) => {
  const dir = t.testdir()
  const a = await VersionStore.open(dir, { keep: 3 })
  for (let i = 1; i <= 5; i++) await a.append(entry(i))
  t.same(a.list().map((v) => v.version), [5, 4, 3])
  t.equal(a.get(2), undefined)
  t.same(await versionFiles(dir), ['v000003.json', 'v000004.json', 'v000005.json'])
  t.equal(a.nextVersion(), 6)
  await a.close()

  const b = await VersionStore.open(dir, { keep: 3 })
  t.equal(b.nextVersion(), 6)
  t.same(b.list().map((v) => v.version), [5, 4, 3])
  await b.close()

  // A smaller keep on reopen prunes at once.
  const c = await VersionStore.open(dir, { keep: 1 })
  t.same(c.list().map((v) => v.version), [5])
  t.same(await versionFiles(dir), ['v000005.json'])
  await c.close()

  // Even with every version file gone, the counter remembers.
  await unlink(join(dir, 'v000005.json'))
  const d = await VersionStore.open(dir, { keep: 3 })
  t.teardown(() => d.close())
  t.equal(d.latest(), undefined)
  t.equal(d.nextVersion(), 6)
  t.equal((await d.append(entry(6))).version, 6)
})

t.test('keep must be a positive integer', async (t) => {
  const dir = t.testdir()
  await t.rejects(VersionStore.open(dir, { keep: 0 }), { code: 'GW_ERR_STATE', message: /keep must be a positive integer/ })
  await t.rejects(VersionStore.open(dir, { keep: 2.5 }), { code: 'GW_ERR_STATE' })
})

t.test('corrupt and partial files are skipped with a warning', async (t) => {
  const dir = t.testdir()
  const a = await VersionStore.open(dir, {})
  await a.append(entry(1))
  await a.append(entry(2))
  await a.append(entry(3))
  await a.close()
  await writeFile(join(dir, 'v000003.json'), '{"version": 3, "raw": {"rou')
  await writeFile(join(dir, 'v000002.json'), JSON.stringify({ ...entry(2), version: 7 }))
  await writeFile(join(dir, 'v000009.json'), '[]')

  const b = await VersionStore.open(dir, {})
  t.teardown(() => b.close())
  t.equal(b.warnings.length, 3)
  t.match(b.warnings.join('\n'), /skipped v000003\.json: .*JSON/)
  t.match(b.warnings.join('\n'), /skipped v000002\.json: its version is 7, its name says 2/)
  t.match(b.warnings.join('\n'), /skipped v000009\.json: not an object/)
  t.same(b.list().map((v) => v.version), [1], 'the last good version is the latest')
  t.equal(b.nextVersion(), 10, 'the numbers of skipped files are not handed out again')
})

t.test('a corrupt counter is a warning; the file names still count', async (t) => {
  const dir = t.testdir()
  const a = await VersionStore.open(dir, {})
  await a.append(entry(1))
  await a.append(entry(2))
  await a.close()
  await writeFile(join(dir, 'next.json'), 'garbage')
  const b = await VersionStore.open(dir, {})
  t.teardown(() => b.close())
  t.match(b.warnings, [/ignored next\.json/])
  t.equal(b.nextVersion(), 3)
})

t.test('leftover temp files are removed', async (t) => {
  const dir = t.testdir({
    '.v000004.json.123.abcd.tmp': '{"version": 4, "ra',
    '.next.json.123.abcd.tmp': '',
    'unrelated.txt': 'keep me'
  })
  const store = await VersionStore.open(dir, {})
  t.teardown(() => store.close())
  const names = await readdir(dir)
  t.same(names.filter((n) => n.endsWith('.tmp')), [])
  t.ok(names.includes('unrelated.txt'))
  t.equal(store.warnings.filter((w) => /removed the leftover temp file/.test(w)).length, 2)
  t.equal(store.latest(), undefined)
})

t.test('files are 0600 and the directory 0700', { skip: process.platform === 'win32' && 'POSIX modes' }, async (t) => {
  const parent = t.testdir()
  const dir = join(parent, 'a', 'state')
  const store = await VersionStore.open(dir, {})
  await store.append(entry(1))
  t.equal((await stat(dir)).mode & 0o777, 0o700)
  for (const name of await readdir(dir)) t.equal((await stat(join(dir, name))).mode & 0o777, 0o600, name)
  await store.close()

  // An existing directory others can read is tightened.
  await chmod(dir, 0o755)
  const again = await VersionStore.open(dir, {})
  t.teardown(() => again.close())
  t.equal((await stat(dir)).mode & 0o777, 0o700)
})

t.test('the state path must be a directory', async (t) => {
  const dir = t.testdir({ file: 'x' })
  await t.rejects(VersionStore.open(join(dir, 'file'), {}), { code: 'GW_ERR_STATE' })
})

t.test('lock', async (t) => {
  t.test('a second open in the same process throws GW_ERR_STATE', async (t) => {
    const dir = t.testdir()
    const a = await VersionStore.open(dir, {})
    t.equal((await readFile(join(dir, 'lock'), 'utf8')).trim(), String(process.pid))
    await t.rejects(VersionStore.open(dir, {}), { code: 'GW_ERR_STATE', message: /already open in this process/ })
    await a.close()
    t.same((await readdir(dir)).filter((n) => n === 'lock'), [], 'close() releases the lock')
    const b = await VersionStore.open(dir, {})
    await b.close()
  })

  t.test('a lock held by another live process throws', async (t) => {
    // The parent of this test process is alive and is not us.
    const dir = t.testdir({ lock: `${process.ppid}\n` })
    await t.rejects(VersionStore.open(dir, {}), { code: 'GW_ERR_STATE', message: new RegExp(`in use by process ${process.ppid}`) })
    t.equal((await readFile(join(dir, 'lock'), 'utf8')).trim(), String(process.ppid), 'the live lock is left alone')
  })

  t.test('a stale lock (dead pid) is taken over', async (t) => {
    const dir = t.testdir({ lock: '999999\n' })
    const store = await VersionStore.open(dir, {})
    t.teardown(() => store.close())
    t.match(store.warnings, [/took over a stale lock of process 999999/])
    t.equal((await readFile(join(dir, 'lock'), 'utf8')).trim(), String(process.pid))
  })

  t.test('our own pid from an earlier process (containers: pid 1 again) is stale', async (t) => {
    const dir = t.testdir({ lock: `${process.pid}\n` })
    const store = await VersionStore.open(dir, {})
    t.teardown(() => store.close())
    t.match(store.warnings, [/took over a stale lock/])
  })

  t.test('a fresh lock without a pid is being written: refused', async (t) => {
    const dir = t.testdir({ lock: '' })
    await t.rejects(VersionStore.open(dir, {}), { code: 'GW_ERR_STATE', message: /being taken by another process/ })
  })

  t.test('an old lock without a pid is stale', async (t) => {
    const dir = t.testdir({ lock: '' })
    const old = new Date(Date.now() - 60_000)
    await utimes(join(dir, 'lock'), old, old)
    const store = await VersionStore.open(dir, {})
    t.teardown(() => store.close())
    t.match(store.warnings, [/took over a stale lock without a pid/])
  })

  t.test('close() waits for pending appends; the store is unusable afterwards', async (t) => {
    const dir = t.testdir()
    const store = await VersionStore.open(dir, {})
    const pending = store.append(entry(1))
    await store.close()
    t.equal((await pending).version, 1)
    t.same(await versionFiles(dir), ['v000001.json'])
    await t.rejects(store.append(entry(2)), { code: 'GW_ERR_STATE', message: /closed/ })
    await store.close()
  })
})

t.test('stage, then commit or abandon: a staged version is not a version until committed', async (t) => {
  const dir = join(t.testdir(), 'state')
  const store = await VersionStore.open(dir, {})
  await store.append(entry(1))
  const staged = await store.stage(entry(2))
  t.equal(staged.version, 2)
  t.equal(store.latest()?.version, 1, 'not listed while staged')
  t.same(await versionFiles(dir), ['v000001.json'], 'no version file yet')
  t.equal((await readdir(dir)).filter((n) => n.endsWith('.tmp')).length, 1, 'its bytes are on disk, in a temporary file')
  const v2 = await staged.commit()
  t.equal(v2.version, 2)
  t.equal(store.latest()?.version, 2)
  t.same(await versionFiles(dir), ['v000001.json', 'v000002.json'])
  await t.rejects(staged.commit(), /already committed/)

  const dropped = await store.stage(entry(3))
  await dropped.abandon()
  t.equal((await readdir(dir)).filter((n) => n.endsWith('.tmp')).length, 0, 'abandoned: the temporary file is gone')
  t.equal(store.nextVersion(), 4, 'the number stays spent')
  t.equal((await store.append(entry(4))).version, 4)

  // A gateway that died between stage and commit: a restart knows nothing of it.
  await store.stage(entry(5))
  await store.close()
  const again = await VersionStore.open(dir, {})
  t.teardown(() => again.close())
  t.equal(again.latest()?.version, 4)
  t.equal(again.nextVersion(), 6, 'its number is never handed out again')
  t.equal((await readdir(dir)).filter((n) => n.endsWith('.tmp')).length, 0, 'leftover temporary files are removed')
})

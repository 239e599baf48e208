import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { readList } from '../../plugins/ip-filter/list-file.js'

t.test('a CIDR file read again unchanged gives the same frozen list; an edit is always seen', async (t) => {
  const dir = t.testdir({ 'deny.txt': '# bad actors\n192.0.2.0/24\n\n  198.51.100.7  # one host\n' })
  const first = await readList('deny.txt', dir)
  t.same(first, ['192.0.2.0/24', '198.51.100.7'], 'comments and blank lines skipped, entries trimmed')
  t.ok(Object.isFrozen(first), 'frozen, so its compiled form can be kept')
  t.equal(await readList(join(dir, 'deny.txt'), '/elsewhere'), first, 'same text: the same array (absolute path)')

  // Same length, same size on disk: only the content tells them apart.
  writeFileSync(join(dir, 'deny.txt'), '# bad actors\n192.0.2.0/24\n\n  198.51.100.8  # one host\n')
  const edited = await readList('deny.txt', dir)
  t.same(edited, ['192.0.2.0/24', '198.51.100.8'], 'an edit of one character is read')
  t.not(edited, first)

  await t.rejects(readList('missing.txt', dir), { message: /cannot read .*missing\.txt: ENOENT/ })
})

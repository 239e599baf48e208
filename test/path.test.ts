import t from 'tap'
import { normalizeTarget } from '../src/path.js'

// CHECKLIST A30: every spelling of /admin normalizes to /admin, or is refused.
const same: Array<[string, string]> = [
  ['/admin', '/admin'],
  ['/%61dmin', '/admin'],
  ['//admin', '/admin'],
  ['/pub/../admin', '/admin'],
  ['/pub/%2e%2e/admin', '/admin'],
  ['/./admin', '/admin'],
  ['/../../admin', '/admin'],
  ['/admin/.', '/admin/'],
  ['/a/b/..', '/a/'],
  ['/%7euser', '/~user'],
  ['/caf%c3%a9', '/caf%C3%A9'],
  ['/a%20b', '/a%20b'],
  ['/', '/']
]
for (const [input, want] of same) {
  t.equal(normalizeTarget(input).path, want, `${input} -> ${want}`)
}

const refused = ['/admin%2f', '/admin%2F..', '/a%5cb', '/a\\b', '/a%00', '/a%zz', '/a%4', '*', 'admin', 'http://x/']
for (const input of refused) {
  t.throws(() => normalizeTarget(input), { name: 'BadPathError' }, `${input} is refused`)
}

t.same(normalizeTarget('/a/b?x=1&y=%2F'), { path: '/a/b', query: 'x=1&y=%2F' }, 'query is split off and left raw')
t.equal(normalizeTarget('//a', false).path, '//a', 'slash merging can be turned off')

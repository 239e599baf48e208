import t from 'tap'
import { CidrError, formatIp, INVALID, parseCidr, parseIp, V4, V6 } from '../src/ip/parse.js'

const w = new Uint32Array(4)
const show = (s: string, zone = false): string => {
  const f = parseIp(s, w, zone)
  return f === INVALID ? 'invalid' : `${f} ${formatIp(f, w)}`
}

// CHECKLIST E1-E5, as the parser sees them (the tables are tested in ip-table.test.ts).
const cases: Array<[string, string]> = [
  ['10.0.0.1', '4 10.0.0.1'],
  ['::ffff:10.0.0.1', '4 10.0.0.1'],
  ['::ffff:7b7b:7b7b', '4 123.123.123.123'],
  ['::10.0.0.1', '4 10.0.0.1'],
  ['::1', '6 ::1'],
  ['2001:DB8::1', '6 2001:db8::1'],
  ['1:2:3:4:5:6:7:8', '6 1:2:3:4:5:6:7:8'],
  ['fe80::1%eth0', 'invalid'],
  ['1.2.3.4%eth0', 'invalid'],
  ['010.000.015.001', 'invalid'],
  ['0300.0250.0214.0377', 'invalid'],
  ['0xc0.0xa8.0x8c.0xff', 'invalid'],
  ['127.1', 'invalid'],
  ['192.168.12345', 'invalid'],
  ['1234', 'invalid'],
  ['030052000401', 'invalid'],
  ['::ffff:1.2.03.4', 'invalid'],
  ['1::2::3', 'invalid'],
  ['1:2:3:4:5:6:7:8:9', 'invalid'],
  ['[::1]', 'invalid'],
  ['unknown', 'invalid'],
  ['', 'invalid']
]
for (const [input, want] of cases) t.equal(show(input), want, input)

t.test('zones: dropped for socket peers only, and a dot in a zone is not an IPv4 tail', async (t) => {
  t.equal(show('fe80::1%eth0', true), '6 fe80::1')
  t.equal(show('::1%eth0.100', true), '6 ::1')
  t.equal(show('::a:b%vlan.5', true), '6 ::a:b')
  t.equal(show('::1%', true), 'invalid')
})

t.test('CIDRs', async (t) => {
  const ok: Array<[string, number, number]> = [
    ['10.0.0.0/8', V4, 8], ['0.0.0.0/0', V4, 0], ['::/0', V6, 0], ['1.2.3.4', V4, 32], ['2001:db8::1', V6, 128],
    ['::ffff:10.0.0.0/104', V4, 8], ['::ffff:10.0.0.1', V4, 32], ['::ffff:10.0.0.1/128', V4, 32], ['::10.0.0.1', V4, 32]
  ]
  for (const [text, family, prefix] of ok) {
    const c = parseCidr(text)
    t.same([c.family, c.prefix], [family, prefix], text)
  }
  for (const bad of ['10.0.0.0/33', '10.0.0.0/-1', '::/129', '10.0.0.0/08', '1.2.3.4/24', '::ffff:10.0.0.0/95', '10.0.0.0/', '/8', '10.0.0.0/8/8']) {
    t.throws(() => parseCidr(bad), CidrError, bad)
  }
})

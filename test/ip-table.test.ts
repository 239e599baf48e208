import t from 'tap'
import { createSharedMemory, loadHotPath } from '../src/shared-memory.js'
import type { HotPath } from '../src/shared-memory.js'
import { parseCidr } from '../src/ip/parse.js'
import { createIpMatcher } from '../src/ip/matcher.js'
import type { IpMatcher } from '../src/ip/matcher.js'
import { ReferenceIpSets } from '../src/ip/reference.js'
import {
  compileIpSets, IpTableError, ipRegionOffset, nextIpRegion, readLiveIpRegion, switchIpRegion, writeIpTable
} from '../src/ip/table-writer.js'
import type { IpRegion, IpSetInput } from '../src/ip/table-writer.js'
import * as layout from '../wasm/layout.js'
import { rng } from '../bench/lib/rng.js'

const {
  HDR_IP_LIVE, HEADER_OFFSET, IP_TABLE_A_OFFSET, IP_TABLE_B_OFFSET, IP_TABLE_BYTES, IP_TABLE_LIVE_A, IP_TABLE_LIVE_B,
  IP_SETS_MAX, IP_DIR_ENTRY_BYTES, IP_DATA_OFFSET, IP_BLOCK_ALIGN, COUNTER_TABLE_OFFSET, IP_SET_COUNT_FIELD
} = layout

// One memory for the whole file (each is 160 MiB of address space).
const memory = createSharedMemory()
let hot: HotPath

t.before(async () => { hot = await loadHotPath(memory) })

/** Writes `sets` into the region that is not live, switches to it, and returns a matcher on it. */
function publish (sets: readonly IpSetInput[]): { m: IpMatcher, region: IpRegion, info: ReturnType<typeof writeIpTable> } {
  const region = nextIpRegion(memory)
  const info = writeIpTable(memory, region, sets)
  switchIpRegion(memory, region)
  return { m: createIpMatcher(hot, region), region, info }
}

t.test('layout of the IP section', async t => {
  t.equal(IP_TABLE_LIVE_A, 0, 'HDR_IP_LIVE values are the region numbers')
  t.equal(IP_TABLE_LIVE_B, 1)
  t.equal(ipRegionOffset(0), IP_TABLE_A_OFFSET)
  t.equal(ipRegionOffset(1), IP_TABLE_B_OFFSET)
  t.equal(IP_DIR_ENTRY_BYTES, 64, 'a directory entry is one cache line')
  t.equal(IP_DATA_OFFSET % IP_BLOCK_ALIGN, 0, 'data starts on a line')
  t.ok(IP_DATA_OFFSET < IP_TABLE_BYTES)
  const dirFields = [layout.IP_DIR_V4_AT_FIELD, layout.IP_DIR_V4_COUNT_FIELD, layout.IP_DIR_V4_BITS_FIELD,
    layout.IP_DIR_V4_SHIFT_FIELD, layout.IP_DIR_V4_MIN_FIELD, layout.IP_DIR_V6_AT_FIELD, layout.IP_DIR_V6_COUNT_FIELD,
    layout.IP_DIR_V6_BITS_FIELD, layout.IP_DIR_V6_SHIFT_FIELD]
  t.equal(new Set(dirFields).size, dirFields.length, 'directory fields are distinct')
  for (const f of dirFields) t.ok(f % 4 === 0 && f + 4 <= IP_DIR_ENTRY_BYTES && f < layout.IP_DIR_V6_MIN_FIELD, `directory field ${f} is an aligned word`)
  t.equal(layout.IP_DIR_V6_MIN_FIELD % 8, 0, 'the IPv6 min is u64-aligned')
  t.equal(layout.IP_DIR_V6_MIN_FIELD + 16, IP_DIR_ENTRY_BYTES)
  const hdr = [IP_SET_COUNT_FIELD, layout.IP_V4_TOTAL_FIELD, layout.IP_V6_TOTAL_FIELD, layout.IP_DATA_END_FIELD]
  t.equal(new Set(hdr).size, hdr.length)
  for (const f of hdr) t.ok(f % 4 === 0 && f + 4 <= layout.IP_REGION_HEADER_BYTES)
})

// [cidrs, address, expected]: expected undefined = the address is invalid.
type Case = [cidrs: string[], ip: string, want: boolean | undefined, why: string]
const cases: Case[] = [
  // E6: boundaries of a /8
  [['10.0.0.0/8'], '10.0.0.0', true, 'E6: network address'],
  [['10.0.0.0/8'], '10.255.255.255', true, 'E6: last address'],
  [['10.0.0.0/8'], '11.0.0.0', false, 'E6: one past the end'],
  [['10.0.0.0/8'], '9.255.255.255', false, 'one before the start'],
  // E6: /0 matches only its own family
  [['0.0.0.0/0'], '0.0.0.0', true, '0.0.0.0/0: lowest IPv4'],
  [['0.0.0.0/0'], '255.255.255.255', true, '0.0.0.0/0: highest IPv4'],
  [['0.0.0.0/0'], '::ffff:1.2.3.4', true, '0.0.0.0/0: a mapped client is IPv4'],
  [['0.0.0.0/0'], '::1', false, 'E6: 0.0.0.0/0 never matches an IPv6 client'],
  [['0.0.0.0/0'], '2001:db8::1', false, 'E6: 0.0.0.0/0 never matches an IPv6 client'],
  [['0.0.0.0/0'], '::', false, 'E6: 0.0.0.0/0 does not match ::'],
  [['::/0'], '::', true, '::/0: lowest IPv6'],
  [['::/0'], 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true, '::/0: highest IPv6'],
  [['::/0'], '2001:db8::1', true, '::/0'],
  [['::/0'], '1.2.3.4', false, '::/0 never matches an IPv4 client'],
  [['::/0'], '0.0.0.0', false, '::/0 never matches an IPv4 client'],
  [['::/0'], '::ffff:1.2.3.4', false, '::/0: a mapped client is IPv4'],
  [['::/0'], '::10.0.0.1', false, '::/0: a dotted compatible client is IPv4'],
  [['::/0'], '::a00:1', true, '::/0: hex ::a00:1 stays IPv6'],
  // /32 and /128 are exact
  [['1.2.3.4/32'], '1.2.3.4', true, '/32 exact'],
  [['1.2.3.4/32'], '1.2.3.5', false, '/32 exact: next'],
  [['1.2.3.4/32'], '1.2.3.3', false, '/32 exact: previous'],
  [['1.2.3.4'], '1.2.3.4', true, 'a bare address is /32'],
  [['1.2.3.4'], '::ffff:1.2.3.4', true, 'a bare address matches its mapped form'],
  [['2001:db8::1/128'], '2001:db8::1', true, '/128 exact'],
  [['2001:db8::1/128'], '2001:DB8:0:0:0:0:0:1', true, '/128 exact, other spelling'],
  [['2001:db8::1/128'], '2001:db8::2', false, '/128 exact: next'],
  [['2001:db8::1/128'], '2001:db8::', false, '/128 exact: previous'],
  [['2001:db8::1'], '2001:db8::1', true, 'a bare IPv6 address is /128'],
  [['255.255.255.255/32'], '255.255.255.255', true, 'the top IPv4 address'],
  [['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'], 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true, 'the top IPv6 address'],
  [['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'], 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', false, 'below the top IPv6 address'],
  [['0.0.0.0/32'], '0.0.0.0', true, 'the bottom IPv4 address'],
  [['::/128'], '::', true, 'the bottom IPv6 address'],
  [['::/128'], '::1', false, '::/128 is :: only'],
  // E1, E2, E3: mapped and compatible forms are IPv4
  [['10.0.0.0/8'], '::ffff:10.0.0.1', true, 'E1: a mapped peer is matched as IPv4'],
  [['10.0.0.0/8'], '::FFFF:10.0.0.1', true, 'E1: upper-case mapped prefix'],
  [['10.0.0.0/8'], '0:0:0:0:0:ffff:10.0.0.1', true, 'E1: mapped, uncompressed'],
  [['10.0.0.0/8'], '::ffff:b00:1', false, 'mapped 11.0.0.1 is outside'],
  [['123.123.123.123/32'], '::ffff:7b7b:7b7b', true, 'E2: ::ffff:7b7b:7b7b is 123.123.123.123'],
  [['::ffff:123.123.123.0/120'], '123.123.123.5', true, 'E2: a mapped CIDR is an IPv4 CIDR'],
  [['::ffff:123.123.123.0/120'], '::ffff:123.123.123.200', true, 'E2: mapped CIDR, mapped client'],
  [['::ffff:123.123.123.0/120'], '::ffff:7b7b:7c00', false, 'E2: mapped CIDR, past its end'],
  [['::ffff:0:0/96'], '8.8.8.8', true, '::ffff:0:0/96 is all of IPv4'],
  [['::ffff:0:0/96'], '2001:db8::1', false, '::ffff:0:0/96 is not IPv6'],
  [['10.0.0.0/8'], '::10.0.0.1', true, 'E3: dotted IPv4-compatible is IPv4: a deny list catches it'],
  [['10.0.0.0/8'], '::a00:1', false, 'E3: hex ::a00:1 stays IPv6 (documented in parse.ts)'],
  [['::10.0.0.0/104'], '10.1.2.3', true, 'E3: a compatible CIDR is an IPv4 CIDR'],
  // E5: ambiguous IPv4 text is no address at all
  ...['010.000.015.001', '0300.0250.0214.0377', '0xc0.0xa8.0x8c.0xff', '127.1', '192.168.12345', '1234', '030052000401',
    '::ffff:1.2.03.4', '1.2.3.4.', '', ' 10.0.0.1', '10.0.0.1 ', '[::1]', '1.2.3.4:80', 'fe80::1%eth0', '1.2.3.4%eth0',
    '::ffff:10.0.0.1%1', '1:2:3:4:5:6:7:8:9', ':::', 'unknown']
    .map((ip): Case => [['0.0.0.0/0', '::/0'], ip, undefined, `E5/E4: '${ip}' is not an address`]),
  // IPv6 sets with several prefixes
  ...([
    ['2001:db8::', true], ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', true], ['2001:db9::', false],
    ['2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', false], ['fe80::', true], ['febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true],
    ['fec0::', false], ['fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false], ['::1', true], ['::2', false], ['::', false],
    ['ff00::', true], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true], ['feff::', false], ['2a00:1450:4001:81c::200e', true],
    ['2a00:1450:4001:81d::', false], ['2a00:1450:4001:81b:ffff:ffff:ffff:ffff', false], ['2a00:1450:4001:81c:8000::', true],
    ['2a00:1450:4001:81c:0:0:1:0', true], ['3fff::', false]
  ] as const).map(([ip, want]): Case => [
    ['2001:db8::/32', '2001:db8:1::/48', 'fe80::/10', '2001:db8:ffff:ffff::/64', '::1/128', 'ff00::/8', '2a00:1450:4001:81c::/64'],
    ip, want, `IPv6 with several prefixes: ${ip}`])
]

t.test('table of CIDR cases (CHECKLIST E1, E2, E3, E5, E6)', async t => {
  // All cases in one table, one set per case: also many sets in one region.
  const { m, info } = publish(cases.map(([cidrs]) => cidrs))
  t.equal(info.setIds.length, cases.length)
  const ref = new ReferenceIpSets(cases.map(([cidrs]) => cidrs))
  cases.forEach(([cidrs, ip, want, why], set) => {
    t.equal(m.contains(set, ip), want, `${why}: ${JSON.stringify(ip)} in [${cidrs.join(', ')}]`)
    t.equal(ref.contains(set, ip), want, `reference agrees: ${why}`)
  })
})

t.test('invalid CIDRs are refused at compile time, naming set, index and text (E5, E6)', async t => {
  const bad = ['10.0.0.0/33', '10.0.0.0/-1', '::/129', '1.2.3.4/24', '2001:db8::1/32', '10.0.0.0/08', '10.0.0.0/+8', '10.0.0.0/',
    '10.0.0.0/8/8', '010.000.015.001/32', '0300.0250.0214.0377', '0xc0.0xa8.0x8c.0xff', '127.1', '192.168.12345', '1234',
    '030052000401', '::ffff:1.2.03.4', '::ffff:10.0.0.0/8', 'fe80::/10%eth0', 'fe80::1%eth0', '1.2.3.4/1e1', '1.2.3.4/３２', '', '/8']
  for (const text of bad) {
    let caught: unknown
    try {
      compileIpSets([['192.0.2.0/24'], ['198.51.100.0/24', '2001:db8::/32', text]])
    } catch (err) { caught = err }
    t.ok(caught instanceof IpTableError, `${JSON.stringify(text)} is refused`)
    const e = caught as IpTableError
    t.match(e.message, /^IP set 1, entry 2: /, 'the message names the set and the entry index')
    t.ok(e.message.includes(`'${text}'`), `the message quotes the text: ${e.message}`)
    t.same([e.setIndex, e.entryIndex, e.text], [1, 2, text])
    t.throws(() => parseCidr(text), 'parseCidr refuses it too')
  }
})

t.test('the fast CIDR path accepts exactly what parseCidr accepts, with the same meaning', async t => {
  const corpus = ['10.0.0.0/8', '10.0.0.0/0', '0.0.0.0/0', '0.0.0.0/00', '10.0.0.0/32', '10.0.0.0', ' 10.0.0.0/8',
    '10.0.0.0/8 ', '\u00a010.0.0.0/8', '10.0.0.0/8\n', '\t1.2.3.4', '::/0', '::/00', '::/128', '::', '2001:db8::/32',
    '2001:DB8::/32', '2001:0db8::/32', '2001:db8:0:0:0:0:0:0/32', '::ffff:10.0.0.0/104', '::ffff:10.0.0.0/96',
    '::ffff:10.0.0.1', '::ffff:10.0.0.1/128', '::10.0.0.0/104', '::a00:0/104', '::ffff:a00:0/104', '1.2.3.0/24',
    '1.2.3.4/24', '1.2.3.4/31', '1.2.3.4/30', '255.255.255.255/32', '255.255.255.254/31', '128.0.0.0/1', '128.0.0.0/0',
    '8000::/1', '8000::/0', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127',
    '2001:db8::8000:0/97', '2001:db8::1:0:0/95', '2001:db8::1:0:0/96', '2001:db8:0:1::/64', '2001:db8:0:1::/63',
    '2001:db8::/033', '1.2.3.4/032', '1.2.3.4/3 2', '1.2.3.4 /32', '1.2.3.4/ 32', '1:2:3:4:5:6:1.2.3.4/128',
    '1:2:3:4:5:6:1.2.3.0/120', '::1.2.3.4/128', '::0.0.0.0/96', '::ffff:0.0.0.0/96']
  for (const text of corpus) {
    let want: string
    try {
      const c = parseCidr(text)
      want = `ok ${c.family} ${Array.from(c.words).join(',')} /${c.prefix}`
    } catch (err) {
      want = `refused: ${(err as Error).message}`
    }
    let got: string
    let table: ReturnType<typeof compileIpSets> | undefined
    try {
      table = compileIpSets([[text]])
    } catch (err) {
      got = `refused: ${(err as Error).message.replace(/^IP set 0, entry 0: /, '')}`
    }
    if (table !== undefined) {
      if (want.startsWith('refused')) {
        got = 'accepted'
      } else {
        // The text (fast path) against the Cidr parseCidr made: same answers at and
        // around both ends of the range.
        t.equal(table.v4Ranges + table.v6Ranges, 1)
        const c = parseCidr(text)
        const { m } = publish([[text], [c]])
        const diff = probesFor(c).filter(ip => m.contains(0, ip) !== m.contains(1, ip) || m.contains(0, ip) === undefined)
        got = diff.length === 0 ? want : `differs at ${diff.join(' ')}`
      }
    }
    t.equal(got!, want, JSON.stringify(text))
  }
})

/** Addresses just inside and outside both ends of a CIDR, as text. */
function probesFor (c: ReturnType<typeof parseCidr>): string[] {
  if (c.family === 4) {
    const start = c.words[0] as number
    const end = start + 2 ** (32 - c.prefix) - 1
    return [start - 1, start, start + 1, end - 1, end, end + 1].filter(v => v >= 0 && v < 2 ** 32).map(v4Text)
  }
  const start = [...c.words].reduce((a, w) => (a << 32n) | BigInt(w), 0n)
  const end = start + (1n << BigInt(128 - c.prefix)) - 1n
  return [start - 1n, start, start + 1n, end - 1n, end, end + 1n].filter(v => v >= 0n && v < 1n << 128n).map(v6Text)
}

t.test('overlapping and adjacent CIDRs are merged', async t => {
  const sets: Array<[string[], number, number, Array<[string, boolean]>]> = [
    [['10.0.0.0/24', '10.0.1.0/24'], 1, 0, [['10.0.0.0', true], ['10.0.0.255', true], ['10.0.1.0', true], ['10.0.1.255', true], ['10.0.2.0', false], ['9.255.255.255', false]]],
    [['10.0.0.0/8', '10.1.0.0/16', '10.255.255.255'], 1, 0, [['10.1.2.3', true], ['10.255.255.255', true], ['11.0.0.0', false]]],
    [['10.0.2.0/23', '10.0.0.128/25', '10.0.1.0/24', '10.0.0.0/25'], 1, 0, [['10.0.0.0', true], ['10.0.3.255', true], ['10.0.4.0', false]]],
    [['10.0.0.0/24', '10.0.2.0/24'], 2, 0, [['10.0.0.255', true], ['10.0.1.0', false], ['10.0.1.255', false], ['10.0.2.0', true]]],
    [['10.0.0.0/24', '10.0.0.0/24', '10.0.0.0/24'], 1, 0, [['10.0.0.7', true]]],
    [['0.0.0.0/1', '128.0.0.0/1'], 1, 0, [['0.0.0.0', true], ['127.255.255.255', true], ['128.0.0.0', true], ['255.255.255.255', true]]],
    [['255.255.255.254/32', '255.255.255.255/32', '255.255.255.252/31'], 1, 0, [['255.255.255.251', false], ['255.255.255.252', true], ['255.255.255.255', true]]],
    [['0.0.0.1', '0.0.0.0', '0.0.0.3'], 2, 0, [['0.0.0.0', true], ['0.0.0.1', true], ['0.0.0.2', false], ['0.0.0.3', true]]],
    [['2001:db8::/33', '2001:db8:8000::/33'], 0, 1, [['2001:db8::', true], ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', true], ['2001:db9::', false]]],
    [['2001:db8::/32', '2001:db8:1::/48', '2001:db8:1:2::/64'], 0, 1, [['2001:db8:1:2::5', true]]],
    [['2001:db8::/64', '2001:db8:0:1::/64', '2001:db8:0:3::/64'], 0, 2, [['2001:db8:0:1:ffff:ffff:ffff:ffff', true], ['2001:db8:0:2::', false], ['2001:db8:0:3::', true]]],
    // Adjacent across a word boundary: ...:ffff:ffff + 1 carries into the next word.
    [['2001:db8::ffff:ffff/128', '2001:db8::1:0:0/128'], 0, 1, [['2001:db8::ffff:ffff', true], ['2001:db8::1:0:0', true], ['2001:db8::1:0:1', false]]],
    [['2001:db8:0:0:ffff:ffff:ffff:ffff/128', '2001:db8:0:1::/128'], 0, 1, [['2001:db8:0:1::', true], ['2001:db8:0:0:ffff:ffff:ffff:fffe', false]]],
    [['::/1', '8000::/1'], 0, 1, [['::', true], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true]]],
    [['ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'], 0, 1, [['ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', true], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd', false]]],
    [['10.0.0.0/8', '2001:db8::/32', '10.0.0.0/9', '2001:db8::/48'], 1, 1, [['10.200.0.1', true], ['2001:db8:5::', true]]]
  ]
  for (const [cidrs, n4, n6] of sets) {
    const table = compileIpSets([cidrs])
    t.same([table.v4Ranges, table.v6Ranges], [n4, n6], `[${cidrs.join(', ')}] -> ${n4} IPv4 + ${n6} IPv6 ranges`)
  }
  const { m } = publish(sets.map(([cidrs]) => cidrs))
  sets.forEach(([cidrs, , , probes], set) => {
    for (const [ip, want] of probes) t.equal(m.contains(set, ip), want, `${ip} in [${cidrs.join(', ')}]`)
  })
})

t.test('empty sets and sets of one family', async t => {
  const { m, info } = publish([[], ['10.0.0.0/8'], ['2001:db8::/32'], []])
  t.same([info.v4Ranges, info.v6Ranges], [1, 1])
  for (const ip of ['10.0.0.1', '0.0.0.0', '255.255.255.255', '::', '2001:db8::1', '::ffff:10.0.0.1']) {
    t.equal(m.contains(0, ip), false, `empty set: ${ip}`)
    t.equal(m.contains(3, ip), false, `empty last set: ${ip}`)
  }
  t.equal(m.contains(1, '2001:db8::1'), false, 'an IPv4-only set has no IPv6')
  t.equal(m.contains(2, '10.0.0.1'), false, 'an IPv6-only set has no IPv4')
  t.equal(m.contains(0, 'nonsense'), undefined, 'an invalid address is undefined even for an empty set')
  const none = publish([])
  t.same(none.info.setIds, [])
  t.throws(() => none.m.contains(0, '10.0.0.1'), { message: /ip set out of range/ }, 'a table with no sets has no set 0')
})

t.test('many sets in one table; unknown sets fail closed', async t => {
  const sets = Array.from({ length: IP_SETS_MAX }, (_, i) => [`10.${i >> 8}.${i & 255}.0/24`, `2001:db8:${i.toString(16)}::/48`])
  const { m, info } = publish(sets)
  t.equal(info.setIds.length, IP_SETS_MAX)
  t.same(info.setIds.slice(0, 3), [0, 1, 2], 'set ids are the indexes given')
  let wrong = 0
  for (let i = 0; i < IP_SETS_MAX; i++) {
    const j = (i * 7919 + 13) % IP_SETS_MAX
    if (m.contains(i, `10.${i >> 8}.${i & 255}.77`) !== true) wrong++
    if (m.contains(i, `2001:db8:${i.toString(16)}::77`) !== true) wrong++
    if (j !== i && m.contains(i, `10.${j >> 8}.${j & 255}.77`) !== false) wrong++
    if (j !== i && m.contains(i, `2001:db8:${j.toString(16)}::77`) !== false) wrong++
  }
  t.equal(wrong, 0, 'each of 4096 sets matches its own CIDRs and no other set\'s')
  // An unknown set traps: false would read as "allow" on a deny list.
  t.throws(() => m.contains(IP_SETS_MAX, '10.0.0.1'), { message: /ip set out of range \(wasm\/assembly\/ip-match\.ts:\d+:\d+\)/ })
  t.throws(() => m.contains(2 ** 32 - 1, '::1'), { message: /ip set out of range/ })
  t.throws(() => m.contains(-1, '10.0.0.1'), RangeError, 'a negative id is refused before WASM could wrap it')
  t.throws(() => m.contains(1.5, '10.0.0.1'), RangeError, 'a fractional id is refused before WASM could truncate it')
  t.throws(() => hot.ipContains4(2, 0, 0), { message: /ip table region out of range/ }, 'region 2 traps in WASM')
  t.throws(() => createIpMatcher(hot, 2), RangeError)
  t.throws(() => compileIpSets(Array.from({ length: IP_SETS_MAX + 1 }, () => [])), { message: `${IP_SETS_MAX + 1} IP sets given; a table holds at most ${IP_SETS_MAX}` })
})

t.test('regions A and B are isolated; HDR_IP_LIVE switches with one store', async t => {
  const words = new Uint32Array(memory.buffer)
  const live = (): number => Atomics.load(words, HDR_IP_LIVE >>> 2)
  const a = writeIpTable(memory, nextIpRegion(memory), [['192.0.2.0/24'], ['2001:db8:a::/48']])
  const regionX = a.region
  switchIpRegion(memory, regionX)
  t.equal(live(), regionX, 'switchIpRegion stores the region in HDR_IP_LIVE')
  t.equal(readLiveIpRegion(memory), regionX)
  const regionY: IpRegion = regionX === 0 ? 1 : 0
  t.equal(nextIpRegion(memory), regionY)
  const mx = createIpMatcher(hot, regionX)

  t.throws(() => writeIpTable(memory, regionX, [['10.0.0.0/8']]), { message: /is live; write the other region/ }, 'the live region is refused')
  const before = {
    x: Buffer.from(new Uint8Array(memory.buffer, ipRegionOffset(regionX), IP_TABLE_BYTES)),
    header: Buffer.from(new Uint8Array(memory.buffer, HEADER_OFFSET, layout.HEADER_BYTES)),
    counters: Buffer.from(new Uint8Array(memory.buffer, COUNTER_TABLE_OFFSET, 1 << 20))
  }
  // Fill Y with a big table and then a small one: X's bytes and answers never change.
  writeIpTable(memory, regionY, [Array.from({ length: 20000 }, (_, i) => `198.${(i >> 8) & 255}.${i & 255}.0/24`), ['::/0']])
  const my = createIpMatcher(hot, regionY)
  t.equal(my.contains(0, '198.18.3.9'), true, 'Y answers from its new table')
  t.equal(mx.contains(0, '198.18.3.9'), false, 'X does not')
  t.equal(mx.contains(0, '192.0.2.1'), true, 'X still answers from its own table')
  t.equal(mx.contains(1, '2001:db8:a::1'), true)
  t.equal(my.contains(1, '2001:db8:a::1'), true, 'Y set 1 is ::/0')
  t.throws(() => writeIpTable(memory, regionY, [['10.0.0.0/8'], ['bad']]), IpTableError)
  t.equal(my.contains(0, '198.18.3.9'), true, 'a refused table leaves the region as it was')
  writeIpTable(memory, regionY, [['203.0.113.0/24']])
  t.equal(my.contains(0, '203.0.113.1'), true)
  t.throws(() => my.contains(1, '::1'), { message: /ip set out of range/ }, 'Y now has one set')
  t.ok(before.x.equals(new Uint8Array(memory.buffer, ipRegionOffset(regionX), IP_TABLE_BYTES)), 'not one byte of the other region changed')
  t.ok(before.header.equals(new Uint8Array(memory.buffer, HEADER_OFFSET, layout.HEADER_BYTES)), 'nor of the header')
  t.ok(before.counters.equals(new Uint8Array(memory.buffer, COUNTER_TABLE_OFFSET, 1 << 20)), 'nor of the counters after the tables')
  t.equal(live(), regionX, 'writing does not switch')

  switchIpRegion(memory, regionY)
  t.equal(live(), regionY)
  t.equal(readLiveIpRegion(memory), regionY)
  t.equal(mx.contains(0, '192.0.2.1'), true, 'a matcher pinned to the old region keeps its answers after the switch')
  t.throws(() => switchIpRegion(memory, 2 as IpRegion), RangeError)
  t.equal(live(), regionY, 'a refused switch stores nothing')
  t.throws(() => writeIpTable(memory, 5 as IpRegion, []), RangeError)
})

t.test('sets that do not fit a region are refused, saying how many ranges fit', async t => {
  // 33 sets x 65,536 distinct /128s = 2.16M IPv6 ranges x 32 bytes > 64 MiB.
  const list = Array.from({ length: 65536 }, (_, i) => parseCidr(`2001:db8:${i.toString(16)}::1`))
  const sets = Array.from({ length: 33 }, () => list)
  t.throws(() => compileIpSets(sets), {
    name: 'IpTableError',
    message: /do not fit a table region: after merging they hold 0 IPv4 ranges .* and 2162688 IPv6 ranges .*a region holds 63\.\d MiB: about \d+ IPv4 ranges, or \d+ IPv6 ranges/
  })
  t.ok(compileIpSets(sets.slice(0, 29)).bytes <= layout.IP_DATA_BYTES, '29 such sets fit')
})

/* ---------------- differential: WASM vs the plain-JS reference ---------------- */


function v4Text (v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
}

function v6Text (v: bigint): string {
  const g: string[] = []
  for (let i = 7; i >= 0; i--) g.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16))
  return g.join(':')
}

const ALL128 = (1n << 128n) - 1n
// Word boundaries and their neighbours, and common lengths; short prefixes are rare, or a
// big random set would cover everything and test nothing.
const V6_PREFIXES = [29, 31, 32, 33, 40, 44, 47, 48, 52, 56, 60, 63, 64, 65, 72, 80, 95, 96, 97, 112, 120, 127, 128]

interface Net4 { start: number, prefix: number }
interface Net6 { start: bigint, prefix: number }

/** Random IPv4 CIDRs: clustered so that many nest, overlap or touch. */
function randomV4 (r: () => number, n: number): Net4[] {
  const out: Net4[] = []
  for (let i = 0; i < n; i++) {
    const prefix = r() < 0.001 ? 8 + Math.floor(r() * 8) : 16 + Math.floor(r() * 17)
    let base: number
    const prev = out[Math.floor(r() * out.length)]
    if (prev !== undefined && r() < 0.5) {
      // Near an earlier CIDR: inside it, just after it, or just before it.
      const size = 2 ** (32 - prev.prefix)
      base = [prev.start + Math.floor(r() * size), prev.start + size, prev.start - 1][Math.floor(r() * 3)] as number
    } else {
      base = Math.floor(r() * 2 ** 32)
    }
    base = ((base % 2 ** 32) + 2 ** 32) % 2 ** 32
    const size = 2 ** (32 - prefix)
    out.push({ start: Math.floor(base / size) * size, prefix })
  }
  return out
}

function randomV6 (r: () => number, n: number): Net6[] {
  const clusters = [0x20010db8n << 96n, 0x2a001450n << 96n, 0xfe80n << 112n, 0n, ALL128 - (1n << 100n)]
  const rand128 = (): bigint => (BigInt(Math.floor(r() * 2 ** 32)) << 96n) | (BigInt(Math.floor(r() * 2 ** 32)) << 64n) |
    (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32))
  const out: Net6[] = []
  for (let i = 0; i < n; i++) {
    const prefix = r() < 0.001 ? [16, 20, 24][Math.floor(r() * 3)] as number : V6_PREFIXES[Math.floor(r() * V6_PREFIXES.length)] as number
    let base: bigint
    const prev = out[Math.floor(r() * out.length)]
    const pick = r()
    if (prev !== undefined && pick < 0.4) {
      const size = 1n << BigInt(128 - prev.prefix)
      base = [prev.start + (rand128() % size), prev.start + size, prev.start - 1n][Math.floor(r() * 3)] as bigint
    } else if (pick < 0.8) {
      base = (clusters[Math.floor(r() * clusters.length)] as bigint) + (rand128() >> BigInt(32 + Math.floor(r() * 64)))
    } else {
      base = rand128()
    }
    base &= ALL128
    const size = 1n << BigInt(128 - prefix)
    out.push({ start: base - (base % size), prefix })
  }
  return out
}

/** Addresses near the edges of the CIDRs (and some random ones), as text. */
function probes4 (r: () => number, nets: readonly Net4[], n: number): string[] {
  const out: string[] = []
  while (out.length < n) {
    const net = nets[Math.floor(r() * nets.length)]
    let v: number
    if (net === undefined || r() < 0.1) {
      v = Math.floor(r() * 2 ** 32)
    } else {
      const end = net.start + 2 ** (32 - net.prefix) - 1
      const edge = [net.start - 1, net.start, net.start + 1, end - 1, end, end + 1, net.start + Math.floor(r() * (end - net.start + 1))]
      v = edge[Math.floor(r() * edge.length)] as number
    }
    if (v < 0 || v >= 2 ** 32) continue
    // Some as mapped IPv6 text: still IPv4.
    out.push(r() < 0.1 ? `::ffff:${v4Text(v)}` : v4Text(v))
  }
  return out
}

function probes6 (r: () => number, nets: readonly Net6[], n: number): string[] {
  const out: string[] = []
  while (out.length < n) {
    const net = nets[Math.floor(r() * nets.length)]
    let v: bigint
    if (net === undefined || r() < 0.1) {
      v = (BigInt(Math.floor(r() * 2 ** 32)) << 96n) | (BigInt(Math.floor(r() * 2 ** 32)) << 40n) | BigInt(Math.floor(r() * 1000))
    } else {
      const end = net.start + (1n << BigInt(128 - net.prefix)) - 1n
      const edge = [net.start - 1n, net.start, net.start + 1n, end - 1n, end, end + 1n]
      v = edge[Math.floor(r() * edge.length)] as bigint
    }
    if (v < 0n || v > ALL128) continue
    // Keep clear of ::ffff:0:0/96, which parses as IPv4 (tested above).
    if (v >> 32n === 0xffffn) continue
    out.push(v6Text(v))
  }
  return out
}

t.test('differential: random CIDR sets, WASM vs the plain-JS reference', async t => {
  const r = rng(0x1ee7)
  const sizes = [1, 3, 17, 100, 1000, 10000, 50000]
  const nets4 = sizes.map(n => randomV4(r, n))
  const nets6 = sizes.map(n => randomV6(r, n))
  const sets: string[][] = [
    ...nets4.map(list => list.map(c => `${v4Text(c.start)}/${c.prefix}`)),
    ...nets6.map(list => list.map(c => `${v6Text(c.start)}/${c.prefix}`)),
    // Both families in one set.
    [...nets4[4]!.map(c => `${v4Text(c.start)}/${c.prefix}`), ...nets6[4]!.map(c => `${v6Text(c.start)}/${c.prefix}`)]
  ]
  const { m, info } = publish(sets)
  const ref = new ReferenceIpSets(sets)
  t.ok(info.v4Ranges > 0 && info.v6Ranges > 0)
  t.ok(info.v4Ranges < sizes.reduce((a, b) => a + b, 0) + 1000, 'clustered CIDRs were merged')

  let compared = 0
  let hits = 0
  const perSet: number[] = []
  const perSetHits: number[] = []
  const mismatches: string[] = []
  const check = (set: number, ips: readonly string[]): void => {
    for (const ip of ips) {
      const got = m.contains(set, ip)
      const want = ref.contains(set, ip)
      compared++
      if (want === true) { hits++; perSetHits[set] = (perSetHits[set] ?? 0) + 1 }
      perSet[set] = (perSet[set] ?? 0) + 1
      if (got !== want && mismatches.length < 10) mismatches.push(`set ${set} ${ip}: wasm ${String(got)}, reference ${String(want)}`)
    }
  }
  // 100k addresses over the sets, biased to the edges of each set's own CIDRs.
  sizes.forEach((_, i) => {
    check(i, probes4(r, nets4[i]!, 8000))
    check(sizes.length + i, probes6(r, nets6[i]!, 6000))
  })
  check(2 * sizes.length, [...probes4(r, nets4[4]!, 1000), ...probes6(r, nets6[4]!, 1000)])
  // Cross-family: the IPv4 sets never match IPv6 addresses and the reverse.
  check(5, probes6(r, nets6[5]!, 500))
  check(sizes.length + 5, probes4(r, nets4[5]!, 500))
  t.same(mismatches, [], 'every answer equal')
  t.ok(compared >= 100000, `${compared} lookups compared`)
  t.ok(hits > compared / 5 && hits < (compared * 4) / 5, `both answers well represented (${hits} in, ${compared - hits} out)`)
  t.comment(`in per set: ${perSet.map((n, i) => `${i}:${Math.round((100 * (perSetHits[i] ?? 0)) / n)}%`).join(' ')}`)
})

t.test('a frozen list is compiled once and reused; an unfrozen one is compiled every time', async (t) => {
  const frozen = Object.freeze(['192.0.2.0/24', '198.51.100.7', '2001:db8::/48'])
  const first = compileIpSets([frozen])
  const again = compileIpSets([frozen, frozen])
  t.equal(again.v4Ranges, 2 * first.v4Ranges, 'the reused set counts in the totals')
  t.equal(again.bytes, 2 * first.bytes)
  const { m } = publish([frozen, frozen])
  t.ok(m.contains(1, '192.0.2.9') && m.contains(1, '198.51.100.7') && m.contains(1, '2001:db8::1'), 'the reused form matches what it holds')
  t.notOk(m.contains(1, '198.51.100.8'))

  const open = ['192.0.2.0/24']
  compileIpSets([open])
  open[0] = '203.0.113.0/24'
  const { m: m2 } = publish([open])
  t.ok(m2.contains(0, '203.0.113.5'), 'a changed unfrozen list is compiled anew')
  t.notOk(m2.contains(0, '192.0.2.5'))
})

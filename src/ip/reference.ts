// A plain-JS IP set matcher, for differential tests of the shared-memory tables (and as
// the definition of what they must answer). Deliberately built another way: no sorting,
// no merging, no binary search. Each set keeps, per prefix length, the set of network
// addresses of that length; an address is in the set when, for some length present, its
// first `length` bits are one of them. O(distinct prefix lengths) per lookup.
import { parseCidr, parseIp, V4, V6 } from './parse.js'
import type { Cidr } from './parse.js'

interface RefSet {
  v4: Map<number, Set<number>>
  v6: Map<number, Set<bigint>>
}

const w = new Uint32Array(4)

function v6Value (words: Uint32Array): bigint {
  let v = 0n
  for (let i = 0; i < 4; i++) v = (v << 32n) | BigInt(words[i] as number)
  return v
}

const ALL128 = (1n << 128n) - 1n
const mask6 = (prefix: number): bigint => prefix === 0 ? 0n : (ALL128 >> BigInt(128 - prefix)) << BigInt(128 - prefix)
const mask4 = (prefix: number): number => prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0

/** IP sets matched in plain JS, the way writeIpTable() + createIpMatcher() must match them. */
export class ReferenceIpSets {
  readonly #sets: RefSet[] = []

  /** Each set: CIDR text (parsed with parseCidr, which throws CidrError) or parsed Cidrs. */
  constructor (sets: ReadonlyArray<ReadonlyArray<string | Cidr>>) {
    for (const list of sets) {
      const set: RefSet = { v4: new Map(), v6: new Map() }
      for (const entry of list) {
        const c = typeof entry === 'string' ? parseCidr(entry) : entry
        if (c.family === V4) {
          let nets = set.v4.get(c.prefix)
          if (nets === undefined) set.v4.set(c.prefix, nets = new Set())
          nets.add(((c.words[0] as number) & mask4(c.prefix)) >>> 0)
        } else {
          let nets = set.v6.get(c.prefix)
          if (nets === undefined) set.v6.set(c.prefix, nets = new Set())
          nets.add(v6Value(c.words) & mask6(c.prefix))
        }
      }
      this.#sets.push(set)
    }
  }

  /** Whether `ip` is in set `setId`; undefined for an invalid address. Throws for an unknown set. */
  contains (setId: number, ip: string): boolean | undefined {
    const set = this.#sets[setId]
    if (set === undefined) throw new RangeError(`no IP set ${setId}`)
    const family = parseIp(ip, w)
    if (family === V4) {
      const a = w[0] as number
      for (const [prefix, nets] of set.v4) if (nets.has((a & mask4(prefix)) >>> 0)) return true
      return false
    }
    if (family === V6) {
      const a = v6Value(w)
      for (const [prefix, nets] of set.v6) if (nets.has(a & mask6(prefix))) return true
      return false
    }
    return undefined
  }
}

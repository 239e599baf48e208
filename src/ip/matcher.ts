// The per-request side of the IP tables: what a plugin (ip-filter) calls with the client's
// address. Parsing is src/ip/parse.ts's strict parseIp, into a module-level scratch array,
// then one call into WASM (wasm/assembly/ip-match.ts): no allocation per lookup.
import type { HotPath } from '../shared-memory.js'
import { parseIp, V4, V6 } from './parse.js'
import type { Family } from './parse.js'
import type { IpRegion } from './table-writer.js'

/** IP set lookups in one IP table region, pinned for the life of a generation. */
export interface IpMatcher {
  /** The region this matcher reads (0 = A, 1 = B). */
  readonly region: IpRegion
  /**
   * Whether `ip` is in set `setId`, or undefined when `ip` is not a valid address (the
   * caller decides; an ip-filter should deny). IPv4-mapped (`::ffff:10.0.0.1`) and dotted
   * IPv4-compatible (`::10.0.0.1`) addresses match as IPv4. A zone (`fe80::1%eth0`) makes
   * the address invalid: pass the canonical client address (src/client-ip.ts drops zones).
   * Throws for a set id the region does not have.
   */
  contains(setId: number, ip: string): boolean | undefined
  /** The same for an address already parsed by parseIp() into `words`; undefined for INVALID. */
  containsParsed(setId: number, family: Family, words: Uint32Array): boolean | undefined
}

// Safe to share: parseIp fills it and the same call reads it back, with nothing in between.
const scratch = new Uint32Array(4)

/**
 * A matcher over table region `region` of the memory behind `hot`. Take `region` from the
 * generation the request runs under (or readLiveIpRegion() when that generation starts),
 * never per lookup: the region is immutable only while it is pinned (layout.ts, "IP tables").
 */
export function createIpMatcher (hot: HotPath, region: IpRegion | number): IpMatcher {
  if (region !== 0 && region !== 1) throw new RangeError(`IP table region must be 0 (A) or 1 (B), got ${String(region)}`)
  const lookup = (setId: number, family: Family, w: Uint32Array): boolean | undefined => {
    // WASM would truncate 1.5 to set 1 and wrap -1 to 2^32-1; refuse both here.
    if (setId >>> 0 !== setId) throw new RangeError(`IP set id must be a u32, got ${String(setId)}`)
    if (family === V4) return hot.ipContains4(region, setId, w[0] as number)
    if (family === V6) return hot.ipContains6(region, setId, w[0] as number, w[1] as number, w[2] as number, w[3] as number)
    return undefined
  }
  return Object.freeze({
    region,
    contains: (setId: number, ip: string) => lookup(setId, parseIp(ip, scratch), scratch),
    containsParsed: lookup
  })
}

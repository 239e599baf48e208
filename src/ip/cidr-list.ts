import { parseCidr, parseIp, V4, V6 } from './parse.js'
import type { Cidr, Family } from './parse.js'

/**
 * A short list of CIDRs matched by a scan in JS: for trusted proxies, which are a handful of
 * load balancers, where a scan beats a call into WASM. Big lists (ip-filter) go to the
 * shared-memory tables instead.
 */
export class CidrList {
  readonly #v4: Array<{ net: number, mask: number }> = []
  readonly #v6: Array<{ net: Uint32Array, mask: Uint32Array }> = []

  /** Throws CidrError (message names the entry) on the first invalid CIDR. */
  constructor (cidrs: readonly string[]) {
    for (const text of cidrs) this.#add(parseCidr(text))
  }

  get size (): number { return this.#v4.length + this.#v6.length }

  #add (c: Cidr): void {
    if (c.family === V4) {
      const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0
      this.#v4.push({ net: c.words[0] as number, mask })
    } else {
      const mask = new Uint32Array(4)
      for (let i = 0; i < 4; i++) {
        const bits = Math.max(0, Math.min(32, c.prefix - i * 32))
        mask[i] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
      }
      this.#v6.push({ net: c.words, mask })
    }
  }

  /** Match an address already parsed into `w` (see parse.ts). */
  containsParsed (family: Family, w: Uint32Array): boolean {
    if (family === V4) {
      const ip = w[0] as number
      for (const e of this.#v4) if (((ip & e.mask) >>> 0) === e.net) return true
      return false
    }
    if (family !== V6) return false
    outer: for (const e of this.#v6) {
      for (let i = 0; i < 4; i++) if ((((w[i] as number) & (e.mask[i] as number)) >>> 0) !== e.net[i]) continue outer
      return true
    }
    return false
  }

  contains (ip: string): boolean {
    const w = scratch
    return this.containsParsed(parseIp(ip, w, true), w)
  }
}

const scratch = new Uint32Array(4)

/**
 * A consistent-hash ring with virtual nodes (Karger et al.; the ketama layout nginx's
 * `hash ... consistent` and Envoy's RING_HASH use): each target owns VNODES x weight points
 * on a 32-bit circle, placed by hashing `url#n`; a key belongs to the first point at or
 * after its hash.
 *
 * Why a ring and not jump hash or Maglev: jump hash only removes the last bucket and has no
 * weights, and a target that is down must be skipped per key, which a ring does by walking
 * on; Maglev balances a little more evenly but moves more keys than needed when the target
 * set changes. With a ring, removing a target moves exactly its keys and adding one moves
 * only what it takes (about 1/N); 160 points per unit of weight keep the shares within a few
 * percent. The ring depends only on the target URLs, so every worker and every gateway
 * instance with the same targets sends a key to the same target.
 */
const VNODES = 160

/** FNV-1a over UTF-16 units, then murmur3's finalizer so close keys land far apart. */
export function hashString (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

export class HashRing {
  /** Point hashes, ascending. */
  readonly #points: Uint32Array
  /** Target index of each point. */
  readonly #owners: Uint16Array
  readonly #targets: number

  constructor (urls: readonly string[], weights: readonly number[]) {
    const entries: Array<[number, number]> = []
    urls.forEach((url, t) => {
      const n = VNODES * (weights[t] ?? 1)
      for (let k = 0; k < n; k++) entries.push([hashString(`${url}#${k}`), t])
    })
    // Ties (rare) are broken by target index, so the order does not depend on insertion.
    entries.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    this.#points = Uint32Array.from(entries, (e) => e[0])
    this.#owners = Uint16Array.from(entries, (e) => e[1])
    this.#targets = urls.length
  }

  /** The first point at or after h (wrapping round). */
  #first (h: number): number {
    const p = this.#points
    let lo = 0
    let hi = p.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((p[mid] as number) < h) lo = mid + 1
      else hi = mid
    }
    return lo === p.length ? 0 : lo
  }

  /**
   * Visit targets clockwise from h, each target once, until `visit` returns true. A ring
   * that must skip k targets walks about k x VNODES points at most; bounded by the ring.
   */
  walk (h: number, visit: (target: number) => boolean): void {
    const owners = this.#owners
    const len = owners.length
    let i = this.#first(h)
    const first = owners[i] as number
    if (visit(first)) return
    if (this.#targets === 1) return
    const seen = new Uint8Array(this.#targets)
    seen[first] = 1
    let left = this.#targets - 1
    for (let step = 1; step < len && left > 0; step++) {
      i = i + 1 === len ? 0 : i + 1
      const t = owners[i] as number
      if (seen[t] === 1) continue
      seen[t] = 1
      left--
      if (visit(t)) return
    }
  }

  /** The target a key hash belongs to when every target is up. */
  owner (h: number): number { return this.#owners[this.#first(h)] as number }
}

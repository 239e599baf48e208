import type { ConsumerConfig, GatewayConfig } from '../config-schema.js'

/** A configured consumer, as the authn plugins look it up. */
export interface KnownConsumer {
  readonly id: string
  readonly groups: readonly string[]
  readonly scopes: readonly string[]
}

/** The consumers of one config generation, indexed for the authn plugins. */
export interface ConsumerRegistry {
  byId: ReadonlyMap<string, KnownConsumer>
  /** `sha256:<hex>` of an API key -> its consumer and the key's label. */
  byKeyDigest: ReadonlyMap<string, { consumer: KnownConsumer, name: string | undefined }>
  /** A token identity -> its consumer. */
  bySubject: (issuer: string, subject: string) => KnownConsumer | undefined
  /** A verified client certificate -> its consumer (credentials.certificates; the first in
   *  config order whose every given field matches). */
  byCertificate: (subject: string, san: readonly string[]) => KnownConsumer | undefined
}

interface CertEntry { order: number, subject?: string, san?: string, consumer: KnownConsumer }

function certificateIndex (entries: CertEntry[]): ConsumerRegistry['byCertificate'] {
  if (entries.length === 0) return () => undefined
  const bySubject = new Map<string, CertEntry[]>()
  const bySan = new Map<string, CertEntry[]>()
  for (const e of entries) {
    // Indexed by one field; the other (if given) is checked on lookup.
    const [map, k] = e.subject !== undefined ? [bySubject, e.subject] : [bySan, e.san as string]
    let list = map.get(k)
    if (list === undefined) map.set(k, (list = []))
    list.push(e)
  }
  const fits = (e: CertEntry, subject: string, san: readonly string[]): boolean =>
    (e.subject === undefined || e.subject === subject) && (e.san === undefined || san.includes(e.san))
  return (subject, san) => {
    let best: CertEntry | undefined
    const consider = (list: CertEntry[] | undefined): void => {
      if (list === undefined) return
      for (const e of list) if ((best === undefined || e.order < best.order) && fits(e, subject, san)) best = e
    }
    if (subject !== '') consider(bySubject.get(subject))
    for (const s of san) consider(bySan.get(s))
    return best?.consumer
  }
}

function build (consumers: readonly ConsumerConfig[]): ConsumerRegistry {
  const byId = new Map<string, KnownConsumer>()
  const byKeyDigest = new Map<string, { consumer: KnownConsumer, name: string | undefined }>()
  const subjects = new Map<string, Map<string, KnownConsumer>>()
  const certs: CertEntry[] = []
  for (const c of consumers) {
    const known: KnownConsumer = Object.freeze({ id: c.id, groups: Object.freeze([...c.groups]), scopes: Object.freeze([...c.scopes]) })
    byId.set(c.id, known)
    for (const k of c.credentials.keys) byKeyDigest.set(k.digest, { consumer: known, name: k.name })
    for (const s of c.credentials.subjects) {
      let m = subjects.get(s.issuer)
      if (m === undefined) subjects.set(s.issuer, (m = new Map()))
      m.set(s.subject, known)
    }
    for (const m of c.credentials.certificates ?? []) certs.push({ order: certs.length, subject: m.subject, san: m.san, consumer: known })
  }
  return { byId, byKeyDigest, bySubject: (issuer, subject) => subjects.get(issuer)?.get(subject), byCertificate: certificateIndex(certs) }
}

// Built once per generation per thread: every authn instance of a generation gets the same
// config object (api.gateway), so it keys the cache, and the registry goes with it.
const registries = new WeakMap<object, ConsumerRegistry>()

/** The consumer registry of the generation whose config this is. */
export function consumersOf (gateway: Readonly<GatewayConfig>): ConsumerRegistry {
  let r = registries.get(gateway)
  if (r === undefined) {
    r = build(gateway.consumers ?? [])
    registries.set(gateway, r)
  }
  return r
}

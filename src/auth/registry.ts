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
}

function build (consumers: readonly ConsumerConfig[]): ConsumerRegistry {
  const byId = new Map<string, KnownConsumer>()
  const byKeyDigest = new Map<string, { consumer: KnownConsumer, name: string | undefined }>()
  const subjects = new Map<string, Map<string, KnownConsumer>>()
  for (const c of consumers) {
    const known: KnownConsumer = Object.freeze({ id: c.id, groups: Object.freeze([...c.groups]), scopes: Object.freeze([...c.scopes]) })
    byId.set(c.id, known)
    for (const k of c.credentials.keys) byKeyDigest.set(k.digest, { consumer: known, name: k.name })
    for (const s of c.credentials.subjects) {
      let m = subjects.get(s.issuer)
      if (m === undefined) subjects.set(s.issuer, (m = new Map()))
      m.set(s.subject, known)
    }
  }
  return { byId, byKeyDigest, bySubject: (issuer, subject) => subjects.get(issuer)?.get(subject) }
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

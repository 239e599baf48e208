import { createHash } from 'node:crypto'

/** Client keys that go into Redis key names as they are; others are hashed (fixed length, no `{}`). */
const PLAIN_KEY = /^[A-Za-z0-9.:_@+-]{1,128}$/

/**
 * The part of a Redis key naming a rate-limit client: the same on every instance (the WASM
 * table's SipHash is seeded per process, so it cannot be used here). It is the key's hash
 * tag, so one client's counters share a slot on Redis Cluster.
 */
export function clientKeyPart (key: string): string {
  return PLAIN_KEY.test(key) ? key : 'h:' + createHash('sha256').update(key).digest('base64url').slice(0, 22)
}

/** A policy id as it appears in Redis key names: short and fixed-length. */
export function policyDigest (policyId: string): string {
  return createHash('sha256').update(policyId).digest('hex').slice(0, 16)
}

/** The Redis names under a prefix. Multi-key scripts use `{policy}` as hash tag. */
export function names (prefix: string): { policyVersion: string, policyVersions: string, policyChannel: string, blocks: string, blocksChannel: string, instance: (id: string) => string } {
  return {
    policyVersion: `${prefix}{policy}:version`,
    policyVersions: `${prefix}{policy}:versions`,
    policyChannel: `${prefix}policy`,
    blocks: `${prefix}blocks`,
    blocksChannel: `${prefix}blocks`,
    instance: (id) => `${prefix}instance:${id}`
  }
}

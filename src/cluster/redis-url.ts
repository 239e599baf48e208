// The Redis URL forms tollgate accepts, parsed into what ioredis is built from. ioredis
// parses redis:// and rediss:// itself (user, password, db, TLS) but has no URL form for a
// cluster or Sentinel: those take a list of seed nodes, written here comma-separated in the
// authority, as the Redis docs and most clients do.

export interface RedisNode { host: string, port: number }

export type RedisTarget =
  | { kind: 'single', url: string }
  | { kind: 'cluster', nodes: RedisNode[], tls: boolean, username?: string, password?: string }
  | { kind: 'sentinel', sentinels: RedisNode[], name: string, tls: boolean, db: number, username?: string, password?: string }

const FORMS = 'redis://host:port[/db], rediss://host:port, redis+cluster://h1:p1,h2:p2 or redis+sentinel://h1:p1,h2:p2/master'

/** Thrown with a reason that fits after `cluster.redis: `. */
export class RedisUrlError extends Error {
  override name = 'RedisUrlError'
}

function nodes (list: string, what: string): RedisNode[] {
  return list.split(',').map((part) => {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(part)
    if (m === null) throw new RedisUrlError(`'${part}' is not a host[:port] ${what}`)
    const port = m[2] === undefined ? 6379 : Number(m[2])
    if (port < 1 || port > 65535) throw new RedisUrlError(`port ${port} is out of range`)
    return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port }
  })
}

function credentials (userinfo: string | undefined): { username?: string, password?: string } {
  if (userinfo === undefined) return {}
  const i = userinfo.indexOf(':')
  const user = decodeURIComponent(i < 0 ? userinfo : userinfo.slice(0, i))
  const pass = i < 0 ? undefined : decodeURIComponent(userinfo.slice(i + 1))
  return { ...(user !== '' ? { username: user } : {}), ...(pass !== undefined ? { password: pass } : {}) }
}

/** Parse and check a cluster.redis URL. Never echoes a password in the error. */
export function parseRedisUrl (text: string): RedisTarget {
  const m = /^([a-z+]+):\/\/(?:([^@/]*)@)?([^/?#]*)(\/[^?#]*)?$/.exec(text)
  const scheme = m?.[1]
  if (m === null || scheme === undefined) throw new RedisUrlError(`not a Redis URL; expected ${FORMS}`)
  const authority = m[3] ?? ''
  const path = m[4] ?? ''
  if (authority === '') throw new RedisUrlError(`no host; expected ${FORMS}`)
  const creds = credentials(m[2])
  if (scheme === 'redis' || scheme === 'rediss') {
    nodes(authority, `(one host: use redis+cluster:// or redis+sentinel:// for several)`)
    if (authority.includes(',')) throw new RedisUrlError(`several hosts: use redis+cluster:// or redis+sentinel://; expected ${FORMS}`)
    if (path !== '' && path !== '/' && !/^\/[0-9]{1,2}$/.test(path)) throw new RedisUrlError(`'${path}' is not a database number`)
    return { kind: 'single', url: text }
  }
  if (scheme === 'redis+cluster' || scheme === 'rediss+cluster') {
    if (path !== '' && path !== '/') throw new RedisUrlError('a Redis Cluster has no database number')
    return { kind: 'cluster', nodes: nodes(authority, 'cluster node'), tls: scheme === 'rediss+cluster', ...creds }
  }
  if (scheme === 'redis+sentinel' || scheme === 'rediss+sentinel') {
    const p = /^\/([A-Za-z0-9._-]+)(?:\/([0-9]{1,2}))?$/.exec(path)
    if (p === null) throw new RedisUrlError('a Sentinel URL names the master: redis+sentinel://h1:p1,h2:p2/mymaster[/db]')
    return { kind: 'sentinel', sentinels: nodes(authority, 'sentinel'), name: p[1] as string, db: Number(p[2] ?? 0), tls: scheme === 'rediss+sentinel', ...creds }
  }
  throw new RedisUrlError(`unknown scheme '${scheme}:'; expected ${FORMS}`)
}

/** The URL with any password replaced, for logs. */
export function redactRedisUrl (text: string): string {
  return text.replace(/^([a-z+]+:\/\/)([^@/]*:)[^@/]*@/, '$1$2***@')
}

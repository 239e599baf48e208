import { hash } from 'node:crypto'
import { consumersOf } from '../../src/auth/registry.js'
import type { PluginApi, PluginHooks, RequestContext } from '../../src/types.js'
import { takeParam } from '../../src/query.js'
import type { KeyAuthConfig } from './schema.js'

/**
 * API keys, looked up by their SHA-256 digest: the time a lookup takes does not depend on
 * how much of a guessed key is right (CHECKLIST D2), and the config holds digests only.
 */
export function createKeyAuth (config: KeyAuthConfig, api: PluginApi): PluginHooks {
  const keys = consumersOf(api.gateway).byKeyDigest
  const headers = config.headers.map((h) => h.toLowerCase())
  const { query: param, hideCredentials } = config
  const challenge = `Key realm="${config.realm}"`
  const where = [...config.headers, ...(param === undefined ? [] : [`query parameter ${param}`])].join(', ')

  return {
    onRequest (ctx: RequestContext) {
      const found: string[] = []
      for (let i = 0; i < headers.length; i++) {
        const name = headers[i] as string
        const values = ctx.headerValues(name)
        if (values.length === 0) continue
        for (const v of values) found.push(v)
        if (hideCredentials) ctx.removeUpstreamHeader(name)
      }
      if (param !== undefined) {
        const q = takeParam(ctx.query, param)
        if (q.values.length > 0) {
          for (const v of q.values) found.push(v)
          // From what goes upstream so far: another plugin may have removed its own parameter.
          if (hideCredentials) ctx.setUpstreamQuery(ctx.upstreamQuery === ctx.query ? q.rest : takeParam(ctx.upstreamQuery, param).rest)
        }
      }
      // An earlier authn plugin already said who this is; the key (if any) is still hidden.
      if (ctx.consumer !== undefined) return
      if (found.length === 0) {
        ctx.authFailed({ code: 'MISSING_API_KEY', detail: `an API key is required (${where})`, challenge, presented: false })
        return
      }
      const key = found[0] as string
      for (let i = 1; i < found.length; i++) {
        if (found[i] !== key) {
          // Which one would the upstream or a log believe? Neither: refuse the request.
          ctx.authFailed({ status: 400, code: 'AMBIGUOUS_CREDENTIALS', detail: 'the request carries more than one API key', presented: true })
          return
        }
      }
      const hit = keys.get('sha256:' + hash('sha256', key, 'hex'))
      if (hit === undefined) {
        ctx.authFailed({ code: 'INVALID_API_KEY', detail: 'the API key is not valid', challenge, presented: true })
        return
      }
      ctx.authenticate({ id: hit.consumer.id, groups: hit.consumer.groups, scopes: hit.consumer.scopes })
    }
  }
}

import type { PluginHooks, ReplyOptions, RequestContext } from '../../src/index.js'
import type { RequireHeaderConfig } from './schema.js'

export const NAME = 'require-header'

/** The reason codes a denial carries in its problem+json `code` member (and in the access log). */
export const REASONS = {
  missing: 'HEADER_MISSING',
  malformed: 'HEADER_MALFORMED',
  notAllowed: 'HEADER_NOT_ALLOWED'
} as const

/** What later plugins find in `ctx.state['require-header']` once the header passed. */
export interface RequireHeaderState { value: string }

/**
 * A config problem that the schema cannot express (it spans two fields). create() throws it;
 * the gateway reports it against the config entry (`/routes/0/plugins/1`) at startup and in
 * `tollgate validate`, before any request is served.
 */
export class RequireHeaderConfigError extends Error {
  readonly code = 'ERR_REQUIRE_HEADER_CONFIG'
  constructor (message: string) {
    super(message)
    this.name = 'RequireHeaderConfigError'
  }
}

/**
 * Runs once per worker per config generation: everything that can be worked out from the
 * config alone is worked out here (the RegExp, the allow-list Set, the reply objects), so a
 * request costs one header lookup and at most one regex test and one Set lookup.
 */
export function createRequireHeader (config: RequireHeaderConfig): PluginHooks {
  // Node gives header names in lower case; the config may use any case.
  const header = config.header.toLowerCase()
  // Anchored here, so `[a-z]+` means "only letters", not "contains a letter".
  const re = config.pattern === undefined ? undefined : new RegExp(`^(?:${config.pattern})$`, 'u')
  const allow = config.allow === undefined ? undefined : new Set(config.allow)

  // Cross-field checks: an allow-list entry that the pattern or maxLength rejects could
  // never be let through, which is surely a mistake in the config.
  config.allow?.forEach((v, i) => {
    if (v.length > config.maxLength) throw new RequireHeaderConfigError(`allow/${i} is longer than maxLength (${config.maxLength}), so it could never be let through`)
    if (re !== undefined && !re.test(v)) throw new RequireHeaderConfigError(`allow/${i} does not match pattern, so it could never be let through`)
  })

  // The details are fixed strings, made once. They never carry the value the client sent:
  // a header can hold a token pasted in the wrong place, and a reply must not echo it.
  const denials: Record<keyof typeof REASONS, { status: number, reply: ReplyOptions }> = {
    missing: { status: 400, reply: { code: REASONS.missing, detail: `the ${header} header is required` } },
    malformed: { status: 400, reply: { code: REASONS.malformed, detail: `the ${header} header is not well-formed` } },
    notAllowed: { status: 403, reply: { code: REASONS.notAllowed, detail: `the ${header} header has a value that is not allowed here` } }
  }

  const check = (value: string | undefined): keyof typeof REASONS | undefined => {
    if (value === undefined || value === '') return 'missing'
    // The length check first: the pattern comes from the config, but the value comes from
    // the client, and a long value against a careless pattern can backtrack for a long time.
    if (value.length > config.maxLength || (re !== undefined && !re.test(value))) return 'malformed'
    if (allow !== undefined && !allow.has(value)) return 'notAllowed'
    return undefined
  }

  return {
    // Sync: nothing here waits on I/O, so it returns nothing and the pipeline stays sync.
    onRequest (ctx: RequestContext) {
      const raw = ctx.headers[header]
      // Node joins a repeated header into one 'a, b' string for most names; arrays are rare
      // (set-cookie), but join them the same way so a repeat never slips past the check.
      const value = Array.isArray(raw) ? raw.join(', ') : raw
      const failed = check(value)
      if (failed !== undefined) {
        const d = denials[failed]
        if (config.enforce) {
          // Deny by answering: the pipeline stops here and nothing goes upstream.
          ctx.reply(d.status, d.reply)
          return
        }
        // Shadow mode: say what would have happened (never the value) and carry on.
        ctx.log.warn({ plugin: NAME, header, code: d.reply.code, status: d.status }, 'require-header would deny (enforce: false)')
      }
      if (value === undefined) return
      if (failed === undefined) ctx.state[NAME] = { value } satisfies RequireHeaderState
      // Set it rather than leave the client's lines alone: the upstream then gets exactly
      // the one value that was checked, even if the client sent the header twice.
      if (config.forward) ctx.setUpstreamHeader(header, value)
      else ctx.removeUpstreamHeader(header)
    }
  }
}

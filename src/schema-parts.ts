/**
 * Schema pieces shared by the gateway's config schema and the built-in plugins' schemas, so
 * that a duration or an upstream URL is written, and checked, the same way everywhere.
 */

const DURATION_TEXT = { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$' } as const
const DURATION_HELP = 'Milliseconds, or a string with a unit: 500ms, 10s, 2m, 1h'

/** Milliseconds as a number (0 allowed), or a string such as `500ms`, `10s`, `2m`, `1h`. */
export const duration = {
  anyOf: [{ type: 'integer', minimum: 0 }, DURATION_TEXT],
  description: DURATION_HELP
} as const

/** The same, at least 1 ms: for windows, intervals and timeouts that cannot be zero. */
export const positiveDuration = {
  anyOf: [{ type: 'integer', minimum: 1 }, DURATION_TEXT],
  description: DURATION_HELP
} as const

/** An http:// or https:// origin (the `http-url` format is registered in src/ajv.ts). */
export const httpUrl = { type: 'string', format: 'http-url', description: 'An http:// or https:// origin, e.g. http://127.0.0.1:3000' } as const

import { Ajv } from 'ajv'
import type { Options } from 'ajv'
import addFormatsModule from 'ajv-formats'

// ajv-formats is CJS with a default export; under NodeNext it arrives as the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv

/** Only http(s) URLs with a host name, no credentials: what an upstream may be. */
export function isHttpUrl (value: string): boolean {
  if (!/^https?:\/\//i.test(value)) return false
  try {
    const u = new URL(value)
    return u.hostname !== '' && u.username === '' && u.password === ''
  } catch {
    return false
  }
}

/**
 * The ajv instance for config schemas (gateway and plugins). Defaults are filled in, every
 * error is reported (a person fixes a file better with the whole list), types are not
 * coerced (a string where a number belongs is an error, not a guess), and `$data` stays off.
 */
export function createConfigAjv (extra: Options = {}): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, useDefaults: true, coerceTypes: false, strict: true, allowUnionTypes: true, ...extra })
  addFormats(ajv)
  ajv.addFormat('http-url', { type: 'string', validate: isHttpUrl })
  return ajv
}

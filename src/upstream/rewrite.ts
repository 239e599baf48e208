import { setFlagsFromString } from 'node:v8'

/*
 * Path rewrites by regex run on V8's own linear-time engine (the `l` flag, Irregexp's
 * experimental NFA engine, enabled by a V8 flag): a pattern such as `^(a+)+$` cannot be
 * made to backtrack by a crafted path (ReDoS). V8 refuses at compile time what it cannot run
 * in linear time (backreferences, lookaround), so such a pattern is refused at load with
 * V8's reason. Why not the request-validator's engine (plugins/request-validator/
 * linear-regexp.ts): it answers `test()` only, and a rewrite needs the groups' text.
 *
 * The flag is process-wide and read when a RegExp is compiled, so setting it here (this
 * module is imported by the config check in the acceptor and by each worker) is enough.
 */
setFlagsFromString('--enable-experimental-regexp-engine')

export class RewriteError extends Error {}

/** Compile a rewrite's pattern; throws RewriteError with the reason. */
export function compileRewrite (pattern: string): RegExp {
  try {
    return new RegExp(pattern, 'l')
  } catch (err) {
    throw new RewriteError((err as Error).message.replace(/^Invalid regular expression: /, ''))
  }
}

/** Rewrite a path; the result always starts with `/`. */
export function rewritePath (path: string, re: RegExp, replacement: string): string {
  const out = path.replace(re, replacement)
  return out.startsWith('/') ? out : '/' + out
}

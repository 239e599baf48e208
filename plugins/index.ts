/**
 * The built-in plugins, by the name users write in the config, as module URLs: the acceptor
 * imports them to validate configs, and each worker thread imports them to build its
 * pipelines (a URL string crosses threads; a module object does not). Add a plugin here
 * when you add its folder (Caddy lists its modules the same way in standard/imports.go).
 */
export const builtinPlugins: Readonly<Record<string, string>> = Object.freeze({
  'request-id': new URL('./request-id/index.js', import.meta.url).href,
  'access-log': new URL('./access-log/index.js', import.meta.url).href,
  'ip-filter': new URL('./ip-filter/index.js', import.meta.url).href,
  'rate-limit': new URL('./rate-limit/index.js', import.meta.url).href
})

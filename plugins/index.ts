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
  'threat-guard': new URL('./threat-guard/index.js', import.meta.url).href,
  'rate-limit': new URL('./rate-limit/index.js', import.meta.url).href,
  'key-auth': new URL('./key-auth/index.js', import.meta.url).href,
  'jwt-auth': new URL('./jwt-auth/index.js', import.meta.url).href,
  'oauth2-introspection': new URL('./oauth2-introspection/index.js', import.meta.url).href,
  acl: new URL('./acl/index.js', import.meta.url).href,
  scopes: new URL('./scopes/index.js', import.meta.url).href,
  'request-validator': new URL('./request-validator/index.js', import.meta.url).href,
  cors: new URL('./cors/index.js', import.meta.url).href,
  'security-headers': new URL('./security-headers/index.js', import.meta.url).href
})

/** Symbols shared across modules (fastify lib/symbols.js style). */

/** Brands a plugin made by definePlugin(); Symbol.for so duplicate copies agree. */
export const kPluginMeta = Symbol.for('tollgate.plugin-meta')

/** White-box access for tests in test/internals/. */
export const kTestInternals = Symbol.for('tollgate.test-internals')

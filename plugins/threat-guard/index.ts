import { definePlugin } from '../../src/plugin.js'
import { createThreatGuard, prepareThreatGuard } from './threat-guard.js'
import { schema } from './schema.js'
import type { ThreatGuardConfig } from './schema.js'

/** Blocks client addresses that collect too many 4xx answers, for every worker at once. */
export default definePlugin<ThreatGuardConfig>({
  name: 'threat-guard',
  // Blocked clients are answered before any credential is looked at or any quota spent.
  phase: 'connect',
  tollgate: '>=0.1.0',
  schema,
  description: 'Counts 400/401/403/429 answers per client address; over a threshold the address is blocked (403) on every worker for a while',
  prepare: (config, api) => prepareThreatGuard(config, api),
  // The allow list lives in the shared IP table after prepare().
  preparedKeys: ['allow'],
  create: (config, api) => createThreatGuard(config, api)
})

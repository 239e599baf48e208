import { definePlugin } from '../../src/plugin.js'
import { createIpFilter, prepareIpFilter } from './ip-filter.js'
import { schema } from './schema.js'
import type { IpFilterConfig } from './schema.js'

/** Allow and deny lists of CIDRs, matched in the shared-memory WASM tables. */
export default definePlugin<IpFilterConfig>({
  name: 'ip-filter',
  phase: 'connect',
  tollgate: '>=0.1.0',
  schema,
  description: 'Allow/deny lists of IPv4 and IPv6 CIDRs (deny wins), inline or from files, any size',
  prepare: (config, api) => prepareIpFilter(config, api),
  // The lists live in the shared IP table after prepare(); workers need only `status`.
  preparedKeys: ['allow', 'deny', 'allowFile', 'denyFile'],
  create: (config, api) => createIpFilter(config, api)
})

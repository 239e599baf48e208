import { definePlugin } from '../../src/plugin.js'
import { createAccessLog } from './access-log.js'
import { schema } from './schema.js'
import type { AccessLogConfig } from './schema.js'

/** One JSON line per request, with secrets redacted. */
export default definePlugin<AccessLogConfig>({
  name: 'access-log',
  phase: 'log',
  tollgate: '>=0.1.0',
  schema,
  description: 'One pino JSON line per request: time, id, method, path, status, duration, client, route, upstream, bytes',
  create: (config, api) => createAccessLog(config, api)
})

import { definePlugin } from '../../src/plugin.js'
import { createRequestValidator, prepareRequestValidator } from './request-validator.js'
import { schema } from './schema.js'
import type { RequestValidatorConfig } from './schema.js'

/** JSON Schema validation of the request: body, query string, path parameters, headers. */
export default definePlugin<RequestValidatorConfig>({
  name: 'request-validator',
  phase: 'validate',
  tollgate: '>=0.1.0',
  schema,
  description: 'Checks the JSON body, query string, path parameters and headers against JSON Schemas (inline or from an OpenAPI operation); 400/415 otherwise',
  prepare: (config, api) => prepareRequestValidator(config, api),
  create: (config, api) => createRequestValidator(config, api)
})

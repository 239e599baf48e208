import { mkdirSync, writeFileSync } from 'node:fs'
import { gatewaySchema } from '../src/config-schema.js'
import { PACKAGE_ROOT } from '../src/version.js'

// The published schema is generated from the same object the validator compiles, so the
// two cannot disagree. Editors pick it up with `# yaml-language-server: $schema=...`.
const dir = new URL('schema/', PACKAGE_ROOT)
mkdirSync(dir, { recursive: true })
const file = new URL('gateway.schema.json', dir)
// `format: http-url` is ours; editors know `uri`.
const json = JSON.stringify(gatewaySchema, null, 2).replaceAll('"format": "http-url"', '"format": "uri"')
writeFileSync(file, json + '\n')
process.stdout.write(`wrote ${file.pathname}\n`)

#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (built by `npm ci` via `prepare`).
import('../dist/src/cli.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`tollgate: ${err && err.message ? err.message : err}\n`)
  process.exitCode = 2
})

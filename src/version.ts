import { readFileSync } from 'node:fs'

/**
 * The package root: this file runs as dist/src/version.js (built) or src/version.ts (under
 * the test loader), so walk up to the package.json that names tollgate.
 */
function findPackageRoot (): URL {
  let dir = new URL('./', import.meta.url)
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string }
      if (pkg.name === 'tollgate') return dir
    } catch {}
    dir = new URL('../', dir)
  }
  throw new Error('tollgate: cannot find its own package.json')
}

export const PACKAGE_ROOT: URL = findPackageRoot()

export const VERSION: string = (JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT), 'utf8')) as { version: string }).version

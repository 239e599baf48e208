import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/*
 * Test certificates, made at test time with the openssl CLI rather than committed: no
 * private key lives in the repository, nothing expires under the suite one day, and a test
 * can make as many as it needs (a rotated certificate, a second CA, a client per consumer).
 * EC P-256 keys: each certificate takes a few milliseconds.
 */

export interface Pem { cert: string, key: string }
export interface Ca extends Pem { dir: string, name: string }

function openssl (args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 })
}

/** A throwaway CA; its files are removed when `cleanup` runs. */
export function makeCa (name: string, cleanup: (fn: () => void) => void): Ca {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-ca-'))
  cleanup(() => rmSync(dir, { recursive: true, force: true }))
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir)
  return { dir, name, cert: readFileSync(join(dir, 'ca.crt'), 'utf8'), key: readFileSync(join(dir, 'ca.key'), 'utf8') }
}

let serial = 0

/** A certificate signed by `ca`: CN `cn`, subjectAltName entries as given (`DNS:a.test`). */
export function issue (ca: Ca, cn: string, san: string[] = [], opts: { days?: number } = {}): Pem {
  const id = `c${++serial}`
  const ext = [`subjectAltName=${san.length > 0 ? san.join(',') : `DNS:${cn}`}`, 'extendedKeyUsage=serverAuth,clientAuth', 'basicConstraints=CA:FALSE'].join('\n')
  writeFileSync(join(ca.dir, `${id}.ext`), ext)
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${id}.key`, '-out', `${id}.csr`, '-subj', `/CN=${cn}`], ca.dir)
  openssl(['x509', '-req', '-in', `${id}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(Date.now() * 100 + serial), '-out', `${id}.crt`,
    '-days', String(opts.days ?? 2), '-extfile', `${id}.ext`], ca.dir)
  return { cert: readFileSync(join(ca.dir, `${id}.crt`), 'utf8'), key: readFileSync(join(ca.dir, `${id}.key`), 'utf8') }
}

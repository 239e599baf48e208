import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { createSecureContext } from 'node:tls'
import type { ListenTlsConfig } from '../config-schema.js'

/**
 * The listener's certificates as PEM text, read and checked in the acceptor (startup, policy
 * update, or a watched file that changed) and posted to every worker, which builds its
 * secure contexts from it. Checked here so that a bad file is refused once, with its path,
 * before any worker is asked to serve it.
 */
export interface TlsCertificate {
  cert: string
  key: string
  /** Lower-case SNI names this certificate serves (exact, or `*.example.com`). */
  names: string[]
  /** For logs: the files and when the certificate expires. */
  certFile: string
  notAfter: string
}

export interface TlsMaterial {
  /** The first is the default certificate. */
  certificates: TlsCertificate[]
  /** PEM of the CA(s) client certificates must chain to (clientCertificates). */
  clientCa?: string
  /** Every file this was read from (absolute), for the reload watcher. */
  files: string[]
}

/** A file that cannot serve: `at` is the config path (`/listen/tls/certificates/0/cert`). */
export class TlsFileError extends Error {
  constructor (readonly at: string, readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`)
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

function read (file: string, dir: string, at: string): { path: string, text: string } {
  const path = isAbsolute(file) ? file : resolve(dir, file)
  try {
    return { path, text: readFileSync(path, 'utf8') }
  } catch (err) {
    throw new TlsFileError(at, path, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** Every certificate of a PEM bundle, parsed; none, or an unparsable one, is an error. */
function parseBundle (text: string, path: string, at: string): X509Certificate[] {
  const blocks = text.match(PEM_CERT) ?? []
  if (blocks.length === 0) throw new TlsFileError(at, path, 'no PEM certificate in the file')
  return blocks.map((b) => {
    try {
      return new X509Certificate(b)
    } catch (err) {
      throw new TlsFileError(at, path, `not a valid certificate: ${(err as Error).message}`)
    }
  })
}

/** DNS names of the subjectAltName (`DNS:a.example, IP Address:1.2.3.4` -> [a.example]). */
export function dnsNames (x509: X509Certificate): string[] {
  const san = x509.subjectAltName
  if (san === undefined) return []
  return san.split(', ').filter((e) => e.startsWith('DNS:')).map((e) => e.slice(4).toLowerCase())
}

/** Read and check every file of the listener's TLS block. Throws TlsFileError. */
export function loadTlsMaterial (tls: ListenTlsConfig, dir: string, now = Date.now()): TlsMaterial {
  const files: string[] = []
  const certificates = tls.certificates.map((c, i): TlsCertificate => {
    const at = `/listen/tls/certificates/${i}`
    const cert = read(c.cert, dir, `${at}/cert`)
    const key = read(c.key, dir, `${at}/key`)
    files.push(cert.path, key.path)
    const [leaf] = parseBundle(cert.text, cert.path, `${at}/cert`) as [X509Certificate]
    let privateKey
    try {
      privateKey = createPrivateKey(key.text)
    } catch (err) {
      throw new TlsFileError(`${at}/key`, key.path, `not a valid private key: ${(err as Error).message}`)
    }
    if (!leaf.checkPrivateKey(privateKey)) throw new TlsFileError(`${at}/key`, key.path, `this key does not belong to the certificate in ${cert.path}`)
    if (Date.parse(leaf.validTo) < now) throw new TlsFileError(`${at}/cert`, cert.path, `the certificate expired on ${leaf.validTo}`)
    try {
      createSecureContext({ cert: cert.text, key: key.text })
    } catch (err) {
      throw new TlsFileError(`${at}/cert`, cert.path, (err as Error).message)
    }
    const names = (c.serverNames ?? dnsNames(leaf)).map((n) => n.toLowerCase())
    // The default certificate may name nothing (served to every connection); an SNI one must.
    if (i > 0 && names.length === 0) throw new TlsFileError(`${at}/serverNames`, cert.path, 'the certificate has no DNS subjectAltName: give serverNames, or SNI can never choose it')
    return { cert: cert.text, key: key.text, names, certFile: cert.path, notAfter: leaf.validTo }
  })
  let clientCa: string | undefined
  if (tls.clientCertificates !== undefined) {
    const at = '/listen/tls/clientCertificates/ca'
    const ca = read(tls.clientCertificates.ca, dir, at)
    files.push(ca.path)
    parseBundle(ca.text, ca.path, at)
    clientCa = ca.text
  }
  return { certificates, clientCa, files }
}

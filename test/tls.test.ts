import { spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { Agent } from 'node:https'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { issue, makeCa } from './helpers/certs.js'
import { rawRequest, startGateway, startUpstream } from './helpers/gateway.js'
import { handshake, tlsRequest } from './helpers/tls-client.js'

// CHECKLIST section I and issue 5's TLS cases, against a real TLS listener on 127.0.0.1
// served by the gateway's worker threads.

t.test('TLS listener: versions, ciphers, SNI, Host, HSTS, handshake timeout, renegotiation, rotation', async (t) => {
  const ca = makeCa('Tollgate Test CA', (fn) => t.teardown(fn))
  const def = issue(ca, 'default.test')
  const api = issue(ca, 'api.test', ['DNS:api.test', 'DNS:*.api.test'])
  const files = {
    def: join(ca.dir, 'default.pem'),
    defKey: join(ca.dir, 'default.key'),
    api: join(ca.dir, 'api.pem'),
    apiKey: join(ca.dir, 'api.key')
  }
  writeFileSync(files.def, def.cert)
  writeFileSync(files.defKey, def.key)
  writeFileSync(files.api, api.cert)
  writeFileSync(files.apiKey, api.key)
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      logLevel: 'debug',
      listen: {
        host: '127.0.0.1',
        port: 0,
        tls: {
          certificates: [{ cert: files.def, key: files.defKey }, { cert: files.api, key: files.apiKey }],
          handshakeTimeout: '1s'
        }
      },
      routes: [{ name: 'all', match: { path: '/' }, upstream: up.url, plugins: [{ name: 'security-headers' }] }]
    }
  })

  await t.test('TLS 1.3 is preferred; TLS 1.2 is accepted', async (t) => {
    const r = await tlsRequest(gw.port, { servername: 'api.test' })
    t.equal(r.status, 200)
    t.equal(r.protocol, 'TLSv1.3')
    const s = await handshake(gw.port, { maxVersion: 'TLSv1.2' })
    t.equal(s.getProtocol(), 'TLSv1.2')
    t.match(s.getCipher().name, /^ECDHE-ECDSA-(AES\d+-GCM|CHACHA20)/, 'a forward-secret AEAD suite')
    s.destroy()
  })

  await t.test('I1: a TLS 1.0/1.1 client is refused (by the server: the client allows them)', async (t) => {
    for (const v of ['TLSv1', 'TLSv1.1'] as const) {
      const err = await handshake(gw.port, { minVersion: v, maxVersion: v, ciphers: 'DEFAULT@SECLEVEL=0' }).then((s) => { s.destroy(); return undefined }, (e: NodeJS.ErrnoException) => e)
      t.ok(err, `${v} refused`)
      t.match(String(err?.code) + String(err?.message), /PROTOCOL_VERSION|protocol version|unsupported protocol/i, `${v}: a protocol-version failure`)
    }
  })

  await t.test('I1: a weak cipher (CBC, SHA-1) is refused', async (t) => {
    const err = await handshake(gw.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA' }).then((s) => { s.destroy(); return undefined }, (e: Error) => e)
    t.ok(err)
    t.match(err?.message, /handshake failure|no shared cipher/i)
  })

  await t.test('SNI picks the certificate; no or unknown SNI gets the default one', async (t) => {
    t.equal((await tlsRequest(gw.port, { servername: 'api.test' })).servedCn, 'api.test')
    t.equal((await tlsRequest(gw.port, { servername: 'v2.api.test' })).servedCn, 'api.test', 'wildcard SAN')
    t.equal((await tlsRequest(gw.port, { servername: 'other.test' })).servedCn, 'default.test')
    t.equal((await tlsRequest(gw.port, { servername: '', host: 'api.test' })).servedCn, 'default.test')
  })

  await t.test('I2: SNI and Host naming different servers is 421', async (t) => {
    const r = await tlsRequest(gw.port, { servername: 'api.test', host: 'other.test' })
    t.equal(r.status, 421)
    t.equal(JSON.parse(r.body).code, 'GW_MISDIRECTED_REQUEST')
    const ok = await tlsRequest(gw.port, { servername: 'api.test', host: 'API.test:443' })
    t.equal(ok.status, 200, 'case and port do not matter')
  })

  await t.test('the upstream hears X-Forwarded-Proto https; HSTS is sent on TLS', async (t) => {
    const before = up.seen.length
    const r = await tlsRequest(gw.port, { servername: 'api.test', path: '/x' })
    t.equal(r.status, 200)
    t.match(r.headers['strict-transport-security'], /max-age=/)
    t.equal(up.seen[before]?.headers['x-forwarded-proto'], 'https')
  })

  await t.test('B8: a TCP connection that never sends a ClientHello is closed at handshakeTimeout', async (t) => {
    const start = Date.now()
    const closed = await new Promise<number>((resolve) => {
      const s = netConnect(gw.port, '127.0.0.1')
      s.on('error', () => {})
      s.on('close', () => resolve(Date.now() - start))
      setTimeout(() => { s.destroy(); resolve(-1) }, 8000).unref()
    })
    t.not(closed, -1, 'closed by the server')
    t.ok(closed >= 900, `not before the timeout (${closed} ms)`)
  })

  await t.test('I3: client-initiated renegotiation (TLS 1.2) closes the connection', async (t) => {
    // openssl s_client renegotiates on an `R` line and exits when the server closes the
    // connection (stdin stays open, so nothing else ends it). Node's own TLS client does not
    // report a close that arrives mid-renegotiation, hence the external client.
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${gw.port}`, '-tls1_2', '-servername', 'api.test', '-quiet'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const killer = setTimeout(() => p.kill('SIGKILL'), 8000)
    t.teardown(() => { clearTimeout(killer); if (p.exitCode === null) p.kill('SIGKILL') })
    // Wait for the handshake (s_client prints the verification lines to stderr).
    const deadline = Date.now() + 5000
    while (!/verify|depth/i.test(out) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    p.stdin.write('R\n')
    const exit = await new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })))
    clearTimeout(killer)
    t.equal(exit.signal, null, 'the server closed the connection (s_client was not killed by the test)')
    t.notMatch(out, /HTTP\/1\.1 200/)
  })

  await t.test('I4: HTTP/2 is not offered (ALPN gives http/1.1)', async (t) => {
    const s = await handshake(gw.port, { ALPNProtocols: ['h2', 'http/1.1'] })
    t.equal(s.alpnProtocol, 'http/1.1')
    s.destroy()
  })

  await t.test('a plain-HTTP request on the TLS port gets no answer', async (t) => {
    const out = await rawRequest(gw.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', 1500)
    t.notMatch(out, /^HTTP\/1\.1 200/)
  })

  await t.test('a rotated certificate is served to new connections; an open keep-alive connection keeps working', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    const first = await tlsRequest(gw.port, { servername: 'api.test', agent })
    t.equal(first.status, 200)
    const oldFp = first.socket.getPeerX509Certificate()?.fingerprint256
    const next = issue(ca, 'api.test', ['DNS:api.test'])
    const reloaded = gw.waitFor((l) => l.msg === 'certificates reloaded')
    writeFileSync(files.apiKey, next.key)
    writeFileSync(files.api, next.cert)
    await reloaded
    const fresh = await tlsRequest(gw.port, { servername: 'api.test' })
    const newFp = new X509Certificate(next.cert).fingerprint256
    t.equal(fresh.socket.getPeerX509Certificate()?.fingerprint256, newFp, 'a new connection gets the new certificate')
    t.not(newFp, oldFp)
    const again = await tlsRequest(gw.port, { servername: 'api.test', agent })
    t.equal(again.status, 200)
    t.ok(again.reusedSocket, 'the same keep-alive connection')
    t.equal(again.socket, first.socket, 'the same socket')
    // (The same TLS connection, so the certificate it was opened with.)

    // A bad file is refused with a clear log line, and the served certificate stays.
    const refused = gw.waitFor((l) => l.msg === 'certificate files not reloaded; the certificates being served stay')
    writeFileSync(files.api, 'not a certificate\n')
    const line = await refused
    t.equal(line.code, 'GW_ERR_TLS_CERT')
    t.equal(line.file, files.api)
    const still = await tlsRequest(gw.port, { servername: 'api.test' })
    t.equal(still.socket.getPeerX509Certificate()?.fingerprint256, newFp)
    t.equal(still.status, 200)
  })
})

t.test('H6: rotation under load has no failed handshakes; with watch off, a policy update (SIGHUP) re-reads the files', async (t) => {
  const ca = makeCa('Rotation CA', (fn) => t.teardown(fn))
  const first = issue(ca, 'rot.test')
  const cert = join(ca.dir, 'rot.pem')
  const key = join(ca.dir, 'rot.key')
  writeFileSync(cert, first.cert)
  writeFileSync(key, first.key)
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    config: {
      listen: { host: '127.0.0.1', port: 0, tls: { certificates: [{ cert, key }], watch: false } },
      routes: [{ name: 'all', match: { path: '/' }, upstream: up.url }]
    }
  })
  const fingerprint = async (): Promise<string | undefined> => (await tlsRequest(gw.port, { servername: 'rot.test' })).socket.getPeerX509Certificate()?.fingerprint256

  // New connections, 4 at a time, bounded in count, while the certificate changes under them.
  let failures = 0
  let served = 0
  let stop = false
  const loop = async (): Promise<void> => {
    for (let i = 0; i < 200 && !stop; i++) {
      try {
        const r = await tlsRequest(gw.port, { servername: 'rot.test' })
        if (r.status === 200) served++
        else failures++
      } catch {
        failures++
      }
    }
  }
  const load = Promise.all([loop(), loop(), loop(), loop()])

  const second = issue(ca, 'rot.test')
  writeFileSync(key, second.key)
  writeFileSync(cert, second.cert)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.equal(await fingerprint(), new X509Certificate(first.cert).fingerprint256, 'watch: false: the change is not picked up by itself')
  gw.proc.kill('SIGHUP')
  const want = new X509Certificate(second.cert).fingerprint256
  let seen: string | undefined
  for (let i = 0; i < 100 && seen !== want; i++) {
    seen = await fingerprint()
    if (seen !== want) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.equal(seen, want, 'after SIGHUP, new connections get the new certificate')
  stop = true
  await load
  t.ok(served > 0, `${served} requests served during the rotation`)
  t.equal(failures, 0, 'no handshake or request failed')
})

import { request } from 'node:https'
import type { Agent } from 'node:https'
import type { IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:tls'
import type { ConnectionOptions, TLSSocket } from 'node:tls'

export interface TlsResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
  /** CN of the certificate the server presented. */
  servedCn: string
  protocol: string
  reusedSocket: boolean
  socket: TLSSocket
}

/**
 * One HTTPS request to the gateway on 127.0.0.1. The server certificate is not checked here
 * (tests look at which one was served, `servedCn`); `servername` is the SNI sent ('' for none).
 */
export function tlsRequest (port: number, opts: { path?: string, method?: string, host?: string, servername?: string, agent?: Agent, cert?: string, key?: string, headers?: Record<string, string>, body?: string } = {}): Promise<TlsResponse> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: opts.path ?? '/',
      method: opts.method ?? 'GET',
      servername: opts.servername ?? '',
      rejectUnauthorized: false,
      agent: opts.agent ?? false,
      cert: opts.cert,
      key: opts.key,
      headers: { host: opts.host ?? opts.servername ?? 'localhost', ...opts.headers },
      timeout: 10_000
    }, (res) => {
      // Captured now: a keep-alive agent takes the socket back when the body ends.
      const socket = res.socket as TLSSocket
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, servedCn: String(socket.getPeerCertificate().subject?.CN ?? ''), protocol: socket.getProtocol() ?? '', reusedSocket: req.reusedSocket, socket })
      })
    })
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** A bare handshake: resolves with the socket once it is secure, rejects with the error. */
export function handshake (port: number, opts: ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: '', ...opts })
    const timer = setTimeout(() => { s.destroy(); reject(new Error('handshake timed out')) }, 10_000)
    s.once('secureConnect', () => { clearTimeout(timer); resolve(s) })
    s.once('error', (e) => { clearTimeout(timer); s.destroy(); reject(e) })
  })
}

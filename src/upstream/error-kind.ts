import type { UpstreamErrorKind } from '../metrics/layout.js'

/** What went wrong upstream, for tollgate_upstream_errors_total{kind}. */
export function upstreamErrorKind (err: Error): UpstreamErrorKind {
  const code = (err as NodeJS.ErrnoException).code ?? ''
  if (code === 'ECONNREFUSED') return 'refused'
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') return 'reset'
  if (code.endsWith('_TIMEOUT') || code === 'ETIMEDOUT') return 'timeout'
  if (code.startsWith('HPE_') || err.name === 'HTTPParserError' || code === 'GW_UPSTREAM_FRAMING' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO') return 'bad_framing'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'dns'
  return 'other'
}

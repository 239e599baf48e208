// The IP list the ip-filter scenarios use (and HAProxy's equivalent ACL): 100,000 distinct
// CIDRs, /32s and /24s spread over 11.0.0.0-42.255.255.255, plus 127.0.0.1/32, so that an
// allow list admits the bench's client (127.0.0.1) and refuses 127.0.0.2, the control.

export const CONTROL_ADDRESS = '127.0.0.2'

/** One CIDR a line, `count` of them besides 127.0.0.1/32 (placed in the middle). */
export function allowList (count = 100_000): string {
  const lines: string[] = []
  for (let i = 0; i < count; i++) {
    const a = 11 + (i >>> 16)
    lines.push(i % 2 === 0 ? `${a}.${(i >>> 8) & 255}.${i & 255}.1/32` : `${a + 16}.${(i >>> 8) & 255}.${i & 255}.0/24`)
    if (i === count >> 1) lines.push('127.0.0.1/32')
  }
  return lines.join('\n') + '\n'
}

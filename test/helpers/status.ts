// GET /status on a running gateway's admin listener (the port its 'listening' line names).
import { request } from 'undici'
import type { RunningGateway } from './gateway.js'
import type { GatewayStatus } from '../../src/control/types.js'
import type { TargetStatus } from '../../src/upstream/status.js'

export async function adminStatus (gw: RunningGateway): Promise<GatewayStatus> {
  const line = gw.lines.find((l) => l.msg === 'listening') as { admin?: { port: number } } | undefined
  const port = line?.admin?.port
  if (port === undefined) throw new Error('no admin listener (set admin: { port: 0 })')
  const res = await request(`http://127.0.0.1:${port}/status`)
  if (res.statusCode !== 200) throw new Error(`GET /status: ${res.statusCode} ${await res.body.text()}`)
  return await res.body.json() as GatewayStatus
}

/** The status of the target `url` of the upstream route `route` uses. */
export async function targetStatus (gw: RunningGateway, route: string, url: string): Promise<TargetStatus | undefined> {
  const s = await adminStatus(gw)
  return s.upstreams.find((u) => u.routes.includes(route))?.targets.find((x) => x.url === url)
}

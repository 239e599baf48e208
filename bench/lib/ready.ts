// How the bench knows a server it started is ready: the port it announces on stdout.
import type { PortMatcher } from './children.js'

/** Our own servers print `{"port":N}`. */
export const announcedPort: PortMatcher = (line) => {
  const obj = parseJsonLine(line)
  return typeof obj?.port === 'number' ? obj.port : undefined
}

/** tollgate logs (pino) `{"msg":"listening","port":N,...}`, possibly after other lines. */
export const tollgateListening: PortMatcher = (line) => {
  const obj = parseJsonLine(line)
  if (obj?.msg !== 'listening') return undefined
  if (typeof obj.port === 'number') return obj.port
  const address = obj.address as { port?: unknown } | undefined
  return typeof address?.port === 'number' ? address.port : undefined
}

function parseJsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

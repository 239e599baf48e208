const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `10s` -> 10000; numbers are milliseconds already. The schema has checked the form. */
export function toMs (value: number | string): number {
  if (typeof value === 'number') return value
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(value)
  if (m === null) throw new TypeError(`not a duration: ${value}`)
  return Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number))
}

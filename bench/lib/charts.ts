// The report's two charts as plain SVG text (no dependency, no build step): throughput.svg
// (closed-loop req/s per subject, median bar with the min–max range of the rounds) and
// latency.svg (latency percentiles per subject on a log scale, one line each).
import type { SubjectRecord } from './report.js'

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#843c39', '#7b4173']
const FONT = 'font-family="Helvetica, Arial, sans-serif"'

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const fmt = (n: number): string => (n >= 1000 ? `${Math.round(n / 100) / 10}k` : String(Math.round(n)))

/** "Nice" axis ticks from 0 to at least max. */
function ticks (max: number, count = 5): number[] {
  const raw = max / count
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw
  const out: number[] = []
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(v)
  return out
}

export function throughputSvg (subjects: readonly SubjectRecord[], title: string): string {
  const rows = subjects.filter((s) => s.summary !== null)
  const labelW = 200
  const plotW = 560
  const rowH = 26
  const top = 56
  const height = top + rows.length * rowH + 60
  const width = labelW + plotW + 90
  const max = Math.max(1, ...rows.map((s) => s.summary!.requestsPerSec.max))
  const axis = ticks(max)
  const scale = (v: number): number => labelW + (v / axis[axis.length - 1]!) * plotW
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">requests per second, closed loop (bar: median of rounds; black line: min–max)</text>`
  ]
  for (const t of axis) {
    const xx = scale(t)
    out.push(`<line x1="${xx}" y1="${top - 4}" x2="${xx}" y2="${top + rows.length * rowH}" stroke="#ddd"/>`,
      `<text x="${xx}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#333">${fmt(t)}</text>`)
  }
  out.push(`<text x="${labelW + plotW / 2}" y="${top + rows.length * rowH + 36}" text-anchor="middle">req/s</text>`)
  rows.forEach((s, i) => {
    const m = s.summary!.requestsPerSec
    const y = top + i * rowH
    const color = s.group === 'peers' ? '#ff7f0e' : s.name.startsWith('upstream') || s.name === 'bare-proxy' ? '#7f7f7f' : '#1f77b4'
    out.push(`<text x="${labelW - 8}" y="${y + rowH / 2 + 4}" text-anchor="end">${esc(s.name)}</text>`,
      `<rect x="${labelW}" y="${y + 4}" width="${Math.max(1, scale(m.median) - labelW)}" height="${rowH - 8}" fill="${color}"/>`,
      `<line x1="${scale(m.min)}" y1="${y + rowH / 2}" x2="${scale(m.max)}" y2="${y + rowH / 2}" stroke="black" stroke-width="1.5"/>`,
      `<text x="${scale(m.max) + 6}" y="${y + rowH / 2 + 4}" fill="#333">${Math.round(m.median).toLocaleString('en-US')}</text>`)
  })
  out.push(`<line x1="${labelW}" y1="${top - 4}" x2="${labelW}" y2="${top + rows.length * rowH}" stroke="#333"/>`)
  const ly = height - 14
  out.push(`<rect x="${labelW}" y="${ly - 9}" width="10" height="10" fill="#7f7f7f"/><text x="${labelW + 14}" y="${ly}">baselines</text>`,
    `<rect x="${labelW + 90}" y="${ly - 9}" width="10" height="10" fill="#1f77b4"/><text x="${labelW + 104}" y="${ly}">tollgate</text>`,
    `<rect x="${labelW + 170}" y="${ly - 9}" width="10" height="10" fill="#ff7f0e"/><text x="${labelW + 184}" y="${ly}">peers</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}

interface Series { name: string, values: Array<number | null> }

/**
 * Latency percentiles per subject: the open loop at `rate` when it ran (p50, p90, p99, p99.9,
 * max), else the closed loop's (p50, p90, p99 from the load tool).
 */
export function latencySvg (subjects: readonly SubjectRecord[], title: string): string {
  const withOpen = subjects.filter((s) => (s.summary?.openLoop.length ?? 0) > 0)
  let labels: string[]
  let series: Series[]
  let subtitle: string
  if (withOpen.length > 0) {
    const rate = withOpen[0]!.summary!.openLoop[0]!.rate
    labels = ['p50', 'p90', 'p99', 'p99.9', 'max']
    series = withOpen.flatMap((s) => {
      const o = s.summary!.openLoop.find((x) => x.rate === rate)
      return o === undefined ? [] : [{ name: s.name + (o.nearKnee ? ' (near the knee)' : ''), values: [o.p50Ms.median, o.p90Ms.median, o.p99Ms.median, o.p999Ms.median, o.maxMs.median] }]
    })
    subtitle = `open loop at ${rate.toLocaleString('en-US')} req/s, latency from the intended send time (ms, log scale; medians of rounds)`
  } else {
    labels = ['p50', 'p90', 'p99']
    series = subjects.filter((s) => s.summary !== null).map((s) => ({ name: s.name, values: [s.summary!.p50Ms.median, s.summary!.p90Ms?.median ?? null, s.summary!.p99Ms.median] }))
    subtitle = 'closed loop, latency under full load (ms, log scale; medians of rounds)'
  }
  const left = 70
  const plotW = 520
  const plotH = 340
  const top = 60
  const legendW = 260
  const width = left + plotW + legendW
  const height = Math.max(top + plotH + 60, top + series.length * 18 + 20)
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null && v > 0))
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.001, Math.min(...all, 1))))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, 1)))
  const y = (v: number): number => top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH
  const xAt = (i: number): number => left + 30 + (i / Math.max(1, labels.length - 1)) * (plotW - 60)
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`
  ]
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m
      if (v > hi * 1.0001) break
      out.push(`<line x1="${left}" y1="${y(v)}" x2="${left + plotW}" y2="${y(v)}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`,
        `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#333">${v >= 1 ? String(Math.round(v)) : String(Number(v.toPrecision(1)))}</text>`)
    }
  }
  out.push(`<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">latency, ms</text>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>`)
  labels.forEach((l, i) => out.push(`<text x="${xAt(i)}" y="${top + plotH + 18}" text-anchor="middle">${l}</text>`))
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 40}" text-anchor="middle">percentile</text>`)
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!
    const dash = i >= PALETTE.length ? ' stroke-dasharray="5 3"' : ''
    const pts = s.values.flatMap((v, j) => (v === null || v <= 0 ? [] : [`${xAt(j).toFixed(1)},${y(v).toFixed(1)}`]))
    out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`)
    for (const p of pts) {
      const [px, py] = p.split(',')
      out.push(`<circle cx="${px}" cy="${py}" r="3" fill="${color}"/>`)
    }
    const ly = top + i * 18
    out.push(`<line x1="${left + plotW + 16}" y1="${ly}" x2="${left + plotW + 36}" y2="${ly}" stroke="${color}" stroke-width="3"${dash}/>`,
      `<text x="${left + plotW + 42}" y="${ly + 4}">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

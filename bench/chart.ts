// bench/results.svg: one horizontal bar per scenario (req/s as a ratio to the bare route) with the
// target lines drawn across, written as plain SVG text so it needs no dependency and diffs as text.
import type { Measured, Summary } from './report.js'
import type { Group } from './scenarios.js'

const WIDTH = 900
const LABEL_WIDTH = 250
const BAR_AREA = 520
const ROW = 26
const TOP = 78
const COLORS: Record<Group, string> = { ceiling: '#9e9e9e', baseline: '#c9c9c9', plugin: '#2f6fb7', peer: '#e08a2c' }
const LEGEND: Array<[Group, string]> = [['plugin', 'this plugin'], ['peer', 'peers'], ['baseline', 'no cache'], ['ceiling', 'bare ceiling']]
const LINE_COLORS = ['#c0392b', '#8e44ad', '#16a085']

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

export function renderChart (results: Measured[], summary: Summary): string {
  const ceiling1mb = summary.ratioOf('bare-1mb')
  // 1 MB rows are shown against the 1 MB ceiling: against the 0.7 KB bare route they say only that
  // 1 MB takes longer to send.
  const bars = results.filter((m) => m.scenario.name !== 'bare-1mb').map((m) => {
    const large = m.scenario.name.endsWith('-1mb') && ceiling1mb !== undefined
    return {
      label: large ? `${m.scenario.name} (÷ bare-1mb)` : m.scenario.name,
      value: large ? m.ratio / (ceiling1mb as number) : m.ratio,
      group: m.scenario.group
    }
  })
  const max = Math.max(1.2, Math.ceil(Math.max(...bars.map((b) => b.value)) * 5) / 5)
  const xOf = (ratio: number): number => LABEL_WIDTH + (ratio / max) * BAR_AREA
  const bottom = TOP + bars.length * ROW
  const height = bottom + 40 + summary.lines.length * 18
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    '<text x="16" y="26" font-size="16" font-weight="bold">Requests per second as a ratio to the bare route (higher is better)</text>'
  ]
  LEGEND.forEach(([group, label], i) => {
    const x = 16 + i * 150
    out.push(`<rect x="${x}" y="40" width="14" height="14" fill="${COLORS[group]}"/>`, `<text x="${x + 20}" y="52">${label}</text>`)
  })
  // Grid and axis: a line every 0.2x.
  for (let tick = 0; tick <= max + 1e-9; tick += 0.2) {
    const x = xOf(tick).toFixed(1)
    out.push(`<line x1="${x}" y1="${TOP - 6}" x2="${x}" y2="${bottom}" stroke="#eeeeee"/>`,
      `<text x="${x}" y="${bottom + 16}" text-anchor="middle" fill="#666666">${tick.toFixed(1)}x</text>`)
  }
  const widthOf = (value: number): number => Math.max(1, xOf(value) - LABEL_WIDTH)
  bars.forEach((bar, i) => {
    out.push(`<rect x="${LABEL_WIDTH}" y="${TOP + i * ROW + 4}" width="${widthOf(bar.value).toFixed(1)}" height="${ROW - 8}" fill="${COLORS[bar.group]}"/>`)
  })
  summary.lines.forEach((line, i) => {
    const x = xOf(line.at).toFixed(1)
    const color = LINE_COLORS[i % LINE_COLORS.length]
    out.push(`<line x1="${x}" y1="${TOP - 6}" x2="${x}" y2="${bottom}" stroke="${color}" stroke-width="2" stroke-dasharray="6 4"/>`,
      `<line x1="16" y1="${bottom + 34 + i * 18}" x2="40" y2="${bottom + 34 + i * 18}" stroke="${color}" stroke-width="2" stroke-dasharray="6 4"/>`,
      `<text x="48" y="${bottom + 38 + i * 18}">${escape(line.label)}</text>`)
  })
  // Labels last, with a white halo, so a target line crossing a value does not hide it.
  bars.forEach((bar, i) => {
    const y = TOP + i * ROW + 17
    out.push(`<text x="${LABEL_WIDTH - 8}" y="${y}" text-anchor="end">${escape(bar.label)}</text>`,
      `<text x="${(LABEL_WIDTH + widthOf(bar.value) + 6).toFixed(1)}" y="${y}" stroke="#ffffff" stroke-width="4" paint-order="stroke">${bar.value.toFixed(2)}x</text>`)
  })
  out.push('</svg>', '')
  return out.join('\n')
}

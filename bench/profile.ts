// A CPU profile of the memory-hit path: the memory-hit server runs under `node --cpu-prof` while
// autocannon drives it; the .cpuprofile is read here and cut down to the load window's samples.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CONNECTIONS, load, startServer } from './harness.js'

const WARMUP_SECONDS = 2
const PROFILE_SECONDS = 5
const TOP_FRAMES = 10
const REPLY_PATH = /^node:(_http|net|internal\/streams?\/|internal\/stream_base)|fastify\/lib\/hooks\.js$/

interface CpuProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}

interface CpuProfile { nodes: CpuProfileNode[], startTime: number, samples: number[], timeDeltas: number[] }

export interface Frame { name: string, where: string, share: number }

export interface ProfileSummary {
  seconds: number
  connections: number
  samples: number
  /** Percentages: of all samples for idleShare, of busy (non-idle) samples for the rest. */
  idleShare: number
  pluginSelfShare: number
  pluginTotalShare: number
  top: Frame[]
  plugin: Frame[]
}

const root = new URL('../', import.meta.url).href
// The servers load the built package, as users do.
const libUrl = new URL('../dist/esm/', import.meta.url).href

/** The profile's clock: microseconds of the monotonic clock that process.hrtime reads too. */
const nowMicros = (): number => Number(process.hrtime.bigint() / 1000n)

function where (url: string, line: number): string {
  if (url === '') return 'V8 / native'
  const modules = url.lastIndexOf('node_modules/')
  const path = modules !== -1 ? url.slice(modules + 'node_modules/'.length) : url.startsWith(root) ? url.slice(root.length) : url.replace(/^file:\/\//, '')
  // tsx hands V8 transformed code without line numbers that mean anything: the file is enough.
  return line > 0 ? `${path}:${line + 1}` : path
}

export function summariseProfile (profile: CpuProfile, from: number, to: number): Omit<ProfileSummary, 'seconds' | 'connections'> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parentOf = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
  // Inclusive time of the plugin: a sample counts when, walking up from it, a plugin frame comes
  // before any frame of the reply path. A hit answers by calling reply.send from its hook, and the
  // plugin's onSend hook hands the payload on; the hook running and socket writes below those are
  // what every route pays, the bare one included.
  const underPlugin = new Map<number, boolean>()
  const isUnderPlugin = (id: number): boolean => {
    let known = underPlugin.get(id)
    if (known !== undefined) return known
    const frame = (byId.get(id) as CpuProfileNode).callFrame
    const parent = parentOf.get(id)
    if (frame.url.startsWith(libUrl)) known = true
    else if (REPLY_PATH.test(frame.url) || frame.functionName === 'Reply.send' || parent === undefined) known = false
    else known = isUnderPlugin(parent)
    underPlugin.set(id, known)
    return known
  }

  let at = profile.startTime
  let inWindow = profile.samples.filter((_, i) => {
    at += profile.timeDeltas[i]
    return at >= from && at <= to
  })
  // Should the clocks ever disagree, the whole profile is better than nothing.
  if (inWindow.length === 0) inWindow = profile.samples

  const self = new Map<string, { name: string, where: string, url: string, count: number }>()
  let idle = 0
  let pluginTotal = 0
  for (const id of inWindow) {
    const { functionName, url, lineNumber } = (byId.get(id) as CpuProfileNode).callFrame
    if (functionName === '(idle)') {
      idle++
      continue
    }
    if (isUnderPlugin(id)) pluginTotal++
    const key = `${functionName}|${url}|${lineNumber}`
    const frame = self.get(key) ?? { name: functionName === '' ? '(anonymous)' : functionName, where: where(url, lineNumber), url, count: 0 }
    frame.count++
    self.set(key, frame)
  }
  const busy = inWindow.length - idle
  const share = (count: number): number => 100 * count / Math.max(1, busy)
  const frames = [...self.values()].sort((a, b) => b.count - a.count)
  const pluginFrames = frames.filter((f) => f.url.startsWith(libUrl))
  const toFrame = (f: { name: string, where: string, count: number }): Frame => ({ name: f.name, where: f.where, share: share(f.count) })
  return {
    samples: inWindow.length,
    idleShare: 100 * idle / Math.max(1, inWindow.length),
    pluginSelfShare: share(pluginFrames.reduce((n, f) => n + f.count, 0)),
    pluginTotalShare: share(pluginTotal),
    top: frames.slice(0, TOP_FRAMES).map(toFrame),
    plugin: pluginFrames.slice(0, TOP_FRAMES).map(toFrame)
  }
}

export async function profileMemoryHit (env: Record<string, string>): Promise<ProfileSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-profile-'))
  try {
    const server = await startServer('memory-hit.ts', env, ['--cpu-prof', '--cpu-prof-dir', dir])
    let from = 0
    let to = 0
    try {
      // Past start-up and JIT warm-up: only the load window's samples are summarised.
      await load(server.address + '/product', { seconds: WARMUP_SECONDS })
      from = nowMicros()
      await load(server.address + '/product', { seconds: PROFILE_SECONDS })
      to = nowMicros()
    } finally {
      await server.stop()
    }
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'))
    if (file === undefined) throw new Error('bench: the profiled server wrote no .cpuprofile')
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
    return { seconds: PROFILE_SECONDS, connections: CONNECTIONS, ...summariseProfile(profile, from, to) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

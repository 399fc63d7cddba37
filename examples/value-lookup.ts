import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { ResponseCacheClient, WrapOptions } from '../lib/index.js'

/** What a value lookup did: answered from the cache, ran the function, or answered an old value when it failed. */
export type Outcome = 'hit' | 'miss' | 'stale'

export interface Lookup<T> { value: T, outcome: Outcome, ms: number }

/**
 * `cache.wrap`, telling what happened: `hit` when the function did not run (the value came from the
 * cache, or from a concurrent caller's run), `miss` when it ran, `stale` when it ran, threw, and the
 * cache answered the old value (`staleIfError`). `enabled: false` runs the function, caching nothing.
 */
export async function lookup<T> (cache: ResponseCacheClient, key: string, fn: () => Promise<T>, options: Omit<WrapOptions, 'schema'> & { enabled?: boolean }): Promise<Lookup<T>> {
  const started = performance.now()
  const { enabled = true, ...wrapOptions } = options
  if (!enabled) return { value: await fn(), outcome: 'miss', ms: performance.now() - started }
  let ran = false
  let failed = false
  const value = await cache.wrap(key, async () => {
    ran = true
    try {
      return await fn()
    } catch (error) {
      failed = true
      throw error
    }
  }, wrapOptions)
  return { value, outcome: ran ? (failed ? 'stale' : 'miss') : 'hit', ms: performance.now() - started }
}

/**
 * Tells the reader what the value cache did for this response: one `server-timing` entry,
 * `cache;desc=hit;dur=0.4` (`miss` as soon as one lookup ran its function, `stale` when one answered
 * an old value), then one per lookup when there were several (`cache-memory;desc=hit`), and a debug
 * log line per lookup naming its kind (never its key, which may hold a name).
 */
export function tellLookups (reply: FastifyReply, lookups: Array<[kind: string, Lookup<unknown>]>, log: FastifyBaseLogger = reply.log): void {
  if (lookups.length === 0) return
  const outcomes = lookups.map(([, found]) => found.outcome)
  const summary: Outcome = outcomes.includes('miss') ? 'miss' : outcomes.includes('stale') ? 'stale' : 'hit'
  const ms = lookups.reduce((sum, [, found]) => sum + found.ms, 0)
  const entries = [`cache;desc=${summary};dur=${ms.toFixed(1)}`]
  if (lookups.length > 1) for (const [kind, found] of lookups) entries.push(`cache-${kind};desc=${found.outcome};dur=${found.ms.toFixed(1)}`)
  reply.header('server-timing', entries.join(', '))
  for (const [kind, found] of lookups) log.debug({ lookup: kind, outcome: found.outcome, ms: Number(found.ms.toFixed(1)) }, `value cache ${found.outcome}`)
}

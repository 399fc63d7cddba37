/**
 * The timing options of `wrap`: eager refresh (a fresh value refreshed in the background past a
 * fraction of its ttl) and the soft and hard timeouts of its function.
 */

/** What a run of `wrap`'s function came to: its value (written as its ctx said), or why not. */
export type RunOutcome<T> =
  | { value: T }
  /** `fn` threw or rejected: stale-if-error may answer instead. */
  | { fnError: unknown }
  /** `fn` answered, but its value could not be written as asked (a bad `ctx` field): the caller's error. */
  | { writeError: unknown }

/** The longest delay setTimeout takes. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** The deadline passed before the run settled. */
export const TIMED_OUT = Symbol('timed out')

/**
 * `running`, or TIMED_OUT once `ms` have passed since `since` (Date.now()), whichever comes first.
 * The timer is unref'd (a run that hangs never keeps the process alive) and cleared when the run
 * settles first. `ms` undefined: no deadline.
 */
export async function within<T> (running: Promise<T>, ms: number | undefined, since: number): Promise<T | typeof TIMED_OUT> {
  if (ms === undefined) return await running
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    // Past 2^31 - 1 ms, setTimeout would fire at once: a longer timeout waits that long (24.8 days).
    timer = setTimeout(() => { resolve(TIMED_OUT) }, Math.min(MAX_TIMER_MS, Math.max(0, since + ms - Date.now())))
    timer.unref()
  })
  try {
    return await Promise.race([running, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** The timing options of a `wrap` call, as checked. */
export interface TimingOptions {
  eagerRefresh?: number
  softTimeout?: number
  hardTimeout?: number
}

/** The first bad timing option: its name and what was expected; undefined when all are right. */
export function timingProblem ({ eagerRefresh, softTimeout, hardTimeout }: TimingOptions): [string, string] | undefined {
  if (eagerRefresh !== undefined && !(typeof eagerRefresh === 'number' && eagerRefresh > 0 && eagerRefresh < 1)) {
    return ['eagerRefresh', 'expected a fraction strictly between 0 and 1']
  }
  for (const [name, ms] of [['softTimeout', softTimeout], ['hardTimeout', hardTimeout]] as const) {
    if (ms !== undefined && !(typeof ms === 'number' && ms > 0 && Number.isFinite(ms))) return [name, 'expected a number of milliseconds greater than 0']
  }
  if (softTimeout !== undefined && hardTimeout !== undefined && hardTimeout < softTimeout) {
    return ['hardTimeout', 'expected a number of milliseconds not below softTimeout']
  }
  return undefined
}

/**
 * True for a fresh value read past `eagerRefresh` of its ttl: answered, and refreshed in the background.
 * `staleMs`: milliseconds past its freshness (negative while fresh); `ttlMs`: its whole freshness.
 */
export function pastEagerPoint ({ staleMs, ttlMs }: { staleMs: number, ttlMs: number }, eagerRefresh: number | undefined): boolean {
  return eagerRefresh !== undefined && staleMs < 0 && ttlMs + staleMs >= eagerRefresh * ttlMs
}

import { setTimeout as sleep } from 'node:timers/promises'
import { type CacheEntry, freshMs } from '../entry.js'
import type { GuardedStore } from '../stores/guard.js'
import type { MaybePromise } from '../stores/store.js'

/** How often a process waiting on another process's lock looks for its entry. */
export const LOCK_POLL_MS = 25

/** A store call as a promise, whether it answers in place, with a promise, or throws. Off the hit path. */
export async function attempt<T> (call: () => MaybePromise<T>): Promise<T> {
  return await new Promise<T>((resolve) => { resolve(call()) })
}

/** Fresh, or (for one revalidated before every use) revalidated by another process since `since`. */
export const isFresh = (entry: CacheEntry | undefined, since: number): entry is CacheEntry =>
  entry !== undefined && (Date.now() - entry.storedAt < freshMs(entry) || (entry.revalidate === true && entry.storedAt >= since))

/**
 * One run per key across processes sharing a store that locks (Redis), for responses and `wrap`
 * alike: the caller that takes the key's lock runs it (`token`), unless the holder it saw has written
 * meanwhile (`fresh`); a caller that does not get the lock looks for the holder's result every
 * LOCK_POLL_MS, for at most `lockMs`, then runs it itself. `ownToken` hands over a lock that another
 * call of this process took meanwhile. A store that fails leaves the run to the caller.
 */
export async function oneRunPerKey<T> (store: GuardedStore, key: string, lockMs: number, readFresh: () => Promise<T | undefined>, ownToken: () => string | undefined = () => undefined): Promise<{ token?: string, fresh?: T }> {
  let token: string | undefined
  try {
    token = await attempt(() => store.lock(key, lockMs))
  } catch {
    return {}
  }
  if (token !== undefined) {
    // The holder seen by the first read may have written and let go since: look once more.
    const fresh = await readFresh().catch(() => undefined)
    if (fresh === undefined) return { token }
    store.unlock(key, token)
    return { fresh }
  }
  for (const deadline = Date.now() + lockMs; ;) {
    await sleep(LOCK_POLL_MS)
    let fresh: T | undefined
    try {
      fresh = await readFresh()
    } catch {
      return {}
    }
    if (fresh !== undefined) return { fresh }
    const own = ownToken()
    if (own !== undefined || Date.now() >= deadline) return { token: own }
  }
}

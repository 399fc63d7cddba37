import { setTimeout as sleep } from 'node:timers/promises'
import type { HookContext, KeyedState } from './request-state.js'
import { type CacheEntry, freshMs } from '../entry.js'
import type { GuardedStore } from '../stores/guard.js'
import type { MaybePromise } from '../stores/store.js'

/** How often a process waiting on another process's lock looks for its entry. */
export const LOCK_POLL_MS = 25

/** A store call as a promise, whether it answers in place, with a promise, or throws. Off the hit path. */
async function attempt<T> (call: () => MaybePromise<T>): Promise<T> {
  return await new Promise<T>((resolve) => { resolve(call()) })
}

/** Fresh, or (for one revalidated before every use) revalidated by another process since `since`. */
const isFresh = (entry: CacheEntry | undefined, since: number): entry is CacheEntry =>
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

/**
 * Across processes sharing Redis: the leader of this process runs the handler only if it takes the
 * key's lock or waited for another process's entry in vain (see oneRunPerKey). Answers the entry
 * another process stored meanwhile (the request is then no longer its key's leader, and this
 * process's waiters get it too), or undefined with the lock, if taken, on the request's state.
 */
export async function lockOrWait ({ store, options, inFlight }: HookContext, state: KeyedState): Promise<CacheEntry | undefined> {
  const { key } = state
  const since = Date.now()
  const readFresh = async (): Promise<CacheEntry | undefined> => {
    const entry = await attempt(() => store.get(key))
    return isFresh(entry, since) ? entry : undefined
  }
  // A lookup of another request of this process may take the lock meanwhile: it is this leader's.
  const { token, fresh } = await oneRunPerKey(store, key, options.coalesceTimeoutMs, readFresh, () => store.takeToken(key))
  if (fresh !== undefined) {
    state.leader = false
    inFlight.settle(key, fresh)
    return fresh
  }
  state.lockToken = token
  return undefined
}

/** Lets go of the cross-process lock a request holds, if any. */
export function release (store: GuardedStore, state: KeyedState): void {
  if (state.lockToken === undefined) return
  store.unlock(state.key, state.lockToken)
  state.lockToken = undefined
}

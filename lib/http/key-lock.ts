import type { CacheEntry } from '../entry.js'
import { attempt, isFresh, oneRunPerKey } from '../coalescing/cross-process.js'
import type { GuardedStore } from '../stores/guard.js'
import type { HookContext, KeyedState } from './request-state.js'

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

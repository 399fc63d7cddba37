import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { HookContext, RequestState, RouteState } from './hooks.js'
import { sendEntry } from './respond.js'
import type { CacheEntry } from '../entry.js'
import type { MaybePromise } from '../stores/store.js'

/** How often a process waiting on another process's lock looks for its entry. */
export const LOCK_POLL_MS = 25

/** A store call as a promise, whether it answers in place, with a promise, or throws. Off the hit path. */
async function attempt<T> (call: () => MaybePromise<T>): Promise<T> {
  return await new Promise<T>((resolve) => { resolve(call()) })
}

const isFresh = (entry: CacheEntry | undefined): entry is CacheEntry => entry !== undefined && Date.now() - entry.storedAt < entry.ttl * 1000

/** Coalescing across processes that share a store with locks (Redis). */
export function crossProcess ({ store, options, inFlight }: HookContext): {
  lockOrWait: (route: RouteState, state: RequestState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
  release: (state: RequestState) => void
} {
  /**
   * Across processes sharing Redis: the leader of this process takes a short lock for the key. If
   * another process holds it, this one polls the store for that process's entry, for at most
   * coalesceTimeout, then runs the handler itself.
   */
  function lockOrWait (route: RouteState, state: RequestState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const key = state.key as string
    const runHandler = (): void => {
      route.counters.misses++
      done()
    }
    const deadline = Date.now() + options.coalesceTimeoutMs
    const serve = (entry: CacheEntry): void => {
      route.counters.hits++
      state.status = 'HIT'
      state.leader = false
      inFlight.settle(key, entry)
      state.served = sendEntry(request, reply, entry, Date.now(), 'HIT')
    }
    const poll = (): void => {
      setTimeout(() => {
        attempt(() => store.get(key)).then((entry) => {
          if (isFresh(entry)) serve(entry)
          else if ((state.lockToken = store.takeToken(key)) !== undefined || Date.now() >= deadline) {
            // A lookup of another request of this process took the lock meanwhile: it is this leader's.
            runHandler()
          } else poll()
        }, runHandler)
      }, LOCK_POLL_MS)
    }
    attempt(() => store.lock(key, options.coalesceTimeoutMs)).then((token) => {
      if (token === undefined) {
        poll()
        return
      }
      // The holder seen by the lookup may have written its entry and let go since: look once more.
      attempt(() => store.get(key)).then((entry) => {
        if (!isFresh(entry)) {
          state.lockToken = token
          runHandler()
          return
        }
        store.unlock(key, token)
        serve(entry)
      }, () => {
        state.lockToken = token
        runHandler()
      })
    }, runHandler)
  }

  function release (state: RequestState): void {
    if (state.lockToken === undefined) return
    store.unlock(state.key as string, state.lockToken)
    state.lockToken = undefined
  }

  return { lockOrWait, release }
}

import type { FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify'
import { kRequestState, tagsOf } from './request-state.js'
import { rawPath, tenantOf, tenantSegment } from '../key.js'
import type { FromRequest, ResolvedOptions } from '../options.js'
import type { RouteCounters } from '../observability/stats.js'
import { isPromise } from '../promise.js'
import { dropTags, type GuardedStore } from '../stores/guard.js'
import type { MaybePromise } from '../stores/store.js'
import { pathGroup, selectorTags } from '../tags.js'

/**
 * Methods known to be safe: RFC 9110 section 9.2.1 (GET, HEAD, OPTIONS, TRACE), QUERY, and the WebDAV
 * methods the IANA method registry marks safe (PROPFIND, REPORT, SEARCH). Every other method, custom
 * ones added with `app.addHttpMethod` included, may change the resource (RFC 9111 section 4.4).
 */
export const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'QUERY', 'PROPFIND', 'REPORT', 'SEARCH'])

export const isUnsafe = (method: string): boolean => !SAFE_METHODS.has(method)

export interface InvalidationContext {
  store: GuardedStore
  options: ResolvedOptions
  /** True once any route caches GET answers: until then there is nothing for a write to drop. */
  cachesGet: () => boolean
  /** Waits for response writes still on their way to the store (InFlight.flush). */
  flush: () => Promise<void> | undefined
}

/** The paths a write changes: its own, and its `location` and `content-location` on the same host. */
function changedPaths (request: FastifyRequest, reply: FastifyReply): string[] {
  const host = request.host
  const groups = [pathGroup(host, rawPath(request.url))]
  for (const name of ['location', 'content-location']) {
    const value = reply.getHeader(name)
    if (typeof value !== 'string') continue
    try {
      // Compared as URLs, so that a default port written out or left out makes no difference.
      const base = new URL(`${request.protocol}://${host}`)
      const target = new URL(value, base)
      if (target.host === base.host) groups.push(pathGroup(host, target.pathname))
    } catch {}
  }
  return groups
}

/** The request's tenant segment; a tenant function that throws or answers no tenant id drops entries of every tenant. */
function tenantOfRequest (options: ResolvedOptions, request: FastifyRequest): string {
  try {
    return tenantSegment(tenantOf(options, request))
  } catch {
    return '-'
  }
}

/**
 * After an answer that the handler produced: a 2xx drops the route's `invalidate` tags; a 2xx or 3xx
 * (a non-error answer, RFC 9111 section 4.4) to a method not known to be safe drops the GET entries
 * of the same path, within the request's tenant. The answer waits for it (bounded by `timeout`), so
 * the client's next read sees the change.
 */
export function invalidateOnSend (ctx: InvalidationContext, routeId: string, invalidate: FromRequest<string[]> | undefined, counters: RouteCounters): onSendHookHandler {
  const { store, options } = ctx
  return function responseCacheInvalidate (request, reply, payload, done) {
    const state = request[kRequestState]
    const status = reply.statusCode
    if (status < 200 || status >= 400 || state?.status === 'HIT' || state?.status === 'STALE') {
      done(null, payload)
      return
    }
    let tags: readonly string[] = []
    try {
      if (status < 300) tags = tagsOf(invalidate, request)
    } catch (error) {
      request.log.warn({ err: error, responseCache: { route: routeId } }, 'response cache invalidate function threw')
    }
    const groups = isUnsafe(request.method) && ctx.cachesGet() ? changedPaths(request, reply) : []
    const selected = selectorTags({ tags, groups, tenant: tenantOfRequest(options, request) })
    if (selected.length === 0) {
      done(null, payload)
      return
    }
    const finish = (dropped: number): void => {
      request.log.debug({ responseCache: { route: routeId, dropped } }, 'response cache: invalidated after a write')
      done(null, payload)
    }
    const failed = (): void => {
      counters.errors++
      done(null, payload)
    }
    let result: MaybePromise<number>
    try {
      result = dropTags(store, ctx.flush, selected)
    } catch {
      failed()
      return
    }
    if (isPromise(result)) result.then(finish, failed)
    else finish(result)
  }
}

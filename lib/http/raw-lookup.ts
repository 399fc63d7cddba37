import type { FastifyRequest, preParsingHookHandler } from 'fastify'
import { kRawBodyKey, kRequestState, type KeyedState, type RouteState, type StateFor } from './request-state.js'
import { rawBodyKey } from '../key.js'
import type { ResolvedOptions } from '../options.js'
import { clientAsksNoCache, requestBypassReason } from '../rules/storability.js'
import { readBody, type PayloadStream, type RawKeyMemo } from './raw-body.js'
import { ownHook, type LookupPlan } from './lookup-stage.js'
import type { Refresher } from '../coalescing/refresh.js'

export interface RawLookupContext {
  options: ResolvedOptions
  refresher: Refresher
  rawKeys: RawKeyMemo
  lookupKey: (state: KeyedState) => void
  planOf: (route: RouteState, request: FastifyRequest) => LookupPlan
}

/**
 * A preParsing hook for routes keyed by their body: reads the body (up to the route's raw-body
 * limit), and when these exact bytes, with every other key part, were seen before and led to an
 * entry, looks that entry up at once: a hit is answered without parsing, validation or the handler.
 * Otherwise Fastify gets the same bytes to parse, and the lookup after parsing runs as before.
 * Only for a route with no preValidation or preHandler hook (but the cache's): those must run first.
 */
export function rawLookup (ctx: RawLookupContext, stateFor: StateFor): preParsingHookHandler {
  const { options, refresher, rawKeys, lookupKey, planOf } = ctx
  return ownHook(function responseCacheRawLookup (request, reply, payload: PayloadStream, done) {
    const route = stateFor(request)
    // Requests that bypass, refreshes and client no-cache requests take the lookup after parsing.
    if (route === undefined || !planOf(route, request).raw || requestBypassReason(route.options, request, true) !== undefined ||
        refresher.isRefresh(request) || (options.honorClientNoCache && clientAsksNoCache(request))) {
      done(null, payload)
      return
    }
    const declared = request.headers['content-length']
    // Fastify answers a declared length over its limit without reading: so do we.
    if (declared !== undefined && Number(declared) > route.rawBodyLimit) {
      done(null, payload)
      return
    }
    readBody(payload, route.rawBodyLimit, ({ chunks, payload: replay }) => {
      // Past the limit, or a read error, or a length that Fastify will refuse: as without the cache.
      if (chunks === undefined || (declared !== undefined && Number(declared) !== byteLength(chunks))) {
        done(null, replay())
        return
      }
      let rawKey: string
      try {
        rawKey = rawBodyKey(route.keySource, request, chunks)
      } catch {
        // A tenant or key function that throws: the lookup after parsing says so and bypasses.
        done(null, replay())
        return
      }
      const key = rawKeys.get(rawKey)
      if (key === undefined) {
        request[kRawBodyKey] = rawKey
        done(null, replay())
        return
      }
      const state: KeyedState = { route, status: 'MISS', key, request, reply, done: () => { done(null, replay()) }, leader: false, stale: undefined, rawBody: chunks }
      request[kRequestState] = state
      lookupKey(state)
    })
  })
}

function byteLength (chunks: readonly Buffer[]): number {
  let length = 0
  for (const chunk of chunks) length += chunk.length
  return length
}

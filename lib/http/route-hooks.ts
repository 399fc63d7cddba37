import type { FastifyRequest, RouteOptions } from 'fastify'
import { routeSegment } from '../key.js'
import type { ResolvedOptions, ResolvedRouteOptions } from '../options.js'
import type { Stats } from '../observability/stats.js'
import { BODYLESS_METHODS, CACHEABLE_METHODS } from '../rules/storability.js'
import type { createHooks } from './hooks.js'
import type { Stage } from './lookup-stage.js'
import { rawLookup, type RawLookupContext } from './raw-lookup.js'
import type { RouteState } from './request-state.js'
import { storeKind } from '../observability/tracing.js'
import { yieldCompression } from './compression.js'

// What the plugin adds to each route it caches, when the route is added (onRoute): one state per
// cacheable method, and the lookup and store hooks after the route's own.

/** Where GET and HEAD may be looked up: before anything is parsed, unless a hook of the route says otherwise. */
const BODYLESS_LOOKUPS: readonly Stage[] = ['onRequest', 'preValidation', 'preHandler']
/** Where a route keyed by its parsed body may be looked up (the raw bytes are looked up in preParsing). */
const BODY_LOOKUPS: readonly Stage[] = ['preValidation', 'preHandler']

/** Fastify's own default bodyLimit. */
const DEFAULT_BODY_LIMIT = 1_048_576

type HookName = 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler' | 'onSend'

/** Adds a route-level hook after the route's own: only cached routes pay for the cache. */
export function addRouteHook (routeOptions: RouteOptions, name: HookName, hook: unknown): void {
  const hooks = routeOptions as unknown as Record<HookName, unknown>
  const existing = hooks[name]
  hooks[name] = existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook]
}

/** What the hooks of every cached route of one plugin instance share. */
export interface RouteWiring {
  options: ResolvedOptions
  stats: Stats
  hooks: ReturnType<typeof createHooks>
  raw: RawLookupContext
  /** The app's bodyLimit, which a route's own overrides. */
  bodyLimit: number | undefined
}

/** The state of one method of a cached route. */
function routeState (wiring: RouteWiring, routeOptions: RouteOptions, method: string, resolved: ResolvedRouteOptions): RouteState {
  const { options } = wiring
  const id = `${method} ${routeOptions.url}`
  const keyedByBody = !BODYLESS_METHODS.has(method)
  return {
    id,
    entryRoute: method === 'HEAD' ? `GET ${routeOptions.url}` : id,
    options: resolved,
    keySource: {
      namespace: options.namespace,
      // HEAD is answered from the GET entry.
      route: routeSegment(method === 'HEAD' ? 'GET' : method, routeOptions.url),
      vary: resolved.vary,
      tenant: options.tenant,
      key: resolved.key,
      memo: keyedByBody || resolved.vary.length > 0 || options.tenant !== undefined || resolved.key !== undefined ? undefined : new Map()
    },
    counters: wiring.stats.forRoute(id),
    withBody: keyedByBody,
    readOnly: method === 'HEAD',
    // Within Fastify's limit for the route, which then answers 413 for longer bodies as it would.
    rawBodyLimit: Math.min(routeOptions.bodyLimit ?? wiring.bodyLimit ?? DEFAULT_BODY_LIMIT, options.maxEntryBytes),
    lookups: keyedByBody ? BODY_LOOKUPS : BODYLESS_LOOKUPS,
    plan: undefined,
    warned: new Set(),
    storeKind: storeKind(options.store)
  }
}

/**
 * Adds the cache's hooks to a route; answers the states of its cacheable methods (none when it has
 * none: GET, HEAD, POST and QUERY are cached).
 */
export function cacheRoute (wiring: RouteWiring, routeOptions: RouteOptions, methods: readonly string[], resolved: ResolvedRouteOptions): RouteState[] {
  const { hooks } = wiring
  const bodyless: Record<string, RouteState> = {}
  const withBody: Record<string, RouteState> = {}
  for (const method of methods) {
    if (!CACHEABLE_METHODS.has(method)) continue
    const state = routeState(wiring, routeOptions, method, resolved)
    if (state.withBody) withBody[method] = state
    else bodyless[method] = state
  }
  const any = { ...bodyless, ...withBody }
  const states = Object.values(any)
  if (states.length === 0) return states
  const stateFor = (byMethod: Record<string, RouteState>) => (request: FastifyRequest): RouteState | undefined => byMethod[request.method]

  // A lookup hook in each stage the route may be looked up in, after the route's own hooks; the
  // route's first request says which of them looks up (lookup-stage.ts).
  if (Object.keys(bodyless).length > 0) {
    for (const stage of BODYLESS_LOOKUPS) addRouteHook(routeOptions, stage, hooks.lookup(stateFor(bodyless), stage))
  }
  if (Object.keys(withBody).length > 0) {
    // Bodies seen before are looked up from their bytes; others once parsed, then remembered.
    addRouteHook(routeOptions, 'preParsing', rawLookup(wiring.raw, stateFor(withBody)))
    for (const stage of BODY_LOOKUPS) addRouteHook(routeOptions, stage, hooks.lookup(stateFor(withBody), stage))
  }
  if (resolved.ttl === 'origin') addRouteHook(routeOptions, 'preHandler', hooks.conditions)
  // Last, so that what is stored is the payload the client gets after the route's own onSend hooks.
  addRouteHook(routeOptions, 'onSend', hooks.storeOnSend(stateFor(any)))
  // First, before @fastify/compress's, whichever was registered first (http/compression.ts).
  if (resolved.compress !== undefined) {
    const onSend = (routeOptions as { onSend: unknown[] }).onSend
    onSend.unshift(yieldCompression)
  }
  return states
}

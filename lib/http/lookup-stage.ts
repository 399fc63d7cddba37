import type { FastifyRequest } from 'fastify'

// Where a cached route is looked up: after every hook that runs before the handler and could refuse
// the request (auth, tenant resolution, a hook that edits the body), app-level and route-level alike.
// A hook can only be seen in the route's context, which Fastify builds once every plugin has loaded,
// so the stage is worked out from the first request of the route, and kept.

/** The request hooks that run before the handler, in order. */
export const STAGES = ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const
export type Stage = typeof STAGES[number]

/** Where a route is looked up; `none` when a hook of another plugin runs after the last lookup the cache can make. */
export interface LookupPlan {
  /** The stage of the lookup (from the parsed body, for routes keyed by their body). */
  stage: Stage | 'none'
  /** Routes keyed by their body: whether a body seen before is looked up from its raw bytes in preParsing. */
  raw: boolean
}

/**
 * The name every hook of the plugin carries: Fastify binds hooks to their instance, so a bound copy
 * is named `bound <name>`. No function declaration can have this name (it holds spaces and a hyphen).
 */
const OWN_HOOK = 'fastify-response-cache hook'

/** Names a hook as the plugin's own, so that it does not count as a guard that must run first. */
export function ownHook<T extends (...args: never[]) => unknown> (hook: T): T {
  Object.defineProperty(hook, 'name', { value: OWN_HOOK })
  return hook
}

const isOwn = (hook: { name?: string }): boolean => hook.name === OWN_HOOK || hook.name === 'bound ' + OWN_HOOK

type RouteHooks = Partial<Record<Stage, ReadonlyArray<{ name?: string }> | null>>

let kRouteContext: symbol | null | undefined

/** The hooks Fastify runs for the request's route (its route context), or undefined where they cannot be read. */
function routeHooks (request: FastifyRequest): RouteHooks | undefined {
  kRouteContext ??= Object.getOwnPropertySymbols(request).find((symbol) => symbol.description === 'fastify.context') ?? null
  if (kRouteContext === null) return undefined
  const context = (request as unknown as Record<symbol, RouteHooks | undefined>)[kRouteContext]
  return typeof context === 'object' && context !== null ? context : undefined
}

/**
 * The plan for a route, given where the cache has lookup hooks (`lookups`, in stage order): the first
 * of them that runs after every other hook. A stage whose foreign hooks all come before the cache's
 * own can hold the lookup (the cache adds its hooks last); one with a foreign hook after the cache's
 * cannot. Where the hooks cannot be read, the last stage: the safe one.
 */
export function lookupPlan (request: FastifyRequest, lookups: readonly Stage[], withBody: boolean): LookupPlan {
  const hooks = routeHooks(request)
  if (hooks === undefined) return { stage: 'preHandler', raw: false }
  // The earliest stage the lookup may run in: a stage's foreign hooks run before the cache's own
  // hook of that stage, if it has one after them, or else before the next stage.
  let earliest = 0
  STAGES.forEach((stage, index) => {
    let foreign = false
    let ownAfter = false
    for (const hook of hooks[stage] ?? []) {
      if (isOwn(hook)) ownAfter = true
      else {
        foreign = true
        ownAfter = false
      }
    }
    if (foreign) earliest = Math.max(earliest, ownAfter ? index : index + 1)
  })
  const stage = lookups.find((candidate) => STAGES.indexOf(candidate) >= earliest) ?? 'none'
  // The raw-bytes lookup of preParsing answers before preValidation and preHandler hooks run.
  return { stage, raw: withBody && earliest <= STAGES.indexOf('preParsing') }
}

import createError from '@fastify/error'

/** A plugin option failed validation: the message names the option and what was wrong. */
export const FST_RESPONSE_CACHE_INVALID_OPTION = createError<'FST_RESPONSE_CACHE_INVALID_OPTION', [string, string]>(
  'FST_RESPONSE_CACHE_INVALID_OPTION',
  'fastify-response-cache: invalid option "%s": %s',
  500,
  TypeError
)

/** A route's `config.cache` failed validation: the message names the route, the field and what was wrong. */
export const FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG = createError<'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG', [string, string, string]>(
  'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG',
  'fastify-response-cache: invalid config.cache on route "%s": "%s" %s',
  500,
  TypeError
)

/** A custom store object lacks a method the plugin calls. */
export const FST_RESPONSE_CACHE_INVALID_STORE = createError<'FST_RESPONSE_CACHE_INVALID_STORE', [string]>(
  'FST_RESPONSE_CACHE_INVALID_STORE',
  'fastify-response-cache: invalid option "store": a custom store must have a %s() method',
  500,
  TypeError
)

/** `store: 'redis'` without a client to use. */
export const FST_RESPONSE_CACHE_NO_REDIS_CLIENT = createError<'FST_RESPONSE_CACHE_NO_REDIS_CLIENT', [string]>(
  'FST_RESPONSE_CACHE_NO_REDIS_CLIENT',
  'fastify-response-cache: invalid option "redis": %s',
  500,
  TypeError
)

/** The store is not answering (Redis down, or the circuit breaker is open); never sent to a client. */
export const FST_RESPONSE_CACHE_STORE_UNAVAILABLE = createError<'FST_RESPONSE_CACHE_STORE_UNAVAILABLE', [string, string]>(
  'FST_RESPONSE_CACHE_STORE_UNAVAILABLE',
  'fastify-response-cache: the %s store is unavailable: %s',
  500
)

/** A store call took longer than `timeout` milliseconds. */
export const FST_RESPONSE_CACHE_STORE_TIMEOUT = createError<'FST_RESPONSE_CACHE_STORE_TIMEOUT', [string, number]>(
  'FST_RESPONSE_CACHE_STORE_TIMEOUT',
  'fastify-response-cache: store %s() took longer than %dms',
  500
)

/** `app.cache.set` or `wrap` was given a value that cannot be stored as it is. */
export const FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE = createError<'FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE', [string, string]>(
  'FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE',
  'fastify-response-cache: cannot cache %s: it holds %s',
  500,
  TypeError
)

/** An `app.cache` method was called with a wrong argument: the message names it. */
export const FST_RESPONSE_CACHE_INVALID_ARGUMENT = createError<'FST_RESPONSE_CACHE_INVALID_ARGUMENT', [string, string]>(
  'FST_RESPONSE_CACHE_INVALID_ARGUMENT',
  'fastify-response-cache: invalid argument "%s": %s',
  500,
  TypeError
)

/**
 * `wrap`'s function had not answered within the call's `hardTimeout` (milliseconds) and no stale value
 * was at hand; it goes on in the background. The key is never in the message.
 */
export const FST_RESPONSE_CACHE_WRAP_TIMEOUT = createError<'FST_RESPONSE_CACHE_WRAP_TIMEOUT', [number]>(
  'FST_RESPONSE_CACHE_WRAP_TIMEOUT',
  'fastify-response-cache: the wrap function did not answer within its hardTimeout of %dms',
  504
)

/** An `app.cache` method needs something the store does not offer (a custom store without `list`). */
export const FST_RESPONSE_CACHE_NOT_SUPPORTED = createError<'FST_RESPONSE_CACHE_NOT_SUPPORTED', [string, string]>(
  'FST_RESPONSE_CACHE_NOT_SUPPORTED',
  'fastify-response-cache: the %s store has no %s() method',
  500,
  TypeError
)

/** Keys remembered by ReportedKeys at most: past this many, bad values are no longer logged. */
const MAX_REPORTED_KEYS = 1000

/** Keys whose bad value was logged already: a corrupt entry is logged once, not on every read. */
export class ReportedKeys {
  readonly #keys = new Set<string>()

  /** True the first time `key` is reported (while fewer than 1,000 keys are remembered). */
  first (key: string): boolean {
    if (this.#keys.has(key) || this.#keys.size >= MAX_REPORTED_KEYS) return false
    this.#keys.add(key)
    return true
  }
}

/** Hides the user:password part of any URL in a text, so credentials never reach logs or errors. */
export function redactCredentials (text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s]*@/gi, '$1***@')
}

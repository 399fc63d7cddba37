import type { IncomingHttpHeaders } from 'node:http'
import type { FieldValue } from './lists.js'

// What the HTTP rules read of a request, a response and a route: Fastify's request and reply, and the
// plugin's resolved route options, have these shapes, so callers pass them as they are and the rules
// know nothing of Fastify.

/** A request as the rules read it. */
export interface RequestView {
  method: string
  headers: IncomingHttpHeaders
}

/** A response on its way out, as the rules read it. */
export interface ResponseView {
  statusCode: number
  getHeader (name: string): FieldValue
  hasHeader (name: string): boolean
  getHeaders (): Record<string, FieldValue>
  /** Milliseconds since the request reached the server. */
  elapsedTime: number
  request: { headers: IncomingHttpHeaders }
}

/** A route's settings the rules apply. */
export interface RouteRules {
  /** Seconds, or `'origin'`: what the response's own headers say (RFC 9111). */
  ttl: number | 'origin'
  heuristicMaxTtl: number | undefined
  keepForRevalidation: number
  staleWhileRevalidate: number
  staleIfError: number
  /** Request headers the key holds, lower case. */
  vary: readonly string[]
  statusCodes: ReadonlySet<number>
  ignoreCookies: boolean
}

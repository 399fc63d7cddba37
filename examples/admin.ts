import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * An `onRequest` guard for the operations routes: `authorization: Bearer <token>`. Without a token
 * (unset or empty) it warns once, now, and every guarded route answers 401.
 */
export function adminGuard (token: string | undefined, log: FastifyBaseLogger, variable = 'ADMIN_TOKEN'): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  if (token === undefined || token === '') {
    log.warn(`${variable} is not set: the operations routes (/cache/...) answer 401 until it is`)
  }
  const expected = token === undefined || token === '' ? undefined : digest(token)
  return async (request, reply) => {
    const given = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
    // Digests of equal length, so the comparison takes the same time whatever was sent.
    if (expected === undefined || given === undefined || !timingSafeEqual(digest(given), expected)) {
      await reply.code(401).send({ error: expected === undefined ? `set ${variable} to use this route` : 'a valid bearer token is required' })
    }
  }
}

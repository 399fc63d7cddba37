import type { FastifyReply } from 'fastify'
import type { ResolvedSurrogateKeys } from '../options.js'
import { SURROGATE_KEY_HEADERS, surrogateKeys } from '../rules/surrogate-keys.js'
import { kReplyTags } from './request-state.js'

/**
 * `surrogateKeys`: the keys the response's `Surrogate-Key` and `Cache-Tag` headers name join the
 * handler's `reply.cacheTags()` (bounded with them, hashed into store keys like them), and the headers
 * leave the response before it is sent or stored, unless kept: they are for this cache, not the client.
 */
export function takeSurrogateKeys (reply: FastifyReply, option: NonNullable<ResolvedSurrogateKeys>): void {
  const keys = surrogateKeys((name) => reply.getHeader(name))
  if (keys.length > 0) (reply[kReplyTags] ??= []).push(...keys)
  if (!option.keep) for (const name of SURROGATE_KEY_HEADERS) reply.removeHeader(name)
}

import type { FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify'
import { encodeBody, type CompressionSettings } from '../compression/encode.js'
import type { CacheEntry, EncodedBodies, Encoding } from '../entry.js'
import { chooseEncoding, compressible, encodedEtag, varyWithAcceptEncoding } from '../rules/encoding.js'
import { payloadBytes } from './payload.js'
import { kRequestState } from './request-state.js'
import { isNodeStream } from './stream-store.js'

// Compression the cache owns (docs/API.md "Compression"): the encodings of a response are made once,
// on the miss, stored with it, and every hit sends the one its request prefers.

/** A buffered answer and its encodings, to be stored together. */
export interface Compressed { body: Buffer, encoded: EncodedBodies }

/**
 * On a miss: the handler's bytes (a copy of the cache's own) and their encodings, or undefined when
 * the route does not compress or the response does not qualify (too small, not compressible, already
 * encoded, `no-transform`). A promise when the body goes to zlib's thread pool.
 */
export function compressMiss (settings: CompressionSettings | undefined, reply: FastifyReply, payload: unknown): Compressed | Promise<Compressed> | undefined {
  if (settings === undefined || settings.encodings.length === 0 || reply.statusCode === 206) return undefined
  const body = payloadBytes(payload)
  if (body === undefined || body.length < settings.threshold || !compressible((name) => reply.getHeader(name))) return undefined
  const encoded = encodeBody(body, settings)
  return encoded instanceof Promise ? encoded.then((made) => ({ body, encoded: made })) : { body, encoded }
}

/**
 * The miss's own answer once stored (or not): the encoding its request prefers, with `vary` and the
 * encoding's etag, or the identity bytes. Answers the payload to send.
 */
export function answerEncoded (request: FastifyRequest, reply: FastifyReply, { body, encoded }: Compressed): Buffer {
  reply.header('vary', varyWithAcceptEncoding(reply.getHeader('vary') as string | string[] | undefined))
  const encoding = chooseEncoding(request.headers['accept-encoding'], encoded)
  if (encoding === undefined) return body
  reply.header('content-encoding', encoding)
  const etag = reply.getHeader('etag')
  if (typeof etag === 'string') reply.header('etag', encodedEtag(etag, encoding))
  return encoded[encoding] as Buffer
}

/** The encoding of an entry a hit sends, or undefined for its identity bytes. */
export function hitEncoding (request: FastifyRequest, entry: CacheEntry): Encoding | undefined {
  return entry.encoded === undefined ? undefined : chooseEncoding(request.headers['accept-encoding'], entry.encoded)
}

/**
 * Sets what an entry with encodings adds to its stored headers on a hit: `vary: accept-encoding`,
 * and for an encoding its `content-encoding` (not on a 304) and etag.
 */
export function encodingHeaders (reply: FastifyReply, entry: CacheEntry, encoding: Encoding | undefined, notModified = false): void {
  reply.header('vary', varyWithAcceptEncoding(entry.headers.vary))
  if (encoding === undefined) return
  // A 304 carries the validator and Vary, not the coding of a body it does not have.
  if (!notModified) reply.header('content-encoding', encoding)
  reply.header('etag', encodedEtag(entry.etag, encoding))
}

/**
 * First among a cached route's onSend hooks: @fastify/compress (registered before or after the
 * plugin) leaves the answers of keyed requests to the cache, which stores the identity bytes and
 * sends the encodings itself. It honours `x-no-compression`, a request header set here only after the
 * handler has run. A streamed answer is left to it: the cache stores streams as they are.
 */
export const yieldCompression: onSendHookHandler = function responseCacheOwnsCompression (request, reply, payload, done) {
  const state = request[kRequestState]
  if (state !== null && state.status !== 'BYPASS' && 'compress' in reply && !isNodeStream(payload)) request.headers['x-no-compression'] = '1'
  done(null, payload)
}

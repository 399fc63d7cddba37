import { LRUCache } from 'lru-cache'
import { Readable } from 'node:stream'

/** Raw-body keys remembered per plugin instance, least recently used dropped first. */
export const RAW_KEY_MEMO_SIZE = 10_000

/**
 * Which raw request bytes (with every other key part) led to which entry key, learnt from requests
 * whose body was parsed and whose key found or stored an entry. A body seen before is looked up from
 * its bytes, before Fastify parses it; any other body (another key order, other whitespace) is parsed
 * and keyed as usual, and then remembered too. lru-cache rather than a Map re-inserted on every
 * read: measured, the re-insertion cost 2.4% of a 2 KB POST hit.
 */
export class RawKeyMemo {
  readonly #keys: LRUCache<string, string>

  constructor (size = RAW_KEY_MEMO_SIZE) {
    this.#keys = new LRUCache({ max: size })
  }

  get (rawKey: string): string | undefined {
    return this.#keys.get(rawKey)
  }

  remember (rawKey: string, key: string): void {
    this.#keys.set(rawKey, key)
  }
}

/** A request payload stream; a decompressing preParsing stream may say how many bytes it was sent. */
export type PayloadStream = Readable & { receivedEncodedLength?: number }

/** What reading a body up to a limit gave. */
export interface BodyRead {
  /** The whole body, when it was read within the limit; undefined past it or after an error. */
  chunks: Buffer[] | undefined
  /** The stream to hand to Fastify: the same bytes (or the same error) as the source would have given. */
  payload: () => PayloadStream
}

/**
 * Reads a request body, stopping past `limit` bytes: then the bytes read are put back into the source,
 * which Fastify reads as if nothing had (its own bodyLimit check answers 413 as it would, and what it
 * does not read is discarded as it would be). An error is handed on as the error of the stream given
 * back, for Fastify to answer as it would.
 */
export function readBody (source: PayloadStream, limit: number, callback: (read: BodyRead) => void): void {
  const chunks: Buffer[] = []
  let length = 0
  const stop = (): void => {
    source.removeListener('data', onData)
    source.removeListener('end', onEnd)
    source.removeListener('error', onError)
  }
  const onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    chunks.push(bytes)
    length += bytes.length
    if (length > limit) {
      stop()
      source.pause()
      source.unshift(Buffer.concat(chunks, length))
      callback({ chunks: undefined, payload: () => source })
    }
  }
  const onEnd = (): void => {
    stop()
    callback({ chunks, payload: () => replay(source, chunks, undefined) })
  }
  const onError = (error: Error): void => {
    stop()
    callback({ chunks: undefined, payload: () => replay(source, chunks, error) })
  }
  source.on('data', onData)
  source.on('end', onEnd)
  source.on('error', onError)
}

/** A stream of bytes already read in full (or ending in the source's error). */
function replay (source: PayloadStream, chunks: Buffer[], error: Error | undefined): PayloadStream {
  const out: PayloadStream = new Readable({ read () {} })
  if (error !== undefined) {
    process.nextTick(() => { out.destroy(error) })
  } else {
    for (const chunk of chunks) out.push(chunk)
    out.push(null)
  }
  // Fastify compares the bytes a decompressing stream was sent with content-length.
  if (source.receivedEncodedLength !== undefined) out.receivedEncodedLength = source.receivedEncodedLength
  return out
}

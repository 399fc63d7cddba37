import zlib from 'node:zlib'
import type { EncodedBodies, Encoding } from '../entry.js'

// The encodings of an entry's body, made once when the entry is made (http/compression.ts).

type Compress = (body: Buffer, options: zlib.ZlibOptions | zlib.BrotliOptions, callback: (error: Error | null, result: Buffer) => void) => void
type CompressSync = (body: Buffer, options: zlib.ZlibOptions | zlib.BrotliOptions) => Buffer
const z = zlib as unknown as Record<string, Compress & CompressSync | undefined>

/** zstd where the runtime's zlib has it (Node 22.15 and 23.8 on; not Node 20). */
export const HAS_ZSTD = typeof z.zstdCompress === 'function'

/** How a plugin instance or route compresses, resolved (options.ts). */
export interface CompressionSettings {
  threshold: number
  encodings: readonly Encoding[]
  brotliQuality: number
  gzipLevel: number
}

/**
 * Bodies up to this size are compressed in place: brotli 4 and gzip 6 take about 0.25 ms together
 * for 8 KiB of JSON, not worth the thread-pool round trip. Larger ones go to zlib's thread pool, off
 * the event loop (0.8 and 0.5 ms for 60 KiB).
 */
export const SYNC_MAX_BYTES = 8 * 1024

function optionsOf (encoding: Encoding, settings: CompressionSettings, size: number): zlib.ZlibOptions | zlib.BrotliOptions {
  if (encoding === 'br') {
    return { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: settings.brotliQuality, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: size } }
  }
  return encoding === 'gzip' ? { level: settings.gzipLevel } : {}
}

const ASYNC = { br: 'brotliCompress', gzip: 'gzip', zstd: 'zstdCompress' } as const
const SYNC = { br: 'brotliCompressSync', gzip: 'gzipSync', zstd: 'zstdCompressSync' } as const

/**
 * The body in each of the settings' encodings that makes it smaller; synchronously for a small body,
 * else a promise. An encoding the runtime lacks is skipped.
 */
export function encodeBody (body: Buffer, settings: CompressionSettings): EncodedBodies | Promise<EncodedBodies> {
  const out: EncodedBodies = {}
  if (body.length <= SYNC_MAX_BYTES) {
    for (const encoding of settings.encodings) {
      const compress = z[SYNC[encoding]]
      if (compress === undefined) continue
      const encoded = compress(body, optionsOf(encoding, settings, body.length))
      if (encoded.length < body.length) out[encoding] = own(encoded)
    }
    return out
  }
  return Promise.all(settings.encodings.map(async (encoding) => {
    const compress = z[ASYNC[encoding]]
    if (compress === undefined) return
    const encoded = await new Promise<Buffer>((resolve, reject) => {
      compress(body, optionsOf(encoding, settings, body.length), (error, result) => { if (error === null) resolve(result); else reject(error) })
    })
    if (encoded.length < body.length) out[encoding] = own(encoded)
  })).then(() => out)
}

/** zlib may answer a slice of its larger output chunk: a cached body must not keep the rest alive. */
function own (encoded: Buffer): Buffer {
  if (encoded.buffer.byteLength <= encoded.length + 1024) return encoded
  const copy = Buffer.allocUnsafeSlow(encoded.length)
  encoded.copy(copy)
  return copy
}

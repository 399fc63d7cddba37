// Compression of Redis entries: node:zlib (gzip, brotli) against lz4-napi, on JSON bodies.
import lz4 from 'lz4-napi'
import zlib from 'node:zlib'
import { PRODUCT } from './servers/payload.js'

type Codec = [string, (b: Buffer) => Buffer, (b: Buffer) => Buffer]

const codecs: Codec[] = [
  ['gzip level 1', (b) => zlib.gzipSync(b, { level: 1 }), (b) => zlib.gunzipSync(b)],
  ['brotli quality 1', (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } }), (b) => zlib.brotliDecompressSync(b)],
  ['brotli quality 4', (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }), (b) => zlib.brotliDecompressSync(b)],
  ['lz4 (lz4-napi)', (b) => lz4.compressSync(b), (b) => lz4.uncompressSync(b)]
]

function microseconds (fn: () => unknown, iterations: number): number {
  const started = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) fn()
  return Number(process.hrtime.bigint() - started) / iterations / 1000
}

/** Markdown rows: codec, body size, compressed ratio, compress and decompress µs per call. */
export function measureCodecs (): string[] {
  const record = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ ...PRODUCT, id: i })))
  const rows = ['| codec | body | compressed to | compress µs | decompress µs |', '| --- | ---: | ---: | ---: | ---: |']
  for (const size of [2048, 16_384, 102_400]) {
    const body = Buffer.from(record.slice(0, size))
    for (const [name, compress, decompress] of codecs) {
      const packed = compress(body)
      const n = size > 50_000 ? 200 : 2000
      rows.push(`| ${name} | ${size / 1024} KiB | ${(100 * packed.length / size).toFixed(1)}% | ` +
        `${microseconds(() => compress(body), n).toFixed(1)} | ${microseconds(() => decompress(packed), n).toFixed(1)} |`)
    }
  }
  return rows
}

// Encryption at rest: what sealing (AES-256-GCM) adds to encoding an entry for Redis, and opening to
// decoding it. Imports lib/ rather than dist/ like store.ts: the keyring is not in a stale dist/ yet,
// and both sides of each ratio run the same way. `tsx bench/encryption.ts` prints the table alone.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { decodeEntry, encodeEntry, type CacheEntry } from '../lib/entry.js'
import { Keyring } from '../lib/stores/encryption.js'
import { entryOf } from './store.js'

const RUN_MS = 100
const RUNS = 5
const REDIS_KEY = 'rc:{0a}:-:GET:%2Fproducts%2F%3Aid:Ojz1IhRhaKlR4f4cTFJ2mCmHTQs2jKAbCdEfGhIjKlM'

/**
 * µs per call of each of `fns`: the best of RUNS runs of about RUN_MS each, after a warm-up. The
 * machine is shared, so the least disturbed run is the figure, and the runs of the calls compared
 * take turns, so a busy second on the machine does not fall on one side of a ratio only.
 */
function microseconds (fns: Array<() => unknown>): number[] {
  const best = fns.map(() => Infinity)
  for (let run = 0; run <= RUNS; run++) {
    fns.forEach((fn, n) => {
      let calls = 0
      const started = process.hrtime.bigint()
      const deadline = started + BigInt(RUN_MS * 1e6)
      let now = started
      while (now < deadline) {
        for (let i = 0; i < 16; i++) fn()
        calls += 16
        now = process.hrtime.bigint()
      }
      if (run > 0) best[n] = Math.min(best[n], Number(now - started) / calls / 1000)
    })
  }
  return best
}

/** Markdown rows: per body size, encode and decode alone against with sealing and opening. */
export function measureEncryption (): string[] {
  const ring = new Keyring({ keys: [{ id: 'bench-2026', key: Buffer.alloc(32, 7) }, { id: 'bench-2025', key: Buffer.alloc(32, 8) }] })
  const rows = [
    `Per call on one core, best of ${RUNS} interleaved runs of ${RUN_MS} ms; the entry is encoded as for Redis (lz4 from 1 KiB), then sealed`,
    'with AES-256-GCM under the Redis key as additional data (lib/stores/encryption.ts); reads open, then decode.',
    '',
    '| body | stored bytes | sealed bytes | encodeEntry µs | encode + seal µs | write ratio | decodeEntry µs | open + decode µs | read ratio |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
  ]
  // The JSON bodies compress (a 1 MiB one to 74 KB); random bytes do not, so the last row seals a whole MiB.
  const cases: Array<[string, CacheEntry]> = [
    ['1 KiB', entryOf(1024)],
    ['16 KiB', entryOf(16_384)],
    ['1 MiB', entryOf(1_048_576)],
    ['1 MiB random', { ...entryOf(1024), body: randomBytes(1_048_576) }]
  ]
  for (const [label, entry] of cases) {
    const plain = encodeEntry(entry)
    const sealed = ring.seal(plain, REDIS_KEY)
    if (!decodeEntry(ring.open(sealed, REDIS_KEY)).body.equals(entry.body)) throw new Error('seal and open do not round-trip')
    const [encode, encodeSeal, decode, openDecode] = microseconds([
      () => encodeEntry(entry),
      () => ring.seal(encodeEntry(entry), REDIS_KEY),
      () => decodeEntry(plain),
      () => decodeEntry(ring.open(sealed, REDIS_KEY))
    ])
    rows.push(`| ${label} | ${plain.length.toLocaleString('en')} | ${sealed.length.toLocaleString('en')} | ` +
      `${encode.toFixed(2)} | ${encodeSeal.toFixed(2)} | ${(encodeSeal / encode).toFixed(2)}x | ` +
      `${decode.toFixed(2)} | ${openDecode.toFixed(2)} | ${(openDecode / decode).toFixed(2)}x |`)
  }
  rows.push('', 'A sealed value is the stored entry plus 2 bytes, the key id, a 12-byte IV and a 16-byte tag.')
  return rows
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(measureEncryption().join('\n'))

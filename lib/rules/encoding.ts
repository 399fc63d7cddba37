import { ENCODINGS, type EncodedBodies, type Encoding, type HeaderValue } from '../entry.js'
import { parseCacheControl } from './directives.js'
import { fieldText } from './lists.js'

// Content codings the cache makes and serves itself (RFC 9110 sections 8.4 and 12.5.3): which a
// response may get, which one a request gets, and the validator of each.

export { ENCODINGS, type EncodedBodies, type Encoding }

/**
 * What @fastify/compress compresses by default (its `defaultCompressibleTypes`, without
 * octet-stream, which is as often already compressed), and the mime-db types it also compresses
 * that this does not cover: JavaScript, WebAssembly text is not among them.
 */
const COMPRESSIBLE = /^text\/(?!event-stream)|[+/](?:json|text|xml)(?:;|$)|^application\/(?:javascript|ecmascript|x-javascript|x-sh|x-httpd-php|manifest\+json|ld\+json)(?:;|$)|^image\/(?:svg\+xml|x-icon|vnd\.microsoft\.icon|bmp)(?:;|$)|^font\/(?:otf|ttf)(?:;|$)/

/**
 * Whether the cache may make encodings of a response: a compressible type, no content coding
 * already, no `no-transform` (RFC 9111 section 5.2.2.6). Fastify's own default type is JSON.
 */
export function compressible (header: (name: string) => HeaderValue | number | undefined): boolean {
  const encoding = header('content-encoding')
  if (encoding !== undefined && fieldText(encoding)?.trim().toLowerCase() !== 'identity') return false
  const type = header('content-type')
  if (!COMPRESSIBLE.test(type === undefined ? 'application/json' : (fieldText(type) ?? '').toLowerCase())) return false
  const cacheControl = header('cache-control')
  return cacheControl === undefined || !parseCacheControl(cacheControl).has('no-transform')
}

const Q_VALUE = /^q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/i

/**
 * The coding a request gets among those an entry holds (RFC 9110 section 12.5.3): the highest
 * q-value, the first of ENCODINGS on ties, identity when nothing else is preferred; `identity`
 * stays acceptable unless `identity;q=0` or `*;q=0` excludes it. No header: identity. When the
 * client accepts nothing the entry holds, identity still (the answer a server without the coding
 * would give). `held` is checked in ENCODINGS order.
 */
export function chooseEncoding (acceptEncoding: string | undefined, held: EncodedBodies): Encoding | undefined {
  if (acceptEncoding === undefined || acceptEncoding === '') return undefined
  let star: number | undefined
  let identity: number | undefined
  const q: Partial<Record<Encoding, number>> = {}
  for (const member of acceptEncoding.split(',')) {
    const parts = member.split(';')
    let coding = parts[0].trim().toLowerCase()
    if (coding === '') continue
    if (coding === 'x-gzip') coding = 'gzip'
    let weight = 1
    for (let i = 1; i < parts.length; i++) {
      const param = parts[i].trim()
      if (param[0] !== 'q' && param[0] !== 'Q') continue
      const match = Q_VALUE.exec(param)
      // An invalid weight makes the member unusable rather than preferred.
      weight = match === null ? 0 : Number(match[1])
    }
    if (coding === '*') star = weight
    else if (coding === 'identity') identity = weight
    else if (coding in held) q[coding as Encoding] = Math.max(q[coding as Encoding] ?? 0, weight)
  }
  let best: Encoding | undefined
  let bestQ = 0
  for (const encoding of ENCODINGS) {
    if (held[encoding] === undefined) continue
    const weight = q[encoding] ?? star ?? 0
    if (weight > bestQ) {
      best = encoding
      bestQ = weight
    }
  }
  // Identity wins only when the client prefers it outright; listed but tied, the smaller body goes.
  if (identity !== undefined && identity > bestQ) return undefined
  return best
}

/** The validator of an entry's encoding (RFC 9110 section 8.8.3): the identity one, suffixed inside its quotes. */
export function encodedEtag (etag: string, encoding: Encoding): string {
  return etag.endsWith('"') ? etag.slice(0, -1) + '-' + encoding + '"' : etag
}

/** `vary` with accept-encoding added, once: a constant when the response had none. */
export function varyWithAcceptEncoding (vary: HeaderValue | undefined): string {
  if (vary === undefined) return 'accept-encoding'
  const text = fieldText(vary) ?? ''
  return /(?:^|,)\s*(?:accept-encoding|\*)\s*(?:,|$)/i.test(text) ? text : text + ', accept-encoding'
}

import { hash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import stableStringify from 'safe-stable-stringify'

/**
 * Lone surrogates, which Node's UTF-8 encoder turns into U+FFFD (so two of them would hash alike),
 * and U+FFFD itself, which earlier releases hashed and encoded in their place: a string holding
 * either is hashed and encoded in a form of its own, so that no key made before can equal its key.
 */
const NOT_UTF8 = /[\uD800-\uDFFF\uFFFD]/u

/** Never a byte of UTF-8: the bytes of a string escaped below can equal no UTF-8 text. */
const ESCAPED = Buffer.from([0xFF])

/**
 * The bytes a string is hashed as, one string to one byte sequence: its UTF-8 (as before) when it
 * holds no lone surrogate and no U+FFFD, else 0xFF and the UTF-8 of its JSON text (JSON escapes lone
 * surrogates as `\udxxx`).
 */
function hashInput (value: string): string | Buffer {
  return NOT_UTF8.test(value) ? Buffer.concat([ESCAPED, Buffer.from(JSON.stringify(value))]) : value
}

/**
 * SHA-256 in base64url (43 characters), one-shot (crypto.hash, Node 20.12 and later). Distinct strings
 * hash apart, lone surrogates included (see hashInput).
 */
export const sha256 = (data: string | Buffer): string => hash('sha256', typeof data === 'string' ? hashInput(data) : data, 'base64url')

// With the u flag a match is a whole code point: a surrogate pair is one match, a lone surrogate too.
const UNSAFE = /[^A-Za-z0-9._-]/gu
const percent = (ch: string): string => {
  // Lone surrogates have no UTF-8, and U+FFFD is what older releases wrote for them (and for every
  // code point past U+FFFF): both get an escape that no byte escape can be mistaken for.
  if (NOT_UTF8.test(ch)) return '%u' + ch.charCodeAt(0).toString(16).toUpperCase()
  let out = ''
  for (const byte of Buffer.from(ch)) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0')
  return out
}

/**
 * Percent-encodes everything outside `[A-Za-z0-9._-]`, `%` included, so the result never holds a key
 * delimiter (`:`), a Redis glob character (`* ? [ ]`) or a Cluster hash tag brace, and two different
 * inputs never encode alike: each code point as the `%XX` of its UTF-8 bytes, except lone surrogates
 * and U+FFFD, which become `%uXXXX` (upper-case hex; `u` is never a hex digit).
 */
export function encodeSegment (value: string): string {
  return value.replace(UNSAFE, percent)
}

const ESCAPE = /%u([0-9A-F]{4})|(?:%[0-9A-F]{2})+/g

/** The string {@link encodeSegment} encoded. */
export function decodeSegment (encoded: string): string {
  return encoded.replace(ESCAPE, (run: string, unit: string | undefined) => unit !== undefined
    ? String.fromCharCode(parseInt(unit, 16))
    : Buffer.from(run.replaceAll('%', ''), 'hex').toString())
}

/** `-` for no tenant, else `t` and a hash: any tenant id, however long or odd, becomes 23 safe characters. */
export function tenantSegment (tenant: string | number | undefined): string {
  return tenant === undefined ? '-' : 't' + sha256(String(tenant)).slice(0, 22)
}

/** The fixed middle of a route's keys: method and route pattern, encoded. */
export function routeSegment (method: string, url: string): string {
  return method + ':' + encodeSegment(url)
}

export interface KeySource {
  namespace: string
  /** From {@link routeSegment}. */
  route: string
  vary: readonly string[]
  tenant: ((request: FastifyRequest) => string | number | undefined) | undefined
  key: ((request: FastifyRequest) => string | number | undefined) | undefined
  /**
   * Keys already worked out, by protocol, host and URL: set only where those decide the key alone
   * (no body, tenant, key function or vary), so a hot URL skips the JSON and the SHA-256.
   */
  memo?: Map<string, string>
}

/**
 * Between a resource's key and the digest of one of its variants (rules/variants.ts). No
 * key of requestKey or valueKey holds it: every part before the hash is encoded or a fixed name, and
 * the hash is base64url. The Redis store shards a variant by what comes before it.
 */
export const VARIANT_MARK = '|'

/** Keys a route remembers; past this many it starts again, so unique URLs cannot grow it. */
export const KEY_MEMO_SIZE = 1024

/** The URL up to `?`. */
export function rawPath (url: string): string {
  const mark = url.indexOf('?')
  return mark === -1 ? url : url.slice(0, mark)
}

/** The tenant segment of a key made by requestKey or valueKey. */
export function tenantOfKey (key: string, namespace: string): string {
  return key.slice(namespace.length + 1, key.indexOf(':', namespace.length + 1))
}

/** A tenant id or key part as the plugin takes it: a string, or a finite number (keyed as its string). */
export function isKeyPart (value: unknown): value is string | number {
  return typeof value === 'string' || Number.isFinite(value)
}

/**
 * The `tenant` or `key` function answered something that is neither a key part nor undefined (null,
 * an object, an array, a boolean, NaN): taking it as "no tenant" or as its `String()` would share one
 * entry between requests the app meant to keep apart, so the request bypasses the cache (`reason`).
 */
export class InvalidKeyPartError extends Error {
  readonly reason: 'tenant-invalid' | 'key-invalid'
  constructor (readonly option: 'tenant' | 'key', answer: unknown) {
    super(`the ${option} function answered ${describe(answer)}; expected a string, a finite number or undefined`)
    this.name = 'InvalidKeyPartError'
    this.reason = option === 'tenant' ? 'tenant-invalid' : 'key-invalid'
  }
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'number') return String(value)
  return typeof value === 'object' ? 'an object' : 'a ' + typeof value
}

/** What a tenant or key function answered, checked: a key part, or undefined for none. */
function keyPartOf (option: 'tenant' | 'key', answer: unknown): string | undefined {
  if (answer === undefined) return undefined
  if (!isKeyPart(answer)) throw new InvalidKeyPartError(option, answer)
  return String(answer)
}

/** What the tenant function says of a request; throws {@link InvalidKeyPartError} for what is no tenant id. */
export function tenantOf (source: Pick<KeySource, 'tenant'>, request: FastifyRequest): string | undefined {
  return source.tenant === undefined ? undefined : keyPartOf('tenant', source.tenant(request))
}

const reported = new WeakMap<KeySource, Set<string>>()

/** True the first time `what` is reported for this route's key source: a warning per route, not per request. */
export function firstReport (source: KeySource, what: string): boolean {
  let seen = reported.get(source)
  if (seen === undefined) reported.set(source, seen = new Set())
  if (seen.has(what)) return false
  seen.add(what)
  return true
}

/** The body as key material: a kind letter, then the text (the sorted JSON of a parsed object). */
function bodyPart (body: unknown): string {
  if (body === undefined) return 'n'
  if (Buffer.isBuffer(body)) return 'b' + sha256(body)
  if (typeof body === 'string') return 's' + body
  return 'j' + String(stableStringify(body))
}

/**
 * `namespace:tenant:method:route:hash`. Everything a user controls goes into the hash as one JSON
 * array, so no arrangement of delimiters in one part can imitate another part; a body follows it
 * after a newline, which JSON text never holds unescaped (a 2 KB body is not escaped a second time).
 */
export function requestKey (source: KeySource, request: FastifyRequest, withBody: boolean): string {
  const memo = source.memo
  if (memo === undefined) return computeKey(source, request, withBody)
  const id = request.protocol + ' ' + request.host + ' ' + request.url
  let key = memo.get(id)
  if (key === undefined) {
    if (memo.size >= KEY_MEMO_SIZE) memo.clear()
    memo.set(id, key = computeKey(source, request, withBody))
  }
  return key
}

/** Everything but the body, as one JSON array. */
function keyParts (source: KeySource, request: FastifyRequest): string {
  // The URL as it came, path and query: /items/%31 and /items/1 route alike, and ?a=%31 parses like
  // ?a=1, but a handler that reflects request.url tells them apart, so they must not share an entry.
  // Query order is kept for the same reason (a handler may serialise request.query as parsed).
  const vary = source.vary.length === 0 ? null : source.vary.map((name) => request.headers[name] ?? null)
  const extra = source.key === undefined ? undefined : keyPartOf('key', source.key(request))
  return JSON.stringify([
    request.protocol,
    request.host,
    request.url,
    request.params ?? null,
    vary,
    extra ?? null
  ])
}

function keyPrefix (source: KeySource, request: FastifyRequest): string {
  return source.namespace + ':' + tenantSegment(tenantOf(source, request)) + ':' + source.route + ':'
}

function computeKey (source: KeySource, request: FastifyRequest, withBody: boolean): string {
  const parts = keyParts(source, request)
  const material = withBody ? parts + '\n' + bodyPart(request.body) : parts
  return keyPrefix(source, request) + sha256(material)
}

/**
 * The key of a request's raw body bytes, before they are parsed: every other key part, the
 * content-type and content-encoding (which pick the parser), and the SHA-256 of the bytes. Never a
 * store key; it names which store key these exact bytes were found to have once parsed.
 */
export function rawBodyKey (source: KeySource, request: FastifyRequest, chunks: readonly Buffer[]): string {
  const head = keyParts(source, request) + '\n' + JSON.stringify([request.headers['content-type'] ?? null, request.headers['content-encoding'] ?? null]) + '\n'
  // One buffer and a one-shot hash: measured on 2 KB POST hits, a Hash object fed part by part cost
  // a tenth of the process's time.
  return keyPrefix(source, request) + sha256(Buffer.concat([Buffer.from(head), ...chunks]))
}

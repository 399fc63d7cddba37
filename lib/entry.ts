/** Header values as Node and Fastify hold them. */
export type HeaderValue = string | string[]

/** One stored response: everything needed to answer a request without the handler. */
export interface CacheEntry {
  /** HTTP status. */
  status: number
  /** Response headers, names in lower case, without hop-by-hop headers, `set-cookie` or `content-length`. */
  headers: Record<string, HeaderValue>
  /** The final payload bytes, as sent to the client. */
  body: Buffer
  /** When it was stored, in milliseconds since the epoch. */
  storedAt: number
  /** Seconds it is fresh after `storedAt`. */
  ttl: number
  /** Strong or weak validator, quoted as in the `etag` header. */
  etag: string
}

/** Rough bytes an entry takes in memory: body, headers and key, plus a fixed overhead for the objects. */
export const ENTRY_OVERHEAD_BYTES = 256

export function entrySize (key: string, entry: CacheEntry, tags: readonly string[] | undefined): number {
  let size = ENTRY_OVERHEAD_BYTES + key.length + entry.body.length + entry.etag.length
  for (const name in entry.headers) {
    const value = entry.headers[name]
    size += name.length + (typeof value === 'string' ? value.length : value.join(', ').length)
  }
  if (tags !== undefined) for (const tag of tags) size += tag.length * 2
  return size
}

/** Whole seconds since the entry was stored, as the `age` header counts them. */
export function ageSeconds (entry: CacheEntry, now: number): number {
  return Math.max(0, Math.floor((now - entry.storedAt) / 1000))
}

export function isFresh (entry: CacheEntry, now: number): boolean {
  return now - entry.storedAt < entry.ttl * 1000
}

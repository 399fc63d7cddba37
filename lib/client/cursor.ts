import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { CacheEntry } from '../entry.js'
import { FST_RESPONSE_CACHE_INVALID_ARGUMENT } from '../errors.js'
import type { GuardedStore } from '../stores/guard.js'
import type { StoreCursor, StoreListQuery } from '../stores/store.js'
import { VALUE_STATUS } from './values.js'

// A listing's cursor belongs to its listing. It is `<position>.<listing>.<mac>`, base64url: the
// store's position (a few numbers and short words, as JSON), a tag of the selector (an HMAC of the
// store sets it walks, so no tag or tenant can be read from it) and an HMAC of both. The key is a
// secret of the cache's: made once and kept in the store, so that every instance sharing the store
// (a user paging through instance A, then B) signs and checks with the same one; the memory store,
// which no other instance shares, keeps it in the process.

/** Cursors are short: a position of at most 8 parts, and two MACs. */
const CURSOR_MAX_LENGTH = 512
const LISTING_BYTES = 12
const MAC_BYTES = 16
const CURSOR_FORM = /^([A-Za-z0-9_-]{1,400})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22})$/
const SECRET_BYTES = 32
/** Seconds the store keeps the secret: it is read with every page, so an LRU keeps it too. */
const SECRET_TTL = 365 * 86_400

/** A cursor of the right form, not yet checked against its MAC. */
export interface ParsedCursor {
  position: StoreCursor
  payload: string
  listing: string
  mac: string
}

const cursorPart = (part: unknown): boolean => Number.isSafeInteger(part) || (typeof part === 'string' && /^[0-9a-z]{0,32}$/.test(part))

function invalidCursor (): never {
  throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT('cursor', 'expected the cursor of a page that list() answered')
}

/** The cursor's form, checked before the store is asked anything; throws for anything else. */
export function parseCursor (cursor: unknown): ParsedCursor | undefined {
  if (cursor === undefined) return undefined
  if (typeof cursor !== 'string' || cursor.length > CURSOR_MAX_LENGTH) invalidCursor()
  const [, encoded, listing, mac] = CURSOR_FORM.exec(cursor) ?? invalidCursor()
  const payload = Buffer.from(encoded, 'base64url').toString()
  let position: unknown
  try {
    position = JSON.parse(payload)
  } catch {}
  if (!Array.isArray(position) || position.length === 0 || position.length > 8 || !position.every(cursorPart)) invalidCursor()
  return { position: position as StoreCursor, payload, listing, mac }
}

const hmac = (secret: Buffer, text: string, bytes: number): string =>
  createHmac('sha256', secret).update(text).digest().subarray(0, bytes).toString('base64url')

/** The selector's tag: which sets a listing walks, and which tags its entries must have. */
const listingTag = (secret: Buffer, { sets, having }: Pick<StoreListQuery, 'sets' | 'having'>): string =>
  hmac(secret, 'listing\n' + JSON.stringify([sets, having]), LISTING_BYTES)

const macOf = (secret: Buffer, listing: string, payload: string): string => hmac(secret, 'cursor\n' + listing + '\n' + payload, MAC_BYTES)

export class CursorSigner {
  readonly #store: GuardedStore
  readonly #key: string
  readonly #local: Buffer | undefined

  constructor (store: GuardedStore, namespace: string) {
    this.#store = store
    // `x` is never a method nor `v`: no response or value has this key, and it is in no tag set.
    this.#key = namespace + ':-:x:list-secret'
    this.#local = store.remote ? undefined : randomBytes(SECRET_BYTES)
  }

  /**
   * The key cursors are signed with. Read from the store with each page, so that an instance follows
   * a secret made again (after clear(), or an eviction) from the next page on; made when missing.
   * Store trouble rejects, as the listing itself would.
   */
  async secret (): Promise<Buffer> {
    if (this.#local !== undefined) return this.#local
    const found = await this.#store.getAny(this.#key)
    if (found !== undefined && found.body.length === SECRET_BYTES) return found.body
    const made: CacheEntry = { status: VALUE_STATUS, headers: {}, body: randomBytes(SECRET_BYTES), storedAt: Date.now(), ttl: SECRET_TTL, etag: '' }
    await this.#store.set(this.#key, made, { ttl: SECRET_TTL })
    // Two instances may make one at once: the one the store kept is everyone's.
    const kept = await this.#store.getAny(this.#key)
    return kept !== undefined && kept.body.length === SECRET_BYTES ? kept.body : made.body
  }

  sign (secret: Buffer, query: Pick<StoreListQuery, 'sets' | 'having'>, position: StoreCursor): string {
    const payload = JSON.stringify(position)
    const listing = listingTag(secret, query)
    return Buffer.from(payload).toString('base64url') + '.' + listing + '.' + macOf(secret, listing, payload)
  }

  /**
   * The position of a cursor this cache made for this listing; undefined for one it made for another
   * listing (which ends this one: an empty last page). Throws for one it did not make.
   */
  open (secret: Buffer, query: Pick<StoreListQuery, 'sets' | 'having'>, cursor: ParsedCursor): StoreCursor | undefined {
    const expected = Buffer.from(macOf(secret, cursor.listing, cursor.payload))
    if (!timingSafeEqual(expected, Buffer.from(cursor.mac))) invalidCursor()
    return cursor.listing === listingTag(secret, query) ? cursor.position : undefined
  }
}

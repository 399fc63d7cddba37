import { tenantSegment } from '../key.js'
import { valueKey } from './values.js'

/** Pairs remembered at most, and the longest key remembered: bounded memory whatever keys callers use. */
const MEMO_MAX = 10_000
const MEMO_KEY_MAX = 256

/**
 * Store keys of the (tenant, key) pairs used lately: a hot key costs a Map lookup, not a
 * percent-encoding of the key and, with a tenant, a SHA-256 of it. Each memo is emptied when full.
 */
export class ValueKeys {
  /** Without a tenant: the caller's key → the store key. */
  readonly #plain = new Map<string, string>()
  /** Per tenant (as `String(tenant)`, as tenantSegment hashes it): its segment. */
  readonly #tenants = new Map<string, string>()

  constructor (private readonly namespace: string) {}

  of (key: string, tenant: string | number | undefined): string {
    if (tenant !== undefined) return valueKey(this.namespace, this.#tenant(String(tenant)), key)
    let storeKey = this.#plain.get(key)
    if (storeKey === undefined) {
      storeKey = valueKey(this.namespace, tenantSegment(undefined), key)
      if (key.length <= MEMO_KEY_MAX) remember(this.#plain, key, storeKey)
    }
    return storeKey
  }

  #tenant (tenant: string): string {
    let segment = this.#tenants.get(tenant)
    if (segment === undefined) {
      segment = tenantSegment(tenant)
      if (tenant.length <= MEMO_KEY_MAX) remember(this.#tenants, tenant, segment)
    }
    return segment
  }
}

function remember (memo: Map<string, string>, key: string, value: string): void {
  if (memo.size >= MEMO_MAX) memo.clear()
  memo.set(key, value)
}

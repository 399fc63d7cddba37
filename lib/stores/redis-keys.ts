import { VARIANT_MARK } from '../key.js'

/** Entries spread over this many hash slots; an entry and its tag records always share one. */
export const SHARDS = 16

/**
 * FNV-1a: a cheap, stable spread of keys over the shards. A variant's key (key.ts, VARIANT_MARK) is
 * hashed up to its mark: every variant of a resource shares the shard of the resource's key, so no
 * request header value has a say in the slot, and a variant and its marker are written together.
 */
export function shardOf (key: string): number {
  const mark = key.indexOf(VARIANT_MARK)
  const end = mark === -1 ? key.length : mark
  let hash = 0x811c9dc5
  for (let i = 0; i < end; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193)
  return (hash >>> 0) % SHARDS
}

export const shardTag = (shard: number): string => '{' + shard.toString(16).padStart(2, '0') + '}'
/** The Cluster slot of each shard's hash tag (CLUSTER KEYSLOT {00} to {0f}; a test checks them). */
export const SHARD_SLOTS = [13254, 9191, 4996, 933, 13122, 9059, 4864, 801, 13006, 8943, 14610, 2417, 6480, 10679, 14742, 2549]

interface PrefixedClient {
  options?: { keyPrefix?: unknown, redisOptions?: { keyPrefix?: unknown } }
}

/**
 * The `keyPrefix` ioredis adds to every key it sends (a Cluster's own, or its nodes'): Redis holds the
 * keys with it, and SCAN answers them with it.
 */
export function keyPrefixOf (client: PrefixedClient, nested = true): string {
  const prefix = client.options?.keyPrefix ?? (nested ? client.options?.redisOptions?.keyPrefix : undefined)
  if (typeof prefix === 'string') return prefix
  return Buffer.isBuffer(prefix) ? prefix.toString() : ''
}

/** A SCAN MATCH pattern for keys starting with `literal`: the glob's special characters are escaped. */
export function prefixPattern (literal: string): string {
  return literal.replace(/[\\*?[\]]/g, '\\$&') + '*'
}

/** What Redis hashes to pick a key's slot: the first non-empty `{...}`, else the whole key. */
export function hashTagOf (key: string): string {
  const open = key.indexOf('{')
  if (open === -1) return key
  const close = key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : key
}

/**
 * `ttlJitter`: a TTL multiplied by a random factor in [1 - jitter, 1], so that entries written together
 * do not all expire together. Shorter, never longer than asked: `ttl` stays the longest an entry lives.
 */
export function jittered (ttl: number, jitter: number): number {
  return jitter > 0 ? ttl * (1 - jitter * Math.random()) : ttl
}

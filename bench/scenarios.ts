// Every scenario of `npm run bench`: which server (bench/servers/), which requests, and how the report
// groups it. All answer the same 0.7 KB product through the same 20 ms data call unless said otherwise.
import type { Load } from './harness.js'
import { SEARCH_BODY, SEARCH_BODY_64K, SHUFFLED_SEARCH_BODIES, SHUFFLED_SEARCH_BODIES_64K } from './servers/payload.js'

export type Group = 'ceiling' | 'baseline' | 'plugin' | 'peer'

export interface Scenario {
  name: string
  server: string
  path: string
  what: string
  group: Group
  env?: Record<string, string>
  request?: Omit<Load, 'seconds'>
  /** Part of `--quick`, the CI smoke run. */
  quick?: boolean
  /** A binary the scenario needs on PATH; skipped with a note without it. */
  needs?: string
  /** Read one answer after the load (its coding, body and header bytes) for the report's bytes. */
  probe?: boolean
  /** A route of the server answering `app.cache.stats().total`, read around the measured load for the hit share. */
  statsPath?: string
}

/**
 * What Chrome 131 sends with a fetch() from a page of the same origin (no Origin on a same-origin GET;
 * no cookies: bench/RESULTS.md, issue 26). The rows with a browser's headers send these, with the
 * Accept-Encoding of the client they stand for.
 */
const BROWSER: Record<string, string> = {
  accept: 'application/json, text/plain, */*',
  'accept-language': 'en-GB,en-US;q=0.9,en;q=0.8',
  'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'sec-ch-ua': '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
  'sec-ch-ua-mobile': '?0',
  'sec-ch-ua-platform': '"Windows"',
  'sec-fetch-dest': 'empty',
  'sec-fetch-mode': 'cors',
  'sec-fetch-site': 'same-origin',
  referer: 'https://app.example/orders'
}
/** A current browser's Accept-Encoding: br on Node 20 (no zstd in its zlib). */
export const BROWSER_BR = { ...BROWSER, 'accept-encoding': 'gzip, deflate, br, zstd' }
/** A client that takes gzip and deflate only: gzip. */
export const BROWSER_GZIP = { ...BROWSER, 'accept-encoding': 'gzip, deflate' }
/** The same browser calling from another origin (https://app.example, the API elsewhere): a CORS request. */
const crossSite = (headers: Record<string, string>, origin: string): Record<string, string> => ({ ...headers, origin, 'sec-fetch-site': 'cross-site' })
/**
 * The CORS row's requests in turn: br and gzip browsers on https://app.example, and a br browser on a
 * second origin, so the route holds two variants (Vary: Origin), each answered in both codings.
 */
export const CORS_HEADER_SETS = [
  crossSite(BROWSER_BR, 'https://app.example'),
  crossSite(BROWSER_GZIP, 'https://app.example'),
  crossSite(BROWSER_BR, 'https://admin.example')
]

const post: Omit<Load, 'seconds'> = { method: 'POST', body: SEARCH_BODY, headers: { 'content-type': 'application/json' } }
const post64k: Omit<Load, 'seconds'> = { ...post, body: SEARCH_BODY_64K }
const shuffled: Omit<Load, 'seconds'> = { ...post, bodies: SHUFFLED_SEARCH_BODIES }
const shuffled64k: Omit<Load, 'seconds'> = { ...post, bodies: SHUFFLED_SEARCH_BODIES_64K }

export const SCENARIOS: Scenario[] = [
  { name: 'bare', group: 'ceiling', server: 'bare.ts', path: '/product', quick: true, what: 'constant Buffer, no handler work (the ceiling)' },
  { name: 'no-cache', group: 'baseline', server: 'no-cache.ts', path: '/product', what: 'same JSON through a 20 ms handler, no plugin' },
  { name: 'memory-hit', group: 'plugin', server: 'memory-hit.ts', path: '/product', quick: true, what: 'the 20 ms handler behind the plugin, memory-store hits' },
  { name: 'memory-hit-prevalidation', group: 'plugin', server: 'memory-hit.ts', path: '/product', env: { BENCH_GUARD: 'preValidation' }, what: 'memory-store hits of a route with an app-level preValidation guard: looked up after it, at the end of preValidation' },
  { name: 'memory-hit-prehandler', group: 'plugin', server: 'memory-hit.ts', path: '/product', env: { BENCH_GUARD: 'preHandler' }, what: 'memory-store hits of a route with an app-level preHandler guard: looked up after it, at the end of preHandler' },
  { name: 'redis-hit', group: 'plugin', server: 'redis-hit.ts', path: '/product', quick: true, what: 'the 20 ms handler behind the plugin, Redis-store hits' },
  { name: 'tiered-hit', group: 'plugin', server: 'tiered-hit.ts', path: '/product', quick: true, what: 'the 20 ms handler behind the plugin, tiered-store hits (memory over Redis, from this instance\'s memory)' },
  { name: 'redis-hit-sealed', group: 'plugin', server: 'redis-hit.ts', path: '/product', env: { BENCH_ENCRYPTION: '1' }, what: 'Redis-store hits with encryption at rest (AES-256-GCM)' },
  { name: 'bare-post', group: 'ceiling', server: 'bare-post.ts', path: '/search', request: post, what: 'POST route that parses the same 2 KB JSON body and sends constant bytes, no plugin' },
  { name: 'post-hit', group: 'plugin', server: 'post-hit.ts', path: '/search', request: post, what: 'POST keyed by its 2 KB JSON body, memory-store hits' },
  { name: 'post-hit-shuffled', group: 'plugin', server: 'post-hit.ts', path: '/search', request: shuffled, what: 'POST hits, the 2 KB body in six key orders in turn (one entry)' },
  { name: 'post-hit-64kb', group: 'plugin', server: 'post-hit.ts', path: '/search', request: post64k, what: 'POST keyed by a 64 KB JSON body, memory-store hits' },
  { name: 'post-hit-64kb-shuffled', group: 'plugin', server: 'post-hit.ts', path: '/search', request: shuffled64k, what: 'POST hits, the 64 KB body in six key orders in turn (one entry)' },
  { name: 'no-cache-unique', group: 'baseline', server: 'no-cache.ts', path: '/product', request: { unique: true }, quick: true, what: 'no plugin, a new query string on every request' },
  { name: 'memory-miss', group: 'plugin', server: 'memory-hit.ts', path: '/product', request: { unique: true }, quick: true, what: 'memory store, every request a miss (looked up, handled, stored)' },
  { name: 'redis-miss', group: 'plugin', server: 'redis-hit.ts', path: '/product', request: { unique: true }, what: 'Redis store, every request a miss (looked up, handled, stored)' },
  { name: 'redis-miss-sealed', group: 'plugin', server: 'redis-hit.ts', path: '/product', request: { unique: true }, env: { BENCH_ENCRYPTION: '1' }, what: 'Redis store with encryption at rest, every request a miss' },
  { name: 'next-turn-miss', group: 'plugin', server: 'next-turn-store.ts', path: '/product', request: { unique: true }, what: 'a store that answers one event-loop turn later with no I/O (the floor of any remote store), every request a miss' },
  { name: 'redis-stopped', group: 'plugin', server: 'redis-down.ts', path: '/product', quick: true, what: 'Redis store, Redis down (closed port, offline queue off): every request handled' },
  { name: 'memory-stale', group: 'plugin', server: 'stale.ts', path: '/product', what: 'memory store, 1 s upstream, entry always stale: STALE answers while one refresh runs' },
  { name: 'compressed-hit-br', group: 'plugin', server: 'compressed-hit.ts', path: '/list', request: { headers: BROWSER_BR }, probe: true, what: '60 KB JSON with @fastify/compress, a browser\'s headers (Accept-Encoding gzip, deflate, br, zstd): br hits of the encoding the cache keeps' },
  { name: 'compressed-hit-gzip', group: 'plugin', server: 'compressed-hit.ts', path: '/list', request: { headers: BROWSER_GZIP }, probe: true, what: 'the same route, the same headers with Accept-Encoding gzip, deflate: gzip hits' },
  { name: 'compressed-hit-identity', group: 'plugin', server: 'compressed-hit.ts', path: '/list', request: { headers: BROWSER }, probe: true, what: 'the same route, the same headers without Accept-Encoding: identity hits of an entry that holds encodings' },
  { name: 'compressed-hit-cors', group: 'plugin', server: 'compressed-hit.ts', path: '/list', env: { BENCH_CORS: '1' }, request: { headerSets: CORS_HEADER_SETS }, probe: true, statsPath: '/bench/stats', what: 'the same route with @fastify/cors (origin: true) too, a browser calling from https://app.example (br, gzip) and https://admin.example: hits of two Vary: Origin variants' },
  { name: 'compressed-miss-before', group: 'baseline', server: 'compressed-hit.ts', path: '/list', env: { BENCH_COMPRESS: 'off' }, request: { headers: BROWSER_BR }, probe: true, what: 'compress: false, as before issue 26: @fastify/compress compresses every answer, each one a miss' },
  { name: 'compress-alone', group: 'baseline', server: 'compressed-hit.ts', path: '/list', env: { BENCH_COMPRESS: 'none' }, request: { headers: BROWSER_BR }, probe: true, what: '@fastify/compress alone, no cache, a browser\'s headers: the 20 ms handler and brotli on every request' },
  { name: 'bare-1mb', group: 'ceiling', server: 'large.ts', path: '/catalogue', env: { BENCH_STORE: 'none' }, what: 'constant 1 MB Buffer, no handler work (the 1 MB ceiling)' },
  { name: 'memory-hit-1mb', group: 'plugin', server: 'large.ts', path: '/catalogue', env: { BENCH_STORE: 'memory' }, what: '1 MB JSON from the 20 ms handler, memory-store hits' },
  { name: 'redis-hit-1mb', group: 'plugin', server: 'large.ts', path: '/catalogue', env: { BENCH_STORE: 'redis' }, what: '1 MB JSON from the 20 ms handler, Redis-store hits (lz4)' },
  { name: 'async-cache-dedupe', group: 'peer', server: 'peer-async-cache-dedupe.ts', path: '/product', what: 'peer: async-cache-dedupe (memory) around the data call' },
  { name: 'bentocache', group: 'peer', server: 'peer-bentocache.ts', path: '/product', what: 'peer: bentocache getOrSet in the handler, memory only' },
  { name: 'bentocache-l2', group: 'peer', server: 'peer-bentocache.ts', path: '/product', env: { BENCH_L2: 'redis' }, what: 'peer: bentocache getOrSet, memory + Redis L2' },
  { name: 'fastify-caching', group: 'peer', server: 'peer-fastify-caching.ts', path: '/product', what: 'peer: @fastify/caching, default store (headers and ETags only; no bodies stored)' },
  { name: 'nginx', group: 'peer', server: 'peer-nginx.ts', path: '/product', needs: 'nginx', what: 'peer: nginx proxy_cache, one worker, in front of the no-plugin app' },
  { name: 'reverse-proxy-hit', group: 'plugin', server: 'reverse-proxy.ts', path: '/product', what: 'examples/reverse-proxy (@fastify/reply-from, ttl: \'origin\', memory store) in front of an origin that sends max-age, hits' },
  { name: 'nginx-gzip', group: 'peer', server: 'peer-nginx.ts', path: '/list', env: { BENCH_NGINX_GZIP: '1' }, request: { headers: BROWSER_BR }, probe: true, needs: 'nginx', what: 'peer: nginx proxy_cache with gzip on (JSON, gzip_proxied any), one worker, in front of the 60 KB route with no plugin and no @fastify/compress, a browser\'s headers: gzip on every answer' },
  { name: 'nginx-origin', group: 'peer', server: 'peer-nginx.ts', path: '/product', env: { BENCH_ORIGIN: 'http' }, needs: 'nginx', what: 'peer: nginx proxy_cache, one worker, in front of the same origin (its Cache-Control decides)' }
]

/** Peers that cache inside the Node process, which memory hits must be ahead of. */
export const IN_PROCESS_PEERS = ['async-cache-dedupe', 'bentocache', 'bentocache-l2', 'fastify-caching']

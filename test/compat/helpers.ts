// Helpers of the compatibility suite (issue 26, point 4): every test registers a Fastify plugin as
// its README shows, next to the cache, listens on a real port and talks to it as a browser does.
// Each app is built twice, with and without the cache, so that what a client gets can be compared
// byte for byte with what it gets without the cache.
import * as zlib from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { request } from 'undici'

/** What Firefox sends with a fetch() from a page (accept-encoding as Chrome and Firefox send it). */
export const BROWSER: Readonly<Record<string, string>> = {
  accept: 'application/json, text/plain, */*',
  'accept-encoding': 'gzip, deflate, br, zstd',
  'accept-language': 'en-GB,en;q=0.9,fr;q=0.8',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
}

/** What @fastify/compress picks for a browser: zstd where Node has it (22.15+), brotli before. */
export const BROWSER_ENCODING = typeof (zlib as unknown as Record<string, unknown>).createZstdCompress === 'function' ? 'zstd' : 'br'

/** What a browser sends for a page it navigates to. */
export const NAVIGATION: Readonly<Record<string, string>> = {
  ...BROWSER,
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
}

export interface Answer {
  status: number
  /** Response headers, lower-case; a repeated one joined with `, ` (set-cookie is in `cookies`). */
  headers: Record<string, string | undefined>
  /** Every set-cookie line. */
  cookies: string[]
  cache: string | undefined
  /** The bytes on the wire. */
  raw: Buffer
  /** The body decoded from its content-encoding, as the browser reads it. */
  body: string
}

export interface Init {
  method?: string
  /** Added to (or, set to undefined, taken from) the browser's own headers. */
  headers?: Record<string, string | undefined>
  body?: string
}

export type Client = (path: string, init?: Init) => Promise<Answer>

/** The body as the browser reads it: decoded from its content-encoding. */
export function decode (raw: Buffer, encoding: string | undefined): Buffer {
  switch (encoding) {
    case undefined:
    case 'identity':
      return raw
    case 'br':
      return zlib.brotliDecompressSync(raw)
    case 'gzip':
      return zlib.gunzipSync(raw)
    case 'deflate':
      return zlib.inflateSync(raw)
    case 'zstd': {
      // Node 22.15+ only, where @fastify/compress offers zstd at all.
      const zstd = (zlib as unknown as { zstdDecompressSync: (buffer: Buffer) => Buffer }).zstdDecompressSync
      return zstd(raw)
    }
    default:
      throw new Error(`unknown content-encoding ${encoding}`)
  }
}

/** Listens on a free port, closed when the test ends; answers a client that sends a browser's headers. */
export async function serve (t: Test, app: FastifyInstance): Promise<Client> {
  t.teardown(async () => { await app.close() })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return async (path, init = {}) => {
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries({ ...BROWSER, ...init.headers })) if (value !== undefined) headers[name] = value
    const response = await request(address + path, { method: (init.method ?? 'GET') as 'GET', headers, body: init.body })
    const raw = Buffer.from(await response.body.arrayBuffer())
    const flat: Record<string, string | undefined> = {}
    let cookies: string[] = []
    for (const [name, value] of Object.entries(response.headers)) {
      if (name === 'set-cookie') cookies = Array.isArray(value) ? value : value === undefined ? [] : [value]
      else flat[name] = Array.isArray(value) ? value.join(', ') : value
    }
    const body = decode(raw, flat['content-encoding']).toString()
    return { status: response.statusCode, headers: flat, cookies, cache: flat['x-cache'], raw, body }
  }
}

/**
 * The same app built with the cache (`cached`) and without it (`plain`), both listening. `build`
 * registers everything; it registers the cache only when asked to.
 */
export async function servePair (t: Test, build: (withCache: boolean) => Promise<FastifyInstance>): Promise<{ cached: Client, plain: Client }> {
  const cached = await serve(t, await build(true))
  const plain = await serve(t, await build(false))
  return { cached, plain }
}

/** Headers that differ between any two answers, or that the cache adds (its etag on what it stores). */
const UNSTABLE = new Set(['date', 'age', 'x-cache', 'cache-status', 'etag', 'keep-alive', 'connection'])

/**
 * What the cache's own compression changes (docs/API.md, Compression): the coding of the bytes, their
 * length and `accept-encoding` in `Vary`. The bodies are compared decoded.
 */
const CODING = new Set(['content-encoding', 'content-length'])

/** `Vary` without the `accept-encoding` member the cache's compression adds; undefined when nothing is left. */
function varyBesidesCoding (vary: string): string | undefined {
  const members = vary.split(',').map((member) => member.trim()).filter((member) => member !== '' && member.toLowerCase() !== 'accept-encoding')
  return members.length === 0 ? undefined : members.join(', ')
}

/**
 * The headers to compare with the app without the cache: all but those in UNSTABLE and `also`, and
 * with what the cache's compression changes left out.
 */
export function stableHeaders (answer: Answer, ...also: string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value === undefined || UNSTABLE.has(name) || CODING.has(name) || also.includes(name)) continue
    const kept = name === 'vary' ? varyBesidesCoding(value) : value
    if (kept !== undefined) headers[name] = kept
  }
  return headers
}

/** An answer's `Vary` as the app without the cache would send it (see stableHeaders). */
export const varyOf = (answer: Answer): string | undefined => answer.headers.vary === undefined ? undefined : varyBesidesCoding(answer.headers.vary)

/** A value of a few kilobytes, above @fastify/compress's 1 KiB threshold. */
export const CATALOGUE = {
  products: Array.from({ length: 60 }, (_, i) => ({ id: i + 1, name: `Product ${i + 1}`, price: 100 + i * 7, tags: ['garden', 'tools'] }))
}

/** Counts handler runs, so that a hit (no run) can be told from a miss. */
export function counter (): { runs: number, next: () => number } {
  const c = { runs: 0, next: () => ++c.runs }
  return c
}

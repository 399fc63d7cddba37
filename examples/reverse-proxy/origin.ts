// A small origin for trying the proxy without one of your own: `npm run example reverse-proxy`
// starts it when UPSTREAM is not set. Each path answers with a different kind of freshness.
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

const PATHS: Record<string, { headers: Record<string, string>, what: string }> = {
  '/': { headers: { 'cache-control': 'max-age=10' }, what: 'this list, fresh for 10 s' },
  '/max-age': { headers: { 'cache-control': 'public, max-age=60', 'surrogate-key': 'demo max-age' }, what: 'fresh for 60 s, Surrogate-Key: demo max-age' },
  '/cdn': { headers: { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=30' }, what: 'CDN-Cache-Control: stored by the proxy (30 s), not by browsers' },
  '/no-store': { headers: { 'cache-control': 'no-store' }, what: 'never stored' },
  '/plain': { headers: {}, what: 'no freshness at all: not stored' },
  '/stream': { headers: { 'cache-control': 'max-age=60' }, what: 'a chunked body, stored once it has ended' }
}

/** Starts the demo origin on a free loopback port. */
export async function startDemoOrigin (): Promise<{ url: string, server: Server, requests: () => number }> {
  let requests = 0
  const server = createServer((request, response) => {
    requests++
    const path = new URL(request.url ?? '/', 'http://origin').pathname
    const spec = PATHS[path]
    if (spec === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', ...spec.headers })
    if (path === '/') {
      response.end(Object.entries(PATHS).map(([name, { what }]) => `${name.padEnd(10)} ${what}`).join('\n') + '\n')
    } else if (path === '/stream') {
      // Written line by line, without content-length: sent chunked.
      let line = 0
      const next = (): void => {
        if (line === 5) response.end()
        else response.write(`line ${++line} at ${new Date().toISOString()}\n`, () => setTimeout(next, 100))
      }
      next()
    } else {
      response.end(`${path} made at ${new Date().toISOString()} (origin request ${requests})\n`)
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests: () => requests }
}

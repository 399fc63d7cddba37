// The origin of the reverse-proxy rows: a plain node:http server answering the 0.7 KB product after
// the same 20 ms data call, with its own freshness (`cache-control: public, max-age=3600`), which the
// proxies in front of it (examples/reverse-proxy, nginx proxy_cache) follow.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PRODUCT_JSON, sleep } from './payload.js'

/** Starts the origin on a free loopback port; answers its address and how many requests reached it. */
export async function startOrigin (): Promise<{ url: string, requests: () => number, close: () => void }> {
  let requests = 0
  const server = createServer((_request, response) => {
    requests++
    sleep(20).then(() => {
      response.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': PRODUCT_JSON.length,
        'cache-control': 'public, max-age=3600'
      }).end(PRODUCT_JSON)
    }, () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests, close: () => { server.close() } }
}

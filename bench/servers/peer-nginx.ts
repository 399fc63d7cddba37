// Peer: nginx proxy_cache (one worker, config generated into a temp dir) in front of the uncached
// no-plugin app, which runs in this process; with BENCH_ORIGIN=http, in front of the origin of the
// reverse-proxy rows (origin.ts), whose own Cache-Control then decides what nginx keeps, as it does
// for examples/reverse-proxy. With BENCH_NGINX_GZIP=1, nginx also compresses (`gzip on` for JSON,
// `gzip_proxied any`, `gzip_vary on`, its default level 1) the answers it serves from proxy_cache, as a
// front proxy usually does: the app behind it (GET /list, the 60 KB route of compressed-hit.ts) has
// neither the plugin nor @fastify/compress, and gzip runs on every answer (nginx caches what the app
// sent, uncompressed). The runner skips this peer when nginx is not on PATH.
import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { startOrigin } from './origin.js'
import { loadList, loadProduct } from './payload.js'

const gzip = process.env.BENCH_NGINX_GZIP === '1'
const app = Fastify()
app.get('/product', async () => await loadProduct())
app.get('/list', async () => await loadList())
const origin = process.env.BENCH_ORIGIN === 'http' ? await startOrigin() : undefined
if (origin !== undefined) app.addHook('onClose', () => { origin.close() })
const upstream = origin?.url ?? await app.listen({ port: 0, host: '127.0.0.1' })

const port = await new Promise<number>((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const { port } = probe.address() as { port: number }
    probe.close(() => { resolve(port) })
  })
})
const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'))
// Started as root, nginx runs its worker as nobody, which must reach the cache and temp dirs in here.
chmodSync(dir, 0o755)
// Every path nginx writes to is in the temp dir, so it needs no system paths and leaves nothing behind.
writeFileSync(join(dir, 'nginx.conf'), `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  proxy_cache_path ${dir}/cache keys_zone=bench:10m;
  ${gzip ? 'gzip on; gzip_types application/json; gzip_proxied any; gzip_vary on;' : '# gzip off (the default)'}
  upstream app { server ${upstream.replace('http://', '')}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      ${origin === undefined ? 'proxy_cache_valid 200 1h;' : '# the origin\'s Cache-Control decides'}
      proxy_cache_lock on;
      add_header x-cache $upstream_cache_status;
    }
  }
}
`)
const nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'inherit', 'inherit'] })

// nginx says nothing when it is ready: ask until it answers (the first answer also fills its cache).
const address = `http://127.0.0.1:${port}`
for (let tries = 0; ; tries++) {
  const status = await fetch(address + '/product').then(async (response) => {
    await response.arrayBuffer()
    return response.status
  }, () => 0)
  if (status === 200) break
  if (tries > 100) throw new Error(`bench: nginx answered ${status}; its log: ${readFileSync(join(dir, 'error.log'), 'utf8')}`)
  await new Promise((resolve) => setTimeout(resolve, 50))
}

process.send?.({ address })
process.on('disconnect', () => {
  nginx.once('exit', () => {
    rmSync(dir, { recursive: true, force: true })
    app.close().then(() => process.exit(0), () => process.exit(1))
  })
  nginx.kill('SIGQUIT')
})

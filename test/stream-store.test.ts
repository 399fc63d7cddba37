// Streamed responses (a file, an upstream body, any Node Readable) are stored once they end within
// maxEntryBytes, while the client gets each chunk as it comes. A stream that fails, is cut off by its
// client, or passes the bound is served as it is and not stored, and the requests waiting for its key
// run the handler themselves.
import type { FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect as connectSocket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { request } from 'undici'
import type { ResponseCacheOptions } from '../lib/index.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { deferred, until } from './helpers/events.js'
import { connect, startRedis } from './helpers/redis.js'
import { storeKinds } from './helpers/stores.js'

/** A stream that sends a chunk, ends or fails only when the test says so. */
function gated (): { stream: Readable, send: (chunk: Buffer) => void, end: () => void, fail: (error: Error) => void, closed: Promise<void> } {
  const stream = new Readable({ read () {} })
  const closed = new Promise<void>((resolve) => { stream.once('close', resolve) })
  return {
    stream,
    send: (chunk) => { stream.push(chunk) },
    end: () => { stream.push(null) },
    fail: (error) => { stream.destroy(error) },
    closed
  }
}

/** Fails instead of hanging: a bound on the test's own deadlock, not a timing. */
async function settles<T> (promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: still pending after ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([promise, bound])
  } finally {
    clearTimeout(timer)
  }
}

/** Lets the requests started so far run as far as they can without the test's next step. */
async function turns (n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

const reasons = (lines: Array<Record<string, unknown>>): unknown[] =>
  lines.filter((line) => line.msg === 'response cache: not stored').map((line) => (line.responseCache as { reason: string }).reason)

const dir = mkdtempSync(join(tmpdir(), 'stream-store-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
// Several read chunks (64 KiB each), within the default maxEntryBytes (1 MiB).
const FILE = randomBytes(300_000)
writeFileSync(join(dir, 'catalogue.bin'), FILE)
writeFileSync(join(dir, 'style.css'), 'body { color: teal }\n')

const modes: Array<[string, ResponseCacheOptions['ttl'], Record<string, string>]> = [
  ['ttl: 60', 60, {}],
  ["ttl: 'origin'", 'origin', { 'cache-control': 'max-age=60' }]
]

for (const [kind, options] of await storeKinds(t)) {
  for (const [mode, ttl, headers] of modes) {
    t.test(`${kind}, ${mode}: a file sent as a stream is stored, and hits send the same bytes`, async (t) => {
      const app = await cachedApp(t, { ...options(), ttl })
      const runs = counter()
      // The way the README puts it: a route that sends a file stream, cached like any other.
      app.get('/files/:name', { config: { cache: true } }, async (request, reply) => {
        runs.next()
        const { name } = request.params as { name: string }
        return reply.headers(headers).type(name.endsWith('.css') ? 'text/css' : 'application/octet-stream').send(createReadStream(join(dir, name)))
      })
      const miss = await app.inject('/files/catalogue.bin')
      t.equal(miss.headers['x-cache'], 'MISS')
      t.ok(miss.rawPayload.equals(FILE), 'the client got the whole file')
      t.equal(miss.headers.etag, undefined, 'no etag on a streamed miss: its body was not known when the headers went out')
      const hit = await app.inject('/files/catalogue.bin')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.ok(hit.rawPayload.equals(FILE), 'the hit sends the same bytes')
      t.equal(hit.headers['content-length'], String(FILE.length))
      t.equal(hit.headers['content-type'], 'application/octet-stream')
      t.match(hit.headers.etag, /^"(rc-)?[\w-]{27}"$/, 'the stored entry has an etag of its body')
      const revalidated = await app.inject({ url: '/files/catalogue.bin', headers: { 'if-none-match': hit.headers.etag as string } })
      t.equal(revalidated.statusCode, 304)
      const small = [await app.inject('/files/style.css'), await app.inject('/files/style.css')]
      t.same(small.map((r) => r.headers['x-cache']), ['MISS', 'HIT'])
      t.equal(small[1].body, 'body { color: teal }\n')
      t.equal(runs.runs, 2)
    })

    t.test(`${kind}, ${mode}: concurrent requests wait for the leader's stream to end and are answered from its entry`, async (t) => {
      const app = await cachedApp(t, { ...options(), ttl })
      const runs = counter()
      const source = gated()
      const started = deferred()
      app.get('/feed', { config: { cache: true } }, async (_request, reply) => {
        runs.next()
        started.resolve()
        return reply.headers(headers).send(source.stream)
      })
      const leader = app.inject('/feed')
      await started.promise
      let answered = 0
      const followers = Array.from({ length: 5 }, async () => await app.inject('/feed').then((response) => { answered++; return response }))
      source.send(Buffer.from('first '))
      await turns()
      t.equal(answered, 0, 'the followers wait while the stream is open')
      t.equal(runs.runs, 1, 'and do not run the handler')
      source.send(Buffer.from('second'))
      source.end()
      const [first, ...rest] = await settles(Promise.all([leader, ...followers]), 'leader and followers')
      t.equal(first.body, 'first second')
      t.equal(first.headers['x-cache'], 'MISS')
      for (const response of rest) {
        t.equal(response.headers['x-cache'], 'HIT')
        t.equal(response.body, 'first second')
      }
      t.equal(runs.runs, 1)
    })
  }

  t.test(`${kind}: a stream that fails midway is not stored; the waiters and the next request run the handler`, async (t) => {
    const app = await cachedApp(t, { ...options(), coalesceTimeout: 60_000 })
    const runs = counter()
    const source = gated()
    const started = deferred()
    app.get('/feed', { config: { cache: true } }, async (_request, reply) => {
      if (runs.next() > 1) return reply.send(Readable.from([Buffer.from('whole')]))
      started.resolve()
      return reply.send(source.stream)
    })
    const leader = app.inject('/feed')
    await started.promise
    const followers = Array.from({ length: 3 }, async () => await app.inject('/feed'))
    await turns()
    source.send(Buffer.from('part'))
    source.fail(new Error('upstream reset'))
    await leader.catch(() => undefined)
    const answers = await settles(Promise.all(followers), 'followers of a failed stream')
    t.same(answers.map((r) => [r.statusCode, r.body]), [[200, 'whole'], [200, 'whole'], [200, 'whole']], 'none got the failed stream')
    // Each waiter runs the handler itself; on Redis a follower whose lookup was still on its way when
    // the stream failed may instead find a sibling's entry, so at least one ran it.
    t.ok(runs.runs >= 2 && runs.runs <= 4, `the handler ran again (${runs.runs} runs)`)
    // The followers' own streams were stored: the next request is a hit, and it is theirs.
    const next = await app.inject('/feed')
    t.equal(next.headers['x-cache'], 'HIT')
    t.equal(next.body, 'whole')
  })

  t.test(`${kind}: a stream past maxEntryBytes is served whole and not stored; the waiters are let go at once`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, { ...options(), maxEntryBytes: 1024, coalesceTimeout: 60_000 }, { logger })
    const runs = counter()
    const source = gated()
    const started = deferred()
    app.get('/big', { config: { cache: true } }, async (_request, reply) => {
      if (runs.next() > 1) return reply.send(Readable.from([Buffer.alloc(600, 'b'), Buffer.alloc(600, 'b')]))
      started.resolve()
      return reply.send(source.stream)
    })
    const leader = app.inject('/big')
    await started.promise
    const followers = Promise.all(Array.from({ length: 3 }, async () => await app.inject('/big')))
    await turns()
    source.send(Buffer.alloc(600, 'a'))
    source.send(Buffer.alloc(600, 'a'))
    const answers = await settles(followers, 'followers of a stream past the bound')
    t.same(answers.map((r) => r.rawPayload.length), [1200, 1200, 1200], 'answered before the leader\'s stream has ended')
    source.send(Buffer.alloc(600, 'a'))
    source.end()
    const whole = await leader
    t.equal(whole.rawPayload.length, 1800, 'the client got the whole body')
    t.ok(whole.rawPayload.equals(Buffer.alloc(1800, 'a')))
    t.equal((await app.inject('/big')).headers['x-cache'], 'MISS', 'nothing was stored')
    t.ok(reasons(lines).includes('too-large'))
    t.equal(runs.runs, 5)
  })
}

t.test('a stream of exactly maxEntryBytes is stored; one byte more is not', async (t) => {
  const app = await cachedApp(t, { maxEntryBytes: 1024 })
  app.get('/:size', { config: { cache: true } }, async (request, reply) => {
    // maxEntryBytes counts the headers with the body: content-type and its value are 36 bytes.
    const size = Number((request.params as { size: string }).size) - 36
    return reply.header('content-type', 'application/octet-stream').send(Readable.from([Buffer.alloc(size - 24, 'x'), Buffer.alloc(24, 'y')]))
  })
  t.same([(await app.inject('/1024')).headers['x-cache'], (await app.inject('/1024')).headers['x-cache']], ['MISS', 'HIT'])
  t.same([(await app.inject('/1025')).headers['x-cache'], (await app.inject('/1025')).headers['x-cache']], ['MISS', 'MISS'])
})

t.test('a stream whose content-length is past the bound is not copied at all, and its waiters are let go at once', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, { maxEntryBytes: 1024, coalesceTimeout: 60_000 }, { logger })
  const source = gated()
  const started = deferred()
  const runs = counter()
  app.get('/video', { config: { cache: true } }, async (_request, reply) => {
    if (runs.next() > 1) return reply.header('content-length', '4').send(Readable.from([Buffer.from('tail')]))
    started.resolve()
    return reply.header('content-length', '2048').send(source.stream)
  })
  const leader = app.inject('/video')
  await started.promise
  const follower = await settles(app.inject('/video'), 'a follower of a stream announced too large')
  t.equal(follower.body, 'tail')
  t.same(reasons(lines), ['too-large'], 'decided from the headers, before any byte')
  source.send(Buffer.alloc(2048))
  source.end()
  t.equal((await leader).rawPayload.length, 2048)
})

t.test('a slow chunked stream reaches the client chunk by chunk, is stored when it ends, and hits send the same bytes', async (t) => {
  for (const [mode, ttl, headers] of modes) {
    const app = await cachedApp(t, { ttl })
    const runs = counter()
    const source = gated()
    app.get('/events', { config: { cache: true } }, async (_request, reply) => {
      runs.next()
      return reply.headers(headers).type('text/plain').send(source.stream)
    })
    const address = await app.listen({ port: 0, host: '127.0.0.1' })
    // The headers go out with the first chunk, as without the cache.
    const responding = request(address + '/events')
    const chunks = ['one,', 'two,', 'three,', 'four']
    const received: Buffer[] = []
    source.send(Buffer.from(chunks[0]))
    const response = await settles(responding, `${mode}: the headers`)
    t.equal(response.headers['transfer-encoding'], 'chunked', `${mode}: sent chunked, as without the cache`)
    const reader = response.body[Symbol.asyncIterator]()
    for (const [i, chunk] of chunks.entries()) {
      if (i > 0) source.send(Buffer.from(chunk))
      // The client has each chunk before the next is even made: the cache does not hold the body back.
      let got = 0
      while (got < chunk.length) {
        const next = await settles(reader.next(), `${mode}: chunk "${chunk}" reaching the client`)
        received.push(next.value as Buffer)
        got += (next.value as Buffer).length
      }
    }
    // In origin mode the stored date is the one the miss carried, not the time the stream ended.
    if (ttl === 'origin') await until(Math.floor(Date.now() / 1000) * 1000, 999)
    source.end()
    t.equal((await reader.next()).done, true)
    t.equal(Buffer.concat(received).toString(), 'one,two,three,four')
    const hit = await request(address + '/events')
    t.equal(hit.headers['x-cache'], 'HIT', mode)
    t.equal(await hit.body.text(), 'one,two,three,four')
    t.equal(hit.headers['content-length'], '18')
    t.equal(hit.headers['content-type'], 'text/plain')
    if (ttl === 'origin') t.equal(hit.headers.date, response.headers.date, 'origin mode: the date the miss carried, on the hit too')
    t.equal(runs.runs, 1)
    await app.close()
  }
})

t.test('a timer-paced stream (a chunk every few milliseconds) is stored whole', async (t) => {
  const app = await cachedApp(t)
  app.get('/ticks', { config: { cache: true } }, async (_request, reply) => {
    let n = 0
    return reply.send(new Readable({
      read () {
        setTimeout(() => { this.push(n < 10 ? Buffer.from(`tick ${n++}\n`) : null) }, 2)
      }
    }))
  })
  const miss = await app.inject('/ticks')
  const hit = await app.inject('/ticks')
  t.same([miss.headers['x-cache'], hit.headers['x-cache']], ['MISS', 'HIT'])
  t.equal(hit.body, miss.body)
  t.equal(hit.body.split('\n').length, 11)
})

/** An app whose /feed sends `source` on its first run and a whole stream after; its log lines. */
async function gatedFeed (t: { teardown: (fn: () => unknown) => void }): Promise<{ app: FastifyInstance, lines: Array<Record<string, unknown>>, source: ReturnType<typeof gated>, runs: { runs: number } }> {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, { coalesceTimeout: 60_000 }, { logger })
  const runs = counter()
  const source = gated()
  app.get('/feed', { config: { cache: true } }, async (_request, reply) => {
    if (runs.next() > 1) return reply.send(Readable.from([Buffer.from('whole')]))
    return reply.send(source.stream)
  })
  return { app, lines, source, runs }
}

t.test('a stream that fails midway over a socket: the client sees the cut, nothing is stored, the next request runs the handler', async (t) => {
  const { app, lines, source } = await gatedFeed(t)
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const responding = request(address + '/feed')
  source.send(Buffer.from('part'))
  const response = await settles(responding, 'the headers')
  t.equal(response.statusCode, 200)
  const reading = response.body.text()
  source.fail(new Error('upstream reset'))
  await t.rejects(settles(reading, 'the cut body'), 'the client does not get a body that looks whole')
  const next = await settles(request(address + '/feed'), 'the next request')
  t.equal(next.headers['x-cache'], 'MISS')
  t.equal(await next.body.text(), 'whole')
  t.ok(reasons(lines).includes('stream-error'))
  t.equal((await request(address + '/feed')).headers['x-cache'], 'HIT')
})

t.test('a stream that fails before its first byte answers 500 as without the cache, or the stale entry within staleIfError', async (t) => {
  const app = await cachedApp(t, { ttl: 1, staleIfError: 60 })
  const runs = counter()
  app.get('/feed', { config: { cache: true } }, async (_request, reply) => {
    const run = runs.next()
    const failing = new Readable({ read () { this.destroy(new Error('no such object')) } })
    return reply.send(run === 2 ? Readable.from([Buffer.from('good')]) : failing)
  })
  const failed = await app.inject('/feed')
  t.equal(failed.statusCode, 500)
  t.equal((await app.inject('/feed')).body, 'good', 'the next request ran the handler: nothing was stored or held')
  const storedAt = Date.now()
  t.equal((await app.inject('/feed')).headers['x-cache'], 'HIT')
  await until(storedAt, 1000)
  const stale = await app.inject('/feed')
  t.equal(stale.statusCode, 200)
  t.equal(stale.headers['x-cache'], 'STALE', 'stale-if-error covers a stream that fails as it would a handler that throws')
  t.equal(stale.body, 'good')
})

t.test('a client that goes away midway: the source is closed, nothing is stored, nothing waits', async (t) => {
  const { app, lines, source, runs } = await gatedFeed(t)
  const address = new URL(await app.listen({ port: 0, host: '127.0.0.1' }))
  const socket = connectSocket(Number(address.port), address.hostname)
  socket.write('GET /feed HTTP/1.1\r\nHost: example.test\r\n\r\n')
  source.send(Buffer.from('first chunk'))
  let seen = ''
  await settles(new Promise<void>((resolve) => {
    socket.on('data', (data: Buffer) => {
      seen += data.toString()
      if (seen.includes('first chunk')) resolve()
    })
  }), 'the first chunk')
  socket.destroy()
  await settles(source.closed, 'the source being closed after the client left')
  t.ok(source.stream.destroyed, 'the source (a file, an upstream connection) is let go')
  const next = await settles(request(address.origin + '/feed'), 'the next request, with no leader left to wait for')
  t.equal(next.headers['x-cache'], 'MISS')
  t.equal(await next.body.text(), 'whole')
  t.equal(runs.runs, 2)
  t.ok(reasons(lines).includes('stream-closed'))
})

t.test('a stream response that may not be stored is passed through untouched, with the reason logged', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, { ttl: 'origin' }, { logger })
  app.get('/fresh-less', { config: { cache: true } }, async (_request, reply) => reply.send(Readable.from([Buffer.from('a')])))
  app.get('/cookie', { config: { cache: { ttl: 60 } } }, async (_request, reply) => reply.header('set-cookie', 's=1').send(Readable.from([Buffer.from('b')])))
  app.get('/missing', { config: { cache: { ttl: 60 } } }, async (_request, reply) => reply.code(404).send(Readable.from([Buffer.from('c')])))
  app.get('/web', { config: { cache: { ttl: 60 } } }, async (_request, reply) => reply.send(new Blob(['d']).stream()))
  for (const path of ['/fresh-less', '/cookie', '/missing', '/web']) {
    const answers = [await app.inject(path), await app.inject(path)]
    t.same(answers.map((r) => r.headers['x-cache']), ['MISS', 'MISS'], path)
    t.equal(answers[1].rawPayload.length, 1)
  }
  t.same(reasons(lines), ['no-freshness', 'no-freshness', 'set-cookie', 'set-cookie', 'status', 'status', 'stream', 'stream'],
    'the reason the buffered path would give; a web stream is not stored (`stream`)')
})

t.test('a HEAD request to a stream route is answered as usual and stores nothing', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/file', { config: { cache: true } }, async (_request, reply) => { runs.next(); return reply.send(createReadStream(join(dir, 'style.css'))) })
  const head = await app.inject({ method: 'HEAD', url: '/file' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.same([(await app.inject('/file')).headers['x-cache'], (await app.inject({ method: 'HEAD', url: '/file' })).headers['x-cache']], ['MISS', 'HIT'])
  t.equal(runs.runs, 2)
})

t.test('redis: a stream stored by one instance is a hit on another; a failed stream leaves no lock behind', async (t) => {
  const server = await startRedis(t)
  const client = await connect(t, server)
  const source = gated()
  const started = deferred()
  const instance = async (feed: () => Readable): Promise<FastifyInstance> => {
    const app = await cachedApp(t, { store: 'redis', redis: client, namespace: 'streams', timeout: 2000, coalesceTimeout: 60_000 })
    app.get('/file', { config: { cache: true } }, async (_request, reply) => reply.type('application/octet-stream').send(createReadStream(join(dir, 'catalogue.bin'))))
    app.get('/feed', { config: { cache: true } }, async (_request, reply) => reply.send(feed()))
    return app
  }
  const a = await instance(() => { started.resolve(); return source.stream })
  const b = await instance(() => Readable.from([Buffer.from('from b')]))
  t.equal((await a.inject('/file')).headers['x-cache'], 'MISS')
  const hit = await settles(b.inject('/file'), 'the other instance')
  t.equal(hit.headers['x-cache'], 'HIT', 'from Redis')
  t.ok(hit.rawPayload.equals(FILE))

  const leader = a.inject('/feed')
  await started.promise
  t.equal((await client.keys('streams:*:lock*')).length, 1, 'the leader holds the key\'s lock while its stream runs')
  source.send(Buffer.from('part'))
  source.fail(new Error('upstream reset'))
  await leader.catch(() => undefined)
  t.same(await client.keys('streams:*:lock*'), [], 'released when the stream failed')
  const other = await settles(b.inject('/feed'), 'the other instance, with no lock to wait out')
  t.equal(other.body, 'from b')
  t.equal(other.headers['x-cache'], 'MISS')
})

t.test('tiered: a stream stored by one instance is a hit on the other', async (t) => {
  const server = await startRedis(t)
  const client = await connect(t, server)
  const instance = async (): Promise<FastifyInstance> => {
    const app = await cachedApp(t, { store: 'tiered', redis: client, namespace: 'tiered-streams', timeout: 2000 })
    app.get('/file', { config: { cache: true } }, async (_request, reply) => reply.send(createReadStream(join(dir, 'catalogue.bin'))))
    return app
  }
  const [a, b] = [await instance(), await instance()]
  t.equal((await a.inject('/file')).headers['x-cache'], 'MISS')
  t.equal((await a.inject('/file')).headers['x-cache'], 'HIT')
  const fromRedis = await b.inject('/file')
  t.equal(fromRedis.headers['x-cache'], 'HIT')
  t.ok(fromRedis.rawPayload.equals(FILE))
})

t.test('a tags function that throws: the stream is served whole, logged at warn, not stored, and its waiters let go', async (t) => {
  const { lines, logger } = logCapture('warn')
  const app = await cachedApp(t, { coalesceTimeout: 60_000 }, { logger })
  const runs = counter()
  const source = gated()
  const started = deferred()
  app.get('/tagged', { config: { cache: { tags: () => { throw new Error('no tags today') } } } }, async (_request, reply) => {
    if (runs.next() > 1) return reply.send(Readable.from([Buffer.from('again')]))
    started.resolve()
    return reply.send(source.stream)
  })
  const leader = app.inject('/tagged')
  await started.promise
  const follower = app.inject('/tagged')
  await turns()
  source.send(Buffer.from('whole body'))
  source.end()
  t.equal((await leader).body, 'whole body')
  t.equal((await settles(follower, 'the follower')).body, 'again', 'it ran the handler itself')
  t.ok(lines.some((line) => line.msg === 'response cache could not store a response'))
})

t.test('a stream past the bound that then fails is given up once: one reason logged, its waiters let go once', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, { maxEntryBytes: 1024 }, { logger })
  const source = gated()
  app.get('/big', { config: { cache: true } }, async (_request, reply) => reply.send(source.stream))
  const responding = app.inject('/big')
  source.send(Buffer.alloc(2000))
  await turns()
  source.fail(new Error('upstream reset'))
  await responding.catch(() => undefined)
  t.same(reasons(lines), ['too-large'])
})

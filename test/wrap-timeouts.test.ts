import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { cachedApp, logCapture } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { threeInstances } from './helpers/instances.js'
import { allStoreKinds } from './helpers/stores.js'

// wrap's softTimeout and hardTimeout: how long a caller waits for fn. The functions here wait on
// promises the tests resolve, and the timeouts are small: what is asserted is what each call
// answered and what the store holds afterwards, never how long anything took.

const LATE_LINE = 'response cache: wrap function failed after its timeout; nothing was stored'

const { kinds, url, client } = await allStoreKinds(t, 'timeouts')

/** An upstream that answers (or fails) only when the test says so, counting its calls. */
function slowApi<T> (): { calls: number, answer: (value: T) => void, fail: (error: Error) => void, fetch: () => Promise<T> } {
  const replies: Array<{ resolve: (value: T) => void, reject: (error: Error) => void }> = []
  const api = {
    calls: 0,
    answer: (value: T) => { replies.shift()?.resolve(value) },
    fail: (error: Error) => { replies.shift()?.reject(error) },
    fetch: async (): Promise<T> => {
      api.calls++
      return await new Promise<T>((resolve, reject) => { replies.push({ resolve, reject }) })
    }
  }
  return api
}

/** A value stored `ttl` 50 ms ago and now stale, kept for an hour's stale-if-error. */
async function staleValue (app: FastifyInstance, key: string, value: unknown): Promise<void> {
  await app.cache.wrap(key, () => value, { ttl: 0.05, staleIfError: 3600 })
  await until(Date.now(), 50)
}

for (const [kind, options] of kinds) {
  t.test(`${kind}: softTimeout answers the stale value; fn finishes in the background and its value is written`, async (t) => {
    const app = await cachedApp(t, options())
    await staleValue(app, 'quote', 'old')
    const api = slowApi<string>()
    const call = async (): Promise<string> => await app.cache.wrap('quote', api.fetch, { ttl: 60, staleIfError: 3600, softTimeout: 20 })
    t.same(await Promise.all([call(), call(), call()]), ['old', 'old', 'old'], 'every collapsed caller: the stale value')
    t.equal(api.calls, 1, 'one run for them')
    t.equal(await call(), 'old', 'a later call joins the run still going and times out again')
    t.equal(api.calls, 1, 'it did not start another')
    t.equal(await app.cache.get('quote'), undefined, 'nothing fresh stored yet')
    api.answer('new')
    t.ok(await eventually(async () => await app.cache.get('quote') === 'new'), 'the late value is written')
    t.equal(await call(), 'new', 'and answered as a hit')
    t.equal(api.calls, 1)
    const { values } = app.cache.stats()
    t.equal(values.stale, 2, 'each stale answer counted')
  })

  t.test(`${kind}: softTimeout without a stale value at hand waits for fn`, async (t) => {
    const app = await cachedApp(t, options())
    const api = slowApi<string>()
    let settled = false
    const answer = app.cache.wrap('cold', api.fetch, { softTimeout: 1 }).finally(() => { settled = true })
    t.ok(await eventually(() => api.calls === 1))
    // Past the soft timeout (a wait, not an assertion on time): the call still waits.
    await until(Date.now(), 30)
    t.equal(settled, false, 'nothing to answer instead: still waiting')
    api.answer('made')
    t.equal(await answer, 'made')
    t.equal(await app.cache.get('cold'), 'made')
  })

  t.test(`${kind}: hardTimeout without a stale value rejects with FST_RESPONSE_CACHE_WRAP_TIMEOUT; the late value is written`, async (t) => {
    const { lines, logger } = logCapture('warn')
    const app = await cachedApp(t, options(), { logger })
    const api = slowApi<{ total: number }>()
    const call = async (): Promise<{ total: number }> => await app.cache.wrap('invoice:secret-id', api.fetch, { hardTimeout: 20 })
    const error = await call().catch((error: unknown) => error) as Error & { code?: string, statusCode?: number }
    t.match(error, { code: 'FST_RESPONSE_CACHE_WRAP_TIMEOUT', statusCode: 504, message: /within its hardTimeout of 20ms/ })
    t.notMatch(error.message, /secret-id|invoice/, 'the key is not in the message')
    await t.rejects(call(), { code: 'FST_RESPONSE_CACHE_WRAP_TIMEOUT' }, 'a later call joins the run and times out too')
    t.equal(api.calls, 1)
    api.answer({ total: 7 })
    t.ok(await eventually(async () => (await app.cache.get('invoice:secret-id')) !== undefined), 'background completion writes the value')
    t.same(await call(), { total: 7 })
    t.equal(api.calls, 1, 'a hit')
    t.equal(lines.length, 0, 'a late success logs nothing')
  })

  t.test(`${kind}: hardTimeout with a stale value at hand answers it`, async (t) => {
    const app = await cachedApp(t, options())
    await staleValue(app, 'menu', ['soup'])
    const api = slowApi<string[]>()
    t.same(await app.cache.wrap('menu', api.fetch, { ttl: 60, staleIfError: 3600, hardTimeout: 20 }), ['soup'])
    t.same(await app.cache.wrap('menu', api.fetch, { ttl: 60, staleIfError: 3600, softTimeout: 10, hardTimeout: 20 }), ['soup'], 'soft first, the same answer')
    t.equal(api.calls, 1)
    // Out of the caller's window (staleIfError 0), a stale value is not at hand.
    await t.rejects(app.cache.wrap('menu', api.fetch, { staleIfError: 0, hardTimeout: 20 }), { code: 'FST_RESPONSE_CACHE_WRAP_TIMEOUT' })
    api.answer(['stew'])
    t.ok(await eventually(async () => await app.cache.wrap('menu', api.fetch, { hardTimeout: 20 }).catch(() => undefined) !== undefined))
    t.same(await app.cache.get('menu'), ['stew'])
  })

  t.test(`${kind}: fn failing after its timeout is logged; nothing is stored and the next call runs fn again`, async (t) => {
    const { lines, logger } = logCapture('warn')
    const app = await cachedApp(t, options(), { logger })
    await staleValue(app, 'weather', 'sunny')
    const api = slowApi<string>()
    t.equal(await app.cache.wrap('weather', api.fetch, { staleIfError: 3600, softTimeout: 20 }), 'sunny')
    api.fail(new Error('weather API: 503'))
    t.ok(await eventually(() => lines.some((line) => line.msg === LATE_LINE)), 'logged at warn')
    t.match(lines.find((line) => line.msg === LATE_LINE), { err: { message: 'weather API: 503' } })
    t.notMatch(JSON.stringify(lines), /weather:|"weather"/, 'the key is never logged')
    const next = app.cache.wrap('weather', api.fetch, { staleIfError: 3600 })
    t.ok(await eventually(() => api.calls === 2), 'a new run')
    api.answer('rain')
    t.equal(await next, 'rain')
  })

  t.test(`${kind}: when fn answers first, it is answered and the timers go`, async (t) => {
    const app = await cachedApp(t, options())
    const api = slowApi<number>()
    // Past what setTimeout takes (2^31 - 1 ms), which would otherwise fire at once.
    const answer = app.cache.wrap('n', api.fetch, { softTimeout: 1e9, hardTimeout: 3e9 })
    t.ok(await eventually(() => api.calls === 1))
    api.answer(1)
    t.equal(await answer, 1)
    t.equal(await app.cache.wrap('n', () => 2, { hardTimeout: 1e9 }), 1)
  })

  t.test(`${kind}: softTimeout without a stale value at the call's start ignores a value written meanwhile`, async (t) => {
    const app = await cachedApp(t, options())
    const api = slowApi<string>()
    let settled = false
    const started = Date.now()
    const answer = app.cache.wrap('cold', api.fetch, { softTimeout: 100 }).finally(() => { settled = true })
    t.ok(await eventually(() => api.calls === 1))
    await app.cache.set('cold', 'written meanwhile')
    await until(started, 150)
    t.equal(settled, false, 'still waiting for fn')
    api.answer('made')
    t.equal(await answer, 'made')
  })

  t.test(`${kind}: softTimeout and hardTimeout are positive milliseconds, hardTimeout not below softTimeout`, async (t) => {
    const app = await cachedApp(t, options())
    for (const [name, value] of [['softTimeout', 0], ['softTimeout', -1], ['hardTimeout', Infinity], ['hardTimeout', Number.NaN], ['softTimeout', '20']] as const) {
      await t.rejects(app.cache.wrap('k', () => 1, { [name]: value }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: new RegExp(`"${name}"`) }, `${name}: ${String(value)}`)
    }
    await t.rejects(app.cache.wrap('k', () => 1, { softTimeout: 100, hardTimeout: 50 }), { message: /"hardTimeout".*softTimeout/ })
    t.equal(await app.cache.wrap('k', () => 1, { softTimeout: 50, hardTimeout: 50 }), 1)
  })
}

for (const store of ['redis', 'tiered'] as const) {
  t.test(`${store}: three instances; the one whose fn timed out still writes its value and lets go of the lock`, async (t) => {
    // Clients as the README shows them (new Redis(url), still connecting), wrap called right after ready().
    const apps = await threeInstances(t, url, store, `late-${store}`)
    const api = slowApi<string>()
    const others = { calls: 0, fetch: async () => { others.calls++; return 'other' } }
    await t.rejects(apps[0].cache.wrap('report', api.fetch, { hardTimeout: 20 }), { code: 'FST_RESPONSE_CACHE_WRAP_TIMEOUT' })
    // The lock is still held for the run going on: the other instances wait for its value.
    const waiting = [apps[1].cache.wrap('report', others.fetch), apps[2].cache.wrap('report', others.fetch)]
    api.answer('late')
    t.same(await Promise.all(waiting), ['late', 'late'], 'the others answer the late value')
    t.equal(others.calls, 0, 'and never ran fn')
    // (A waiting instance that took the lock just after the write lets go of it without waiting.)
    t.ok(await eventually(async () => (await client.keys(`*late-${store}*lock*`)).length === 0, 2000), 'the lock is released, well before it would expire')
    t.equal(await apps[2].cache.get('report'), 'late')
  })

  t.test(`${store}: a run that fails after its timeout lets go of the lock: another instance runs fn at once`, async (t) => {
    const apps = await threeInstances(t, url, store, `late-fail-${store}`)
    const api = slowApi<string>()
    await t.rejects(apps[0].cache.wrap('report', api.fetch, { hardTimeout: 20 }), { code: 'FST_RESPONSE_CACHE_WRAP_TIMEOUT' })
    t.not((await client.keys(`*late-fail-${store}*lock*`)).length, 0, 'held while fn runs')
    api.fail(new Error('down'))
    t.ok(await eventually(async () => (await client.keys(`*late-fail-${store}*lock*`)).length === 0, 2000), 'released when it fails, well before it would expire')
    t.equal(await apps[1].cache.wrap('report', () => 'second'), 'second')
  })
}

t.test('a Redis client straight from new Redis(url): wrap with timeouts right after ready()', async (t) => {
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  const app = await cachedApp(t, { store: 'redis', redis, namespace: 'readme-timeouts' })
  await app.ready()
  const gate = deferred<string>()
  await t.rejects(app.cache.wrap('slow', async () => await gate.promise, { hardTimeout: 20 }), { code: 'FST_RESPONSE_CACHE_WRAP_TIMEOUT' })
  gate.resolve('done')
  t.ok(await eventually(async () => await app.cache.get('slow') === 'done'))
})

import { Type } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'
import { adminGuard } from '../admin.js'
import { createBackends, type Backends, type Food, type Message, type UserMemory } from './backends.js'
import { expire, inspect, keyTag } from './operations.js'
import { validateWithTypeBox } from '../validation.js'
import { lookup, tellLookups, type Lookup } from '../value-lookup.js'

/** Seconds each kind of data is fresh: the write-up's table. */
export const DEFAULT_TTLS = { memory: 3600, history: 1800, nutrition: 86_400 }
/** The most foods one search answers: the lookup is cached per food with this many, and cut to `max`. */
export const MAX_FOODS = 25

export interface HealthBotOptions {
  /** A client from `new Redis(url)`: memory over Redis (`store: 'tiered'`). Memory alone without it. */
  redis?: Redis
  backends?: Backends
  ttl?: Partial<typeof DEFAULT_TTLS>
  /** The seed's `ENABLE_CACHE`: false sends every read to the files, the database and the API. @defaultValue true */
  enabled?: boolean
  /** The bearer token of the operations routes (`ADMIN_TOKEN`); without one they answer 401. */
  adminToken?: string
  logger?: FastifyServerOptions['logger']
}

const User = Type.Object({ userId: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) })
const Fields = Type.Record(Type.String({ pattern: '^[A-Za-z0-9_]{1,64}$' }), Type.String({ maxLength: 500 }), { maxProperties: 20, minProperties: 1 })
const Memory = Type.Object({ profile: Type.Record(Type.String(), Type.String()), preferences: Type.Record(Type.String(), Type.String()) })
const Foods = Type.Array(Type.Object({ description: Type.String(), kcalPer100g: Type.Number() }))
const Problem = Type.Object({ error: Type.String(), message: Type.Optional(Type.String()), statusCode: Type.Optional(Type.Integer()), code: Type.Optional(Type.String()) })
/** The keys the bot caches under, for the operations routes: `user_memory:u1`, `history:u1:10`, `usda:banana`. */
const CacheKey = Type.Object({ key: Type.String({ pattern: '^(user_memory:[A-Za-z0-9_-]{1,64}|history:[A-Za-z0-9_-]{1,64}:\\d{1,2}|usda:[a-z ]{1,64})$' }) })
const Entry = Type.Object({ key: Type.String(), ttl: Type.Integer(), age: Type.Integer(), size: Type.Integer(), tags: Type.Array(Type.String()) })

export async function build (options: HealthBotOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })
  validateWithTypeBox(app)
  const guard = adminGuard(options.adminToken, app.log)
  // Tiered: each instance answers from its own memory, Redis shares entries and invalidations
  // between instances, and while Redis is away the memory tier goes on answering.
  await app.register(responseCache, { namespace: 'bot', ...(options.redis === undefined ? {} : { store: 'tiered', redis: options.redis }) })
  const { files, conversations, usda } = options.backends ?? createBackends()
  const ttl = { ...DEFAULT_TTLS, ...options.ttl }
  const enabled = options.enabled ?? true
  if (!enabled) app.log.warn('the cache is off (ENABLE_CACHE=false): every read goes to the files, the database and the API')

  const userMemory = async (userId: string): Promise<Lookup<UserMemory>> => {
    const key = `user_memory:${userId}`
    return await lookup(app.cache, key, async () => await files.load(userId), { ttl: ttl.memory, tags: [`user:${userId}`, keyTag(key)], enabled })
  }
  // Every limit (10, 20, 50) shares one tag: a new message drops them all, with no key pattern.
  const history = async (userId: string, limit: number): Promise<Lookup<Message[]>> => {
    const key = `history:${userId}:${limit}`
    return await lookup(app.cache, key, async () => await conversations.history(userId, limit), { ttl: ttl.history, tags: [`history:${userId}`, keyTag(key)], enabled })
  }
  // One entry per food, whatever `max` a caller wants: the API is asked for MAX_FOODS and each caller
  // gets its first `max`, so the bot's "I ate a banana" reads what /nutrition?food=banana stored.
  // A day fresh; for a week after that, an answer from the cache when the API fails.
  const nutrition = async (food: string, max: number): Promise<Lookup<Food[]>> => {
    const key = `usda:${food}`
    const found = await lookup(app.cache, key, async () => await usda.search(food, MAX_FOODS), { ttl: ttl.nutrition, staleIfError: 7 * 86_400, tags: [keyTag(key)], enabled })
    return { ...found, value: found.value.slice(0, max) }
  }

  const updateMemory = async (userId: string, part: keyof UserMemory, fields: Record<string, string>): Promise<void> => {
    await files.update(userId, part, fields)
    await app.cache.invalidate({ tags: [`user:${userId}`] })
  }
  const saveMessage = async (userId: string, role: Message['role'], text: string): Promise<void> => {
    await conversations.save(userId, role, text)
    await app.cache.invalidate({ tags: [`history:${userId}`] })
  }

  app.get('/users/:userId/memory', { schema: { params: User, response: { 200: Memory, 400: Problem } } }, async (request, reply) => {
    const found = await userMemory((request.params as { userId: string }).userId)
    tellLookups(reply, [['memory', found]])
    return found.value
  })
  for (const part of ['profile', 'preferences'] as const) {
    app.put(`/users/:userId/${part}`, { schema: { params: User, body: Fields, response: { 200: Memory, 400: Problem } } }, async (request, reply) => {
      const { userId } = request.params as { userId: string }
      await updateMemory(userId, part, request.body as Record<string, string>)
      const found = await userMemory(userId)
      tellLookups(reply, [['memory', found]])
      return found.value
    })
  }
  app.get('/users/:userId/history', {
    schema: {
      params: User,
      querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 50, default: 20 }) }, { additionalProperties: false }),
      response: { 200: Type.Array(Type.Object({ role: Type.String(), text: Type.String(), at: Type.String({ format: 'date-time' }) })), 400: Problem }
    }
  }, async (request, reply) => {
    const found = await history((request.params as { userId: string }).userId, (request.query as { limit: number }).limit)
    tellLookups(reply, [['history', found]])
    return found.value
  })

  // The bot: saves the message, answers from the user's memory, the recent history and, when the
  // message says what was eaten, the nutrition data.
  app.post('/users/:userId/messages', {
    schema: {
      params: User,
      body: Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ reply: Type.String() }), 400: Problem }
    }
  }, async (request, reply) => {
    const { userId } = request.params as { userId: string }
    const { text } = request.body as { text: string }
    await saveMessage(userId, 'user', text)
    const [memory, recent] = await Promise.all([userMemory(userId), history(userId, 10)])
    const lookups: Array<[string, Lookup<unknown>]> = [['memory', memory], ['history', recent]]
    let answer = `Noted, ${memory.value.profile.name ?? 'friend'}. Recent messages: ${recent.value.length}.`
    const food = /\bate (?:an? )?([a-z]+)/i.exec(text)?.[1]?.toLowerCase()
    if (food !== undefined) {
      const found = await nutrition(food, 1).catch(() => undefined)
      if (found !== undefined) lookups.push(['nutrition', found])
      if (found === undefined) answer += ` I cannot look up ${food} right now.`
      else answer += found.value.length === 0 ? ` I do not know ${food}.` : ` ${found.value[0].description}: ${found.value[0].kcalPer100g} kcal per 100 g.`
    }
    await saveMessage(userId, 'assistant', answer)
    tellLookups(reply, lookups)
    return { reply: answer }
  })

  app.get('/nutrition', {
    schema: {
      querystring: Type.Object({ food: Type.String({ pattern: '^[a-z ]{1,64}$' }), max: Type.Integer({ minimum: 1, maximum: MAX_FOODS, default: 5 }) }, { additionalProperties: false }),
      response: { 200: Foods, 400: Problem, 503: Problem }
    }
  }, async (request, reply) => {
    const { food, max } = request.query as { food: string, max: number }
    try {
      const found = await nutrition(food, max)
      tellLookups(reply, [['nutrition', found]])
      return found.value
    } catch {
      // Down, with nothing in the cache (or cached more than a week ago).
      return await reply.code(503).send({ error: 'the nutrition service is unavailable' })
    }
  })

  // 200 while the cache is down too: the bot works without Redis, only slower.
  app.get('/health', {
    schema: { response: { 200: Type.Object({ status: Type.String(), enabled: Type.Boolean(), cache: Type.Record(Type.String(), Type.Unknown()), values: Type.Record(Type.String(), Type.Number()) }) } }
  }, async () => ({ status: 'ok', enabled, cache: await app.cache.health(), values: app.cache.stats().values }))

  // The seed's exists / ttl / expire / delete / clear_all for an operator, behind ADMIN_TOKEN.
  const unavailable = { error: 'the cache could not be asked' }
  app.get('/cache/entries/:key', { onRequest: guard, schema: { params: CacheKey, response: { 200: Entry, 400: Problem, 401: Problem, 404: Problem, 503: Problem } } }, async (request, reply) => {
    const state = await inspect(app.cache, (request.params as { key: string }).key)
    if (state === null) return await reply.code(503).send(unavailable)
    return state ?? await reply.code(404).send({ error: 'not cached' })
  })
  app.post('/cache/entries/:key/expire', {
    onRequest: guard,
    schema: { params: CacheKey, body: Type.Object({ ttl: Type.Integer({ minimum: 1, maximum: 30 * 86_400 }) }, { additionalProperties: false }), response: { 200: Entry, 400: Problem, 401: Problem, 404: Problem } }
  }, async (request, reply) => {
    const { key } = request.params as { key: string }
    if (!await expire(app.cache, key, (request.body as { ttl: number }).ttl)) return await reply.code(404).send({ error: 'not cached' })
    return await inspect(app.cache, key) ?? await reply.code(404).send({ error: 'not cached' })
  })
  app.delete('/cache/entries/:key', { onRequest: guard, schema: { params: CacheKey, response: { 204: Type.Null(), 400: Problem, 401: Problem, 503: Problem } } }, async (request, reply) => {
    if (!await app.cache.del((request.params as { key: string }).key)) return await reply.code(503).send(unavailable)
    return await reply.code(204).send()
  })
  app.delete('/cache', { onRequest: guard, schema: { response: { 204: Type.Null(), 401: Problem, 503: Problem } } }, async (request, reply) => {
    try {
      await app.cache.clear()
    } catch (error) {
      request.log.warn({ err: error }, 'the cache could not be cleared')
      return await reply.code(503).send({ error: 'the cache could not be cleared' })
    }
    return await reply.code(204).send()
  })
  return app
}

import { Type } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'
import { createBackends, type Backends, type Message, type UserMemory } from './backends.js'

/** Seconds each kind of data is fresh: the write-up's table. */
export const DEFAULT_TTLS = { memory: 3600, history: 1800, nutrition: 86_400 }

export interface HealthBotOptions {
  /** A client from `new Redis(url)`: memory over Redis (`store: 'tiered'`). Memory alone without it. */
  redis?: Redis
  backends?: Backends
  ttl?: Partial<typeof DEFAULT_TTLS>
  logger?: FastifyServerOptions['logger']
}

const User = Type.Object({ userId: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) })
const Fields = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 500 }), { maxProperties: 20 })

export async function build (options: HealthBotOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })
  // Tiered: each instance answers from its own memory, Redis shares entries and invalidations
  // between instances, and while Redis is away the memory tier goes on answering.
  await app.register(responseCache, { namespace: 'bot', ...(options.redis === undefined ? {} : { store: 'tiered', redis: options.redis }) })
  const { files, conversations, usda } = options.backends ?? createBackends()
  const ttl = { ...DEFAULT_TTLS, ...options.ttl }

  const userMemory = async (userId: string): Promise<UserMemory> =>
    await app.cache.wrap(`user_memory:${userId}`, async () => await files.load(userId), { ttl: ttl.memory, tags: [`user:${userId}`] })
  // Every limit (10, 20, 50) shares one tag: a new message drops them all, with no key pattern.
  const history = async (userId: string, limit: number): Promise<Message[]> =>
    await app.cache.wrap(`history:${userId}:${limit}`, async () => await conversations.history(userId, limit), { ttl: ttl.history, tags: [`history:${userId}`] })
  // A day fresh; for a week after that, an answer from the cache when the API fails.
  const nutrition = async (food: string, max: number): Promise<Awaited<ReturnType<typeof usda.search>>> =>
    await app.cache.wrap(`usda:${food}:${max}`, async () => await usda.search(food, max), { ttl: ttl.nutrition, staleIfError: 7 * 86_400 })

  const updateMemory = async (userId: string, part: keyof UserMemory, fields: Record<string, string>): Promise<void> => {
    await files.update(userId, part, fields)
    await app.cache.invalidate({ tags: [`user:${userId}`] })
  }
  const saveMessage = async (userId: string, role: Message['role'], text: string): Promise<void> => {
    await conversations.save(userId, role, text)
    await app.cache.invalidate({ tags: [`history:${userId}`] })
  }

  app.get('/users/:userId/memory', { schema: { params: User } }, async (request) => await userMemory((request.params as { userId: string }).userId))
  app.put('/users/:userId/profile', { schema: { params: User, body: Fields } }, async (request) => {
    const { userId } = request.params as { userId: string }
    await updateMemory(userId, 'profile', request.body as Record<string, string>)
    return await userMemory(userId)
  })
  app.put('/users/:userId/preferences', { schema: { params: User, body: Fields } }, async (request) => {
    const { userId } = request.params as { userId: string }
    await updateMemory(userId, 'preferences', request.body as Record<string, string>)
    return await userMemory(userId)
  })
  app.get('/users/:userId/history', {
    schema: { params: User, querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 50, default: 20 }) }) }
  }, async (request) => await history((request.params as { userId: string }).userId, (request.query as { limit: number }).limit))

  // The bot: saves the message, answers from the user's memory, the recent history and, when the
  // message says what was eaten, the nutrition data.
  app.post('/users/:userId/messages', {
    schema: { params: User, body: Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000 }) }) }
  }, async (request) => {
    const { userId } = request.params as { userId: string }
    const { text } = request.body as { text: string }
    await saveMessage(userId, 'user', text)
    const [memory, recent] = await Promise.all([userMemory(userId), history(userId, 10)])
    let reply = `Noted, ${memory.profile.name ?? 'friend'}. Recent messages: ${recent.length}.`
    const food = /\bate (?:an? )?([a-z]+)/i.exec(text)?.[1]?.toLowerCase()
    if (food !== undefined) {
      const found = await nutrition(food, 1).catch(() => undefined)
      if (found === undefined) reply += ` I cannot look up ${food} right now.`
      else reply += found.length === 0 ? ` I do not know ${food}.` : ` ${found[0].description}: ${found[0].kcalPer100g} kcal per 100 g.`
    }
    await saveMessage(userId, 'assistant', reply)
    return { reply }
  })

  app.get('/nutrition', {
    schema: { querystring: Type.Object({ food: Type.String({ pattern: '^[a-z ]{1,64}$' }), max: Type.Integer({ minimum: 1, maximum: 25, default: 5 }) }) }
  }, async (request, reply) => {
    const { food, max } = request.query as { food: string, max: number }
    try {
      return await nutrition(food, max)
    } catch {
      // Down, with nothing in the cache (or cached more than a week ago).
      return await reply.code(503).send({ error: 'the nutrition service is unavailable' })
    }
  })

  // 200 while the cache is down too: the bot works without Redis, only slower.
  app.get('/health', async () => ({ status: 'ok', cache: await app.cache.health(), values: app.cache.stats().values }))
  return app
}

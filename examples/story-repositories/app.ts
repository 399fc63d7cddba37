import { Type, type TObject } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'
import { CachedRepository, type CachePolicy } from './cached-repository.js'
import { createDatabase, type Database, type Table } from './database.js'

export interface StoryAppOptions {
  /** A client from `new Redis(url)`: the cache lives there, shared by every instance. Memory without it. */
  redis?: Redis
  /** The "database"; a test passes its own to count queries. */
  database?: Database
  logger?: FastifyServerOptions['logger']
}

const Text = Type.String({ minLength: 1, maxLength: 200 })
const Id = Type.Object({ id: Type.String({ maxLength: 64 }) })

/** A cached repository over `table`, and its routes: GET one or a list (filtered by one of `policy.listedBy`), POST, PUT, DELETE. */
function resource<T extends { id: string }> (app: FastifyInstance, path: string, table: Table<T>, policy: CachePolicy<T>, fields: TObject): void {
  const repository = new CachedRepository(app.cache, table, policy)
  const filters = Object.fromEntries(policy.listedBy.map((field) => [field, Type.String({ maxLength: 64 })]))
  app.get(path, { schema: { querystring: Type.Partial(Type.Object(filters, { additionalProperties: false, maxProperties: 1 })) } }, async (request) => {
    const [filter] = Object.entries(request.query as Record<string, string>)
    return await repository.list(filter === undefined ? undefined : { field: filter[0] as keyof T & string, value: filter[1] })
  })
  app.get(`${path}/:id`, { schema: { params: Id } }, async (request, reply) => {
    return await repository.findById((request.params as { id: string }).id) ?? await reply.code(404).send({ error: 'not found' })
  })
  app.post(path, { schema: { body: fields } }, async (request, reply) => {
    return await reply.code(201).send(await repository.save(request.body as Omit<T, 'id'>))
  })
  app.put(`${path}/:id`, { schema: { params: Id, body: Type.Partial(fields) } }, async (request, reply) => {
    return await repository.update((request.params as { id: string }).id, request.body as Partial<T>) ?? await reply.code(404).send({ error: 'not found' })
  })
  app.delete(`${path}/:id`, { schema: { params: Id } }, async (request, reply) => {
    return await reply.code(await repository.delete((request.params as { id: string }).id) ? 204 : 404).send()
  })
}

/** Heroes, children and their stories, each behind a cached repository; `GET /cache/stats` counts hits. */
export async function build (options: StoryAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(responseCache, {
    ...(options.redis === undefined ? {} : { store: 'redis', redis: options.redis }),
    namespace: 'stories',
    // Counters only, never keys or values; put an auth hook in statsRoute.onRequest outside a demo.
    statsRoute: true
  })
  const db = options.database ?? createDatabase()
  resource(app, '/heroes', db.heroes, { kind: 'hero', ttl: 3600, listedBy: ['language'] },
    Type.Object({ name: Text, language: Type.String({ pattern: '^[a-z]{2}$' }), description: Text }, { additionalProperties: false }))
  resource(app, '/children', db.children, { kind: 'child', ttl: 1800, listedBy: [] },
    Type.Object({ name: Text, age: Type.Integer({ minimum: 0, maximum: 18 }), interests: Type.Array(Text, { maxItems: 20 }) }, { additionalProperties: false }))
  resource(app, '/stories', db.stories, { kind: 'story', ttl: 600, listedBy: ['childId', 'language'] },
    Type.Object({ childId: Text, heroId: Text, language: Type.String({ pattern: '^[a-z]{2}$' }), title: Text }, { additionalProperties: false }))
  return app
}

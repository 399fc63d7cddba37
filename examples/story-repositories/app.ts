import { Type, type TObject, type TProperties } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'
import { adminGuard } from '../admin.js'
import { CachedRepository, type CachePolicy } from './cached-repository.js'
import { createDatabase, type Child as ChildRow, type Database, type Table } from './database.js'
import { validateWithTypeBox } from '../validation.js'
import { tellLookups, type Lookup } from '../value-lookup.js'

export interface StoryAppOptions {
  /** A client from `new Redis(url)`: the cache lives there, shared by every instance. Memory without it. */
  redis?: Redis
  /** The "database"; a test passes its own to count queries. */
  database?: Database
  /** The seed's enable flag (`CACHE_ENABLED=false`): every read goes to the database. @defaultValue true */
  enabled?: boolean
  /** The bearer token of the operations routes (`ADMIN_TOKEN`); without one they answer 401. */
  adminToken?: string
  logger?: FastifyServerOptions['logger']
}

/** Seconds each kind stays cached: the seed's table (hero 1 h, child 30 min, story 10 min). */
export const TTL = { hero: 3600, child: 1800, story: 600 }

const Text = Type.String({ minLength: 1, maxLength: 100 })
const Language = Type.String({ pattern: '^[a-z]{2}$' })
const IdParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$' }) })
/** Fastify's error answer (400 names the field: `body/age must be integer`), and the app's own 404 and 401. */
export const Problem = Type.Object({
  error: Type.String(),
  message: Type.Optional(Type.String()),
  statusCode: Type.Optional(Type.Integer()),
  code: Type.Optional(Type.String())
})

const HeroFields = Type.Object({ name: Text, language: Language, description: Text }, { additionalProperties: false })
const ChildFields = Type.Object({
  name: Text,
  age: Type.Integer({ minimum: 0, maximum: 18 }),
  gender: Type.Union([Type.Literal('female'), Type.Literal('male'), Type.Literal('other')]),
  interests: Type.Array(Text, { maxItems: 20 })
}, { additionalProperties: false })
const StoryFields = Type.Object({ childId: Text, heroId: Text, language: Language, title: Text }, { additionalProperties: false })

const entitySchema = (fields: TObject): TObject => Type.Object({ id: Type.String(), ...fields.properties as TProperties })

/** A cached repository over `table`, and its routes: GET one or a list (filtered by one of `policy.listedBy`), POST, PUT, DELETE. */
function resource<T extends { id: string }> (app: FastifyInstance, path: string, repository: CachedRepository<T>, listedBy: string[], fields: TObject): void {
  const Entity = entitySchema(fields)
  const filters = Object.fromEntries(listedBy.map((field) => [field, Type.Optional(Type.String({ minLength: 1, maxLength: 64 }))]))
  app.get(path, {
    schema: { querystring: Type.Object(filters, { additionalProperties: false, maxProperties: 1 }), response: { 200: Type.Array(Entity), 400: Problem } }
  }, async (request, reply) => {
    const [filter] = Object.entries(request.query as Record<string, string>)
    const found = await repository.list(filter === undefined ? undefined : { field: filter[0] as keyof T & string, value: filter[1] })
    tellLookups(reply, [[repository.kind, found]])
    return found.value
  })
  app.get(`${path}/:id`, { schema: { params: IdParams, response: { 200: Entity, 400: Problem, 404: Problem } } }, async (request, reply) => {
    const found = await repository.findById((request.params as { id: string }).id)
    tellLookups(reply, [[repository.kind, found]])
    return found.value ?? await reply.code(404).send({ error: 'not found' })
  })
  app.post(path, { schema: { body: fields, response: { 201: Entity, 400: Problem } } }, async (request, reply) => {
    return await reply.code(201).send(await repository.save(request.body as Omit<T, 'id'>))
  })
  app.put(`${path}/:id`, {
    schema: { params: IdParams, body: Type.Partial(fields, { additionalProperties: false, minProperties: 1 }), response: { 200: Entity, 400: Problem, 404: Problem } }
  }, async (request, reply) => {
    return await repository.update((request.params as { id: string }).id, request.body as Partial<T>) ?? await reply.code(404).send({ error: 'not found' })
  })
  app.delete(`${path}/:id`, { schema: { params: IdParams, response: { 204: Type.Null(), 400: Problem, 404: Problem } } }, async (request, reply) => {
    if (await repository.delete((request.params as { id: string }).id)) return await reply.code(204).send()
    return await reply.code(404).send({ error: 'not found' })
  })
}

/** The entity a lookup by unique fields found, if any. */
function one<T> (found: Lookup<T[]>): T | undefined {
  return found.value[0]
}

/** Heroes, children and their stories, each behind a cached repository; `GET /cache/stats` counts hits. */
export async function build (options: StoryAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })
  validateWithTypeBox(app)
  const guard = adminGuard(options.adminToken, app.log)
  await app.register(responseCache, {
    ...(options.redis === undefined ? {} : { store: 'redis', redis: options.redis }),
    namespace: 'stories',
    // Counters only, never keys or values; behind the same token as the invalidation route.
    statsRoute: { onRequest: guard }
  })
  const enabled = options.enabled ?? true
  if (!enabled) app.log.warn('the cache is off (CACHE_ENABLED=false): every read goes to the database')
  const db = options.database ?? createDatabase()
  const repository = <T extends { id: string }>(table: Table<T>, policy: CachePolicy<T>): CachedRepository<T> => new CachedRepository(app.cache, table, policy, enabled)
  const heroes = repository(db.heroes, { kind: 'hero', ttl: TTL.hero, listedBy: ['language'], lookups: [{ name: 'name', fields: ['name'] }] })
  const children = repository(db.children, {
    kind: 'child',
    ttl: TTL.child,
    listedBy: [],
    lookups: [{ name: 'name', fields: ['name'] }, { name: 'exact', fields: ['name', 'age', 'gender'] }]
  })
  const stories = repository(db.stories, { kind: 'story', ttl: TTL.story, listedBy: ['childId', 'language'], lookups: [] })
  resource(app, '/heroes', heroes, ['language'], HeroFields)
  resource(app, '/children', children, [], ChildFields)
  resource(app, '/stories', stories, ['childId', 'language'], StoryFields)

  const Hero = entitySchema(HeroFields)
  const Child = entitySchema(ChildFields)
  app.get('/heroes/by-name/:name', { schema: { params: Type.Object({ name: Text }), response: { 200: Hero, 400: Problem, 404: Problem } } }, async (request, reply) => {
    const found = await heroes.findBy('name', request.params as { name: string })
    tellLookups(reply, [['hero', found]])
    return one(found) ?? await reply.code(404).send({ error: 'not found' })
  })
  app.get('/children/by-name/:name', { schema: { params: Type.Object({ name: Text }), response: { 200: Type.Array(Child), 400: Problem } } }, async (request, reply) => {
    const found = await children.findBy('name', request.params as { name: string })
    tellLookups(reply, [['child', found]])
    return found.value
  })
  app.get('/children/exact', {
    schema: { querystring: Type.Pick(ChildFields, ['name', 'age', 'gender'], { additionalProperties: false }), response: { 200: Child, 400: Problem, 404: Problem } }
  }, async (request, reply) => {
    const found = await children.findBy('exact', request.query as Pick<ChildRow, 'name' | 'age' | 'gender'>)
    tellLookups(reply, [['child', found]])
    return one(found) ?? await reply.code(404).send({ error: 'not found' })
  })

  // The seed's invalidate_cache(): one entity (and the lists and lookups it is in), or a whole kind.
  const repositories = { hero: heroes, child: children, story: stories }
  app.post('/cache/invalidate', {
    onRequest: guard,
    schema: {
      body: Type.Object({ kind: Type.Union([Type.Literal('hero'), Type.Literal('child'), Type.Literal('story')]), id: Type.Optional(IdParams.properties.id) }, { additionalProperties: false }),
      response: { 200: Type.Object({ dropped: Type.Integer() }), 400: Problem, 401: Problem, 503: Problem }
    }
  }, async (request, reply) => {
    const { kind, id } = request.body as { kind: keyof typeof repositories, id?: string }
    const dropped = await repositories[kind].invalidate(id)
    if (dropped === undefined) return await reply.code(503).send({ error: 'the cache could not be asked; nothing was dropped' })
    return { dropped }
  })
  return app
}

// @fastify/swagger next to the cache (issue 26, point 4), registered as its README shows (OpenAPI 3,
// before the routes): the document is the same with and without the cache, served from a JSON route
// next to cached routes (as @fastify/swagger-ui serves it), and cached routes answer what their
// response schemas serialise.
import fastifySwagger from '@fastify/swagger'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import responseCache from '../../lib/index.js'
import { counter, servePair } from './helpers.js'

const PRODUCT = {
  type: 'object',
  properties: { id: { type: 'integer' }, name: { type: 'string' } }
} as const

type Order = 'swagger first' | 'cache first'

function builder (order: Order, runs: { next: () => number }): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    if (order === 'cache first' && withCache) await app.register(responseCache, { ttl: 60 })
    // The README's form, trimmed.
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.0.0',
        info: { title: 'Shop', description: 'The shop\'s API', version: '0.1.0' },
        servers: [{ url: 'http://localhost:3000', description: 'Development server' }],
        tags: [{ name: 'products', description: 'Product related end-points' }]
      }
    })
    if (order === 'swagger first' && withCache) await app.register(responseCache, { ttl: 60 })
    app.get('/documentation/json', { schema: { hide: true }, config: { cache: true } }, async () => app.swagger())
    app.get('/documentation/uncached', { schema: { hide: true } }, async () => app.swagger())
    app.get('/products/:id', {
      config: { cache: { tags: ['products'] } },
      schema: {
        description: 'A product',
        tags: ['products'],
        params: { type: 'object', properties: { id: { type: 'integer' } } },
        response: { 200: PRODUCT }
      }
    }, async (request) => {
      if (withCache) runs.next()
      // `secret` is not in the response schema: never sent, hit or miss.
      return { id: (request.params as { id: number }).id, name: 'Rake', secret: 'cost price' }
    })
    app.put('/products/:id', {
      config: { cache: { invalidate: ['products'] } },
      schema: { tags: ['products'], body: PRODUCT, response: { 200: PRODUCT } }
    }, async (request) => request.body)
    return app
  }
}

for (const order of ['swagger first', 'cache first'] as Order[]) {
  t.test(`${order}: the OpenAPI document is unchanged, cached or not; cached routes serialise by their schemas`, async (t) => {
    const runs = counter()
    const { cached, plain } = await servePair(t, builder(order, runs))
    const document = await plain('/documentation/json')
    const spec = JSON.parse(document.body) as { paths: Record<string, unknown> }
    t.same(Object.keys(spec.paths).sort(), ['/products/{id}'])

    t.match(await cached('/documentation/json'), { status: 200, cache: 'MISS', body: document.body })
    t.match(await cached('/documentation/json'), { status: 200, cache: 'HIT', body: document.body }, 'the document from the cache, byte for byte')
    t.match(await cached('/documentation/uncached'), { status: 200, body: document.body }, 'the uncached JSON route: the same document')

    const product = await plain('/products/7')
    t.equal(product.body, '{"id":7,"name":"Rake"}')
    t.match(await cached('/products/7'), { status: 200, cache: 'MISS', body: product.body })
    t.match(await cached('/products/7'), { status: 200, cache: 'HIT', body: product.body })
    t.match(await cached('/products/7', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"id":7,"name":"Hoe"}' }), { status: 200 })
    t.match(await cached('/products/7'), { status: 200, cache: 'MISS' }, 'invalidated by the PUT')
    t.match(await cached('/products/abc'), { status: 400 }, 'the params schema still validates')
    t.equal(runs.runs, 2)
  })
}

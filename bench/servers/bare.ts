// The ceiling for anything inside Fastify: a constant Buffer, no handler work, no cache.
import Fastify from 'fastify'
import { PRODUCT_JSON } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
app.get('/product', async (_request, reply) => reply.type('application/json; charset=utf-8').send(PRODUCT_JSON))
await serve(app)

// The ceiling for a POST route: Fastify reads and parses the JSON body, then sends constant bytes.
import Fastify from 'fastify'
import { PRODUCT_JSON } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
app.post('/search', async (_request, reply) => reply.type('application/json; charset=utf-8').send(PRODUCT_JSON))
await serve(app)

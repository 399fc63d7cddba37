// The slow route as users have it before caching: a 20 ms data call, then JSON serialisation.
import Fastify from 'fastify'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
app.get('/product', async () => await loadProduct())
await serve(app)

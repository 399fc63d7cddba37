// examples/reverse-proxy as it is (Fastify, @fastify/reply-from, the plugin with ttl: 'origin' on the
// memory store) in front of the origin of bench/servers/origin.ts: after the first request every GET
// is a hit. The example loads the plugin from lib/ through tsx, as `npm run example` runs it.
import { build } from '../../examples/reverse-proxy/app.js'
import { startOrigin } from './origin.js'
import { serve } from './serve.js'

const origin = await startOrigin()
const app = await build({ upstream: origin.url })
app.addHook('onClose', () => { origin.close() })
await serve(app)

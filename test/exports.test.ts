import Fastify from 'fastify'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import t from 'tap'

// The package as users load it: by name, through package.json "exports", from the built dist/.
const require = createRequire(import.meta.url)

t.test('ESM default and named exports are the same plugin', async (t) => {
  const mod = await import('fastify-response-cache')
  t.type(mod.default, 'function')
  t.equal(mod.fastifyResponseCache, mod.default)
  t.equal((mod.default as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')], 'fastify-response-cache')
})

t.test('CommonJS require gives the plugin, with default and named properties', async (t) => {
  const plugin = require('fastify-response-cache')
  t.type(plugin, 'function')
  t.equal(plugin.default, plugin)
  t.equal(plugin.fastifyResponseCache, plugin)
  t.type(plugin.MemoryStore, 'function')
  t.equal(plugin.errors.FST_RESPONSE_CACHE_INVALID_OPTION.name, 'FastifyError')
})

t.test('the CommonJS build caches a route', async (t) => {
  const plugin = require('fastify-response-cache')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(plugin)
  app.get('/', { config: { cache: true } }, async () => ({ at: process.hrtime.bigint().toString() }))
  const first = await app.inject('/')
  const second = await app.inject('/')
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.body, first.body)
})

t.test('the CommonJS entry exports everything the ESM entry does: values and types', async (t) => {
  const esm = await import('fastify-response-cache') as Record<string, unknown>
  const cjs = require('fastify-response-cache') as Record<string, unknown>
  for (const name of Object.keys(esm)) t.equal(typeof cjs[name], typeof esm[name], `value ${name}`)
  // Type-only exports leave nothing at run time: compare the declarations of the two entries.
  const esmTypes = readFileSync(new URL('../dist/esm/index.d.ts', import.meta.url), 'utf8')
  const cjsTypes = readFileSync(new URL('../dist/cjs/main.d.cts', import.meta.url), 'utf8')
  const names = [...esmTypes.matchAll(/export (?:type )?\{([^}]*)\}/g)].flatMap((m) => m[1].split(',').map((part) => part.trim().replace(/^type /, '').split(/\s+as\s+/).pop() as string)).filter((name) => name !== '')
  t.ok(names.length > 20, 'the ESM entry\'s exports were read')
  for (const name of names) t.match(cjsTypes, new RegExp(`\\b${name}\\b`), `type ${name}`)
})

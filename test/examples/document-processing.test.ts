import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { build, FREQUENT_DOCUMENTS, type DocumentProcessingOptions } from '../../examples/document-processing/app.js'
import { Backoffice } from '../../examples/document-processing/backoffice.js'
import { restartableRedis } from '../helpers/redis.js'

type Teardown = Parameters<typeof restartableRedis>[0]

const INVOICE = Buffer.from('%PDF-1.7\nInvoice number: INV-1001\nPatient: Jane Roe\nDate of service: 2024-05-01\nTotal: 120.00\n')

interface Answer { sha256: string, pages: number, text: string, fields: Record<string, string | null>, processedAt: string }

async function upload (app: FastifyInstance, tenant: string | undefined, document: Buffer, fileName = 'scan.pdf', contentType = 'application/pdf') {
  const headers: Record<string, string> = { 'content-type': contentType, 'x-file-name': fileName }
  if (tenant !== undefined) headers['x-tenant-id'] = tenant
  const response = await app.inject({ method: 'POST', url: '/documents', headers, payload: document })
  return { status: response.statusCode, xCache: response.headers['x-cache'], answer: response.json<Answer>(), bytes: response.rawPayload.length }
}

/** How often OCR and extraction really ran, from the app's own /metrics. */
async function runs (app: FastifyInstance): Promise<{ ocr: number, extraction: number }> {
  const text = (await app.inject('/metrics')).body
  const count = (stage: string): number => Number(new RegExp(`^document_pipeline_runs_total\\{stage="${stage}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
  return { ocr: count('ocr'), extraction: count('extraction') }
}

const TOKEN = 'test-admin-token'
const ADMIN = { authorization: `Bearer ${TOKEN}` }
const KEY = 'a'.repeat(64)

/** Log lines at warn and above, as the server prints them. */
function warnings (): { lines: string[], logger: DocumentProcessingOptions['logger'] } {
  const lines: string[] = []
  return { lines, logger: { level: 'warn', stream: new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } }) } }
}

async function started (t: Teardown, frequentDocuments: typeof FREQUENT_DOCUMENTS = [], options: DocumentProcessingOptions = {}) {
  const redis = await restartableRedis(t)
  await redis.start()
  const backoffice = new Backoffice(5)
  const app = await build({ redisUrl: redis.url, frequentDocuments, adminToken: TOKEN, encryptionKey: KEY, pipelineDelays: { ocrMs: 50, extractionMs: 50 }, backoffice, ...options })
  t.teardown(() => app.close())
  return { app, redis, backoffice }
}

const as = (tenant: string, userId?: string): Record<string, string> => ({ 'x-tenant-id': tenant, ...(userId === undefined ? {} : { 'x-user-id': userId }) })
async function read (app: FastifyInstance, url: string, headers: Record<string, string>) {
  const response = await app.inject({ url, headers })
  return { status: response.statusCode, xCache: response.headers['x-cache'], timing: response.headers['server-timing'], body: response.json() }
}

t.test('an identical document is processed once, whatever its file name or type', async (t) => {
  const { app } = await started(t)
  const first = await upload(app, 'acme', INVOICE, 'scan.pdf')
  t.match(first, { status: 200, xCache: 'MISS', answer: { pages: 1, fields: { invoiceNumber: 'INV-1001', total: '120.00' } } })
  t.equal(first.answer.sha256, createHash('sha256').update(INVOICE).digest('hex'), 'the answer names the digest')
  const again = await upload(app, 'acme', INVOICE, 'Copy of scan (2).pdf')
  t.match(again, { status: 200, xCache: 'HIT' })
  t.same(again.answer, first.answer, 'the stored result, not a new one')
  t.equal((await upload(app, 'acme', INVOICE, 'scan.bin', 'application/octet-stream')).xCache, 'HIT', 'the same bytes under another content type')

  const concurrent = await Promise.all(Array.from({ length: 8 }, async (_, i) => await upload(app, 'acme', Buffer.from('%PDF-1.7\nInvoice number: INV-2002\nTotal: 9.99\n'), `batch-${i}.pdf`)))
  t.ok(concurrent.every((result) => result.status === 200 && result.answer.fields.invoiceNumber === 'INV-2002'))
  t.same(await runs(app), { ocr: 2, extraction: 2 }, 'one run per distinct document, concurrent uploads included')

  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /^response_cache_requests_total\{namespace="docs",route="POST \/documents",result="hit"\} 9$/m, 'the cache counts in the app\'s own registry')
  t.match(metrics, /^response_cache_requests_total\{namespace="docs",route="POST \/documents",result="miss"\} 2$/m)
})

t.test('tenants never receive another tenant\'s result', async (t) => {
  const { app } = await started(t)
  const acme = await upload(app, 'acme', INVOICE)
  const globex = await upload(app, 'globex', INVOICE)
  t.match(acme, { xCache: 'MISS', answer: { fields: { invoiceNumber: 'INV-1001', total: '120.00' } } })
  t.match(globex, { xCache: 'MISS', answer: { fields: { patientName: 'Jane Roe', dateOfService: '2024-05-01' } } }, 'globex runs its own extraction')
  t.same((await upload(app, 'acme', INVOICE)).answer, acme.answer)
  t.same((await upload(app, 'globex', INVOICE)).answer, globex.answer)
  t.same(await runs(app), { ocr: 2, extraction: 2 })

  t.equal((await upload(app, undefined, INVOICE)).status, 401, 'no tenant, no answer')
  t.equal((await upload(app, 'initech', INVOICE)).status, 401)
  t.same(await runs(app), { ocr: 2, extraction: 2 })
})

t.test('large results are stored compressed in Redis', async (t) => {
  const { app, redis } = await started(t)
  const pages = Array.from({ length: 40 }, (_, page) => `Page ${page + 1}\nLine item: consultation, 1 x 120.00\nLine item: laboratory panel, 1 x 45.50\n`)
  const document = Buffer.from('%PDF-1.7\nInvoice number: INV-3003\n' + pages.join('\f'))
  const first = await upload(app, 'acme', document)
  t.match(first, { xCache: 'MISS', answer: { pages: 40 } })
  t.ok(first.bytes > 2048, `a large answer (${first.bytes} bytes)`)

  const client = new Redis(redis.url)
  t.teardown(() => { client.disconnect() })
  const [key, ...others] = await client.keys('docs:*:POST:*')
  t.equal(others.length, 0)
  const stored = await client.strlen(key)
  // lz4-packed, with the br and gzip codings the cache serves browsers: together still less than the answer.
  t.ok(stored < first.bytes, `stored in ${stored} bytes, the answer ${first.bytes}`)
  t.same((await upload(app, 'acme', document)).answer, first.answer, 'and answered whole')
})

t.test('frequent documents are processed before traffic', async (t) => {
  const { app } = await started(t, FREQUENT_DOCUMENTS)
  t.same(await runs(app), { ocr: 2, extraction: 2 }, 'one run each, before build() returned')
  for (const { tenant, contentType, bytes } of FREQUENT_DOCUMENTS) {
    t.match(await upload(app, tenant, bytes, 'template.pdf', contentType), { status: 200, xCache: 'HIT' })
  }
  t.equal((await upload(app, 'globex', FREQUENT_DOCUMENTS[0].bytes)).xCache, 'MISS', 'warmed for its tenant only')
})

t.test('with Redis stopped, documents are processed and answered', async (t) => {
  const { app, redis } = await started(t)
  t.equal((await upload(app, 'acme', INVOICE)).xCache, 'MISS')
  await redis.stop()
  for (let i = 0; i < 2; i++) {
    t.match(await upload(app, 'acme', INVOICE), { status: 200, xCache: 'BYPASS', answer: { fields: { invoiceNumber: 'INV-1001' } } })
  }
  t.same(await runs(app), { ocr: 3, extraction: 3 }, 'each by the pipeline')
  t.equal((await app.inject('/metrics')).statusCode, 200)
})

t.test('bad uploads answer 400 before any OCR, and store nothing', async (t) => {
  const { app } = await started(t)
  const bad: Array<[string, Record<string, string>, string | Buffer, RegExp]> = [
    ['a JSON body', { 'content-type': 'application/json' }, JSON.stringify({ document: INVOICE.toString() }), /takes the document's bytes as application\/pdf.*; not application\/json/],
    ['a form', { 'content-type': 'application/x-www-form-urlencoded' }, 'document=x', /not application\/x-www-form-urlencoded/],
    ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, '--x\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\nx\r\n--x--\r\n', /not multipart\/form-data/],
    ['an empty document', { 'content-type': 'application/pdf' }, Buffer.alloc(0), /the document is empty/],
    ['a query the route does not take', { 'content-type': 'application/pdf' }, INVOICE, /querystring\/ocr Unexpected property/],
    ['a user id that is no id', { 'content-type': 'application/pdf', 'x-user-id': 'u 1' }, INVOICE, /headers\/x-user-id Expected string to match/]
  ]
  for (const [what, headers, payload, message] of bad) {
    const url = what.startsWith('a query') ? '/documents?ocr=false' : '/documents'
    const response = await app.inject({ method: 'POST', url, headers: { ...as('acme'), ...headers }, payload })
    t.equal(response.statusCode, 400, what)
    t.match(response.json(), { message }, `${what}: the message says what is wrong`)
  }
  t.same(await runs(app), { ocr: 0, extraction: 0 }, 'no OCR ran')
  t.same((await app.cache.list({ route: 'POST /documents' }))?.entries, [], 'nothing was stored')
  t.equal((await upload(app, 'acme', INVOICE)).xCache, 'MISS', 'the first good upload is a miss')
})

t.test('the same bytes sent as text/plain and as a file share one entry', async (t) => {
  const { app } = await started(t)
  const text = Buffer.from('Invoice number: INV-7\nTotal: 99.00\n')
  t.equal((await upload(app, 'acme', text, 'a.pdf', 'application/pdf')).xCache, 'MISS')
  const asText = await upload(app, 'acme', text, 'a.txt', 'text/plain; charset=utf-8')
  t.match(asText, { status: 200, xCache: 'HIT', answer: { fields: { invoiceNumber: 'INV-7' } } })
  t.same(await runs(app), { ocr: 1, extraction: 1 })
})

t.test('an answer over maxEntryBytes is served, not stored, and said at warn; 4 MB fits the bound chosen', async (t) => {
  const { lines, logger } = warnings()
  const { app } = await started(t, [], { maxEntryBytes: 64 * 1024, logger })
  const large = Buffer.from('%PDF-1.7\nInvoice number: INV-BIG\n' + 'Line item: consultation, 1 x 120.00\n'.repeat(3000))
  for (let i = 0; i < 2; i++) t.match(await upload(app, 'acme', large), { status: 200, xCache: 'MISS', answer: { fields: { invoiceNumber: 'INV-BIG' } } })
  t.same(await runs(app), { ocr: 2, extraction: 2 }, 'every upload runs OCR again')
  const warned = lines.filter((line) => line.includes('too large to cache'))
  t.equal(warned.length, 2, 'one warn line per answer not stored')
  t.match(JSON.parse(warned[0]), { maxEntryBytes: 64 * 1024, bytes: Number })

  const { app: defaults } = await started(t)
  const scan = Buffer.from('%PDF-1.7\nInvoice number: INV-4MB\n' + 'x'.repeat(4 * 1024 * 1024))
  t.match(await upload(defaults, 'acme', scan), { xCache: 'MISS' })
  t.match(await upload(defaults, 'acme', scan), { xCache: 'HIT', answer: { fields: { invoiceNumber: 'INV-4MB' } } }, 'a 4 MB answer is stored under the 8 MiB bound')
  t.same(await runs(defaults), { ocr: 1, extraction: 1 })
})

t.test('entries are sealed in Redis: no document text, no patient name in what Redis holds', async (t) => {
  const { app, redis } = await started(t)
  t.match(await upload(app, 'globex', INVOICE), { xCache: 'MISS', answer: { fields: { patientName: 'Jane Roe' } } })
  t.equal((await upload(app, 'globex', INVOICE)).xCache, 'HIT', 'and opened again')
  t.equal((await read(app, '/session', as('globex', 'u1'))).status, 200)
  const client = new Redis(redis.url)
  t.teardown(() => { client.disconnect() })
  const keys = (await client.keys('docs:*')).filter((key) => /:(POST|v):/.test(key))
  t.equal(keys.length, 2, 'the answer and the session')
  for (const key of keys) {
    const stored = await client.getBuffer(key) as Buffer
    t.notOk(stored.includes('Jane Roe') || stored.includes('INV-1001') || stored.includes('reviewer'), 'nothing readable')
  }
  t.match((await read(app, '/health', {})).body, { status: 'ok', environment: 'development', cache: { ok: true, store: 'redis', state: 'up' }, encryption: { sealed: true, keyId: 'k1', developmentKey: false } })
})

t.test('the encryption key comes from the environment: a development default that warns, required in production', async (t) => {
  const { lines, logger } = warnings()
  const { app } = await started(t, [], { encryptionKey: undefined, logger })
  t.match(lines.join(''), /CACHE_ENCRYPTION_KEY is not set/)
  t.match((await read(app, '/health', {})).body, { encryption: { keyId: 'dev', developmentKey: true } })
  await t.rejects(build({ environment: 'production', frequentDocuments: [] }), /CACHE_ENCRYPTION_KEY is required in production/)
  await t.rejects(build({ encryptionKey: 'too short', frequentDocuments: [] }), /encryption/)
})

t.test('configuration per environment: development keeps documents an hour, staging and production the seed\'s 7 days', async (t) => {
  for (const [environment, longest, shortest] of [['development', 3600, 3500], ['staging', 7 * 86_400, 7 * 86_400 - 100]] as const) {
    const { app } = await started(t, [], { environment })
    await upload(app, 'acme', INVOICE)
    const [entry] = (await app.cache.list({ route: 'POST /documents' }))?.entries ?? []
    t.ok(entry.ttl <= longest && entry.ttl > shortest, `${environment}: ttl ${entry.ttl}`)
  }
})

t.test('the seed\'s other caches: session (a value), document list, dashboard, billing, reference data', async (t) => {
  const { app, backoffice } = await started(t)
  t.match(await read(app, '/session', as('acme', 'u1')), { status: 200, timing: /^cache;desc=miss/, body: { userId: 'u1', tenant: 'acme' } })
  t.match(await read(app, '/session', as('acme', 'u1')), { timing: /^cache;desc=hit/ })
  t.match(await read(app, '/session', as('globex', 'u1')), { timing: /^cache;desc=miss/, body: { tenant: 'globex' } }, 'sessions are per tenant')
  for (let i = 0; i < 2; i++) {
    await read(app, '/documents', as('acme'))
    await read(app, '/dashboard', as('acme', 'u1'))
    await read(app, '/dashboard', as('acme', 'u2'))
    await read(app, '/billing', as('acme'))
    await read(app, '/reference/countries', as('acme'))
    await read(app, '/reference/countries', as('globex'))
  }
  t.same(backoffice.queries, { documents: 1, sessions: 2, dashboard: 2, billing: 1, reference: 1 }, 'dashboards per user, reference data shared by tenants')
  t.equal((await read(app, '/dashboard', as('acme'))).status, 400, 'a dashboard needs its user')
  t.equal((await read(app, '/billing', as('initech'))).status, 401)

  // A processed document runs the rule `document-processed`: lists, dashboards and billing of its tenant.
  await app.inject({ method: 'POST', url: '/documents', headers: { ...as('acme', 'u1'), 'content-type': 'application/pdf' }, payload: INVOICE })
  t.match(await read(app, '/dashboard', as('acme', 'u1')), { xCache: 'MISS', body: { documents: 1, pages: 1, mine: 1 } })
  t.match(await read(app, '/billing', as('acme')), { xCache: 'MISS', body: { pages: 1, amount: 0.05 } })
  t.match(await read(app, '/documents', as('acme')), { xCache: 'MISS', body: [{ pages: 1 }] })
  t.equal((await read(app, '/reference/countries', as('acme'))).xCache, 'HIT', 'reference data is not touched')
})

t.test('invalidation by rule, by user, by tag, by tenant, and clear, behind ADMIN_TOKEN', async (t) => {
  const { app, backoffice } = await started(t)
  const admin = async (method: 'POST' | 'DELETE', url: string, payload?: object, headers: Record<string, string> = ADMIN) => await app.inject({ method, url, payload, headers })
  const fill = async (): Promise<void> => {
    for (const tenant of ['acme', 'globex']) {
      await upload(app, tenant, INVOICE)
      for (const user of ['u1', 'u2']) {
        await read(app, '/session', as(tenant, user))
        await read(app, '/dashboard', as(tenant, user))
      }
      await read(app, '/billing', as(tenant))
    }
    await read(app, '/reference/countries', as('acme'))
  }
  await fill()
  t.equal((await admin('DELETE', '/cache', undefined, {})).statusCode, 401, 'no token')
  t.equal((await admin('POST', '/cache/rules/extraction-changed', { tenant: 'acme' }, { authorization: 'Bearer nope' })).statusCode, 401, 'a wrong token')
  t.equal((await admin('POST', '/cache/rules/no-such-rule', {})).statusCode, 400)
  t.equal((await admin('POST', '/cache/rules/extraction-changed', {})).statusCode, 400, 'a tenant rule needs its tenant')

  t.same((await admin('POST', '/cache/rules/extraction-changed', { tenant: 'acme' })).json(), { dropped: 1 })
  t.equal((await upload(app, 'acme', INVOICE)).xCache, 'MISS', 'acme\'s documents are processed again')
  t.equal((await upload(app, 'globex', INVOICE)).xCache, 'HIT', 'globex\'s are not')
  // That upload ran the rule `document-processed` for acme: its dashboards and billing are read again.
  t.equal((await read(app, '/dashboard', as('acme', 'u1'))).xCache, 'MISS')
  await read(app, '/billing', as('acme'))

  t.same((await admin('DELETE', '/cache/users/u1?tenant=acme')).json(), { dropped: 2 }, 'u1\'s session and dashboard in acme')
  t.match(await read(app, '/session', as('acme', 'u1')), { timing: /desc=miss/ })
  t.match(await read(app, '/session', as('acme', 'u2')), { timing: /desc=hit/ })
  t.match(await read(app, '/session', as('globex', 'u1')), { timing: /desc=hit/ })

  const billing = backoffice.queries.billing
  t.same((await admin('DELETE', '/cache/tags/billing')).json(), { dropped: 2 }, 'billing of every tenant')
  await read(app, '/billing', as('globex'))
  t.equal(backoffice.queries.billing, billing + 1)
  t.same((await admin('POST', '/cache/rules/reference-updated', {})).json(), { dropped: 1 })

  t.ok((await admin('DELETE', '/cache/tenants/globex')).json().dropped >= 5, 'everything of globex')
  t.equal((await upload(app, 'globex', INVOICE)).xCache, 'MISS')
  t.equal((await admin('DELETE', '/cache')).statusCode, 204)
  t.same((await app.cache.list({ route: 'POST /documents' }))?.entries, [], 'cleared')
})

t.test('without ADMIN_TOKEN the server warns at start and the operations routes answer 401', async (t) => {
  const { lines, logger } = warnings()
  const { app } = await started(t, [], { adminToken: '', logger })
  t.match(lines.join(''), /ADMIN_TOKEN is not set/)
  t.same((await app.inject({ method: 'DELETE', url: '/cache', headers: { authorization: 'Bearer ' } })).json(), { error: 'set ADMIN_TOKEN to use this route' })
})

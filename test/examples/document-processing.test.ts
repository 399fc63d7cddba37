import { createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { build, FREQUENT_DOCUMENTS } from '../../examples/document-processing/app.js'
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
  const count = (stage: string): number => Number(new RegExp(`^document_pipeline_runs_total\\{stage="${stage}"\\} (\\d+)$`, 'm').exec(text)?.[1])
  return { ocr: count('ocr'), extraction: count('extraction') }
}

async function started (t: Teardown, frequentDocuments: typeof FREQUENT_DOCUMENTS = []) {
  const redis = await restartableRedis(t)
  await redis.start()
  const app = await build({ redisUrl: redis.url, frequentDocuments })
  t.teardown(() => app.close())
  return { app, redis }
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
  t.ok(stored < first.bytes / 2, `stored in ${stored} bytes`)
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

// The dashboard in headless Chromium (Debian's, driven by puppeteer-core) over a real socket, under
// @fastify/helmet's Content-Security-Policy. Chromium is required: .ci/run installs it; without it
// this test fails, saying so. DASHBOARD_SCREENSHOT=1 writes docs/dashboard.png.
import t from 'tap'
import Fastify, { type onRequestHookHandler } from 'fastify'
import helmet from '@fastify/helmet'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import responseCache from '../lib/index.js'
import { counter } from './helpers/app.js'

function chromiumPath (): string {
  const given = process.env.CHROME_PATH
  const candidates = given !== undefined && given !== ''
    ? [given]
    : ['/usr/bin/chromium', ...(process.env.PATH ?? '').split(delimiter).flatMap((dir) => [join(dir, 'chromium'), join(dir, 'chromium-browser')])]
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {}
  }
  throw new Error(`Chromium not found (tried ${candidates.slice(0, 3).join(', ')}...): the dashboard test needs it. Install it (apt-get install chromium; .ci/run does) or set CHROME_PATH.`)
}

const TOKEN = 'Bearer dashboard-browser-test'
const guard: onRequestHookHandler = async (request, reply) => {
  if (request.headers.authorization !== TOKEN) await reply.code(401).send({ error: 'Unauthorized' })
}
// A tag from users, shaped to run script if the page ever wrote it as HTML.
const HOSTILE_TAG = '<img src=x onerror="document.title=1">'

const percent = (ratio: number): string => (ratio * 100).toFixed(1) + '%'

t.test('the dashboard under a strict CSP: no errors, the JSON\'s numbers, invalidation from the page', async (t) => {
  const executablePath = chromiumPath()
  const runs = counter()
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  // helmet's defaults, with style-src narrowed to 'self' (its default also allows inline styles).
  await app.register(helmet, { contentSecurityPolicy: { directives: { 'style-src': ["'self'"] } } })
  await app.register(responseCache, { statsRoute: { onRequest: guard, dashboard: true } })
  app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as { id: string }).id}`, 'items'] } } }, async () => ({ run: runs.next() }))
  app.get('/hostile', { config: { cache: { tags: [HOSTILE_TAG] } } }, async () => 'h')
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const get = async (path: string, headers: Record<string, string> = {}): Promise<Response> => await fetch(base + path, { headers })

  for (const path of ['/items/1', '/items/1', '/items/1', '/items/2', '/hostile']) await get(path)
  await get('/items/2', { authorization: 'Bearer someone' })
  t.equal(runs.runs, 3, 'two misses and a bypass')

  const browser: Browser = await puppeteer.launch({ executablePath, args: ['--no-sandbox', '--headless=new'] })
  t.teardown(async () => { await browser.close() })
  const page: Page = await browser.newPage()
  await page.setViewport({ width: 1200, height: 900 })
  const problems: string[] = []
  page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warn') problems.push(`console ${message.type()}: ${message.text()}`) })
  page.on('pageerror', (error) => { problems.push(`page error: ${String(error)}`) })
  page.on('requestfailed', (request) => { problems.push(`request failed: ${request.url()}`) })
  page.on('response', (response) => { if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`) })
  // Set up outside the page's CSP, by the browser: every violation, whatever the console says.
  // (The page's code runs in Chromium: written as strings, since these tests' types know no DOM.)
  await page.evaluateOnNewDocument(`
    window.cspViolations = []
    document.addEventListener('securitypolicyviolation', (event) => { window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI) })
  `)
  await page.setExtraHTTPHeaders({ authorization: TOKEN })
  let dialogs: string[] = []
  let accept = false
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message())
    const answered = accept ? dialog.accept() : dialog.dismiss()
    answered.catch((error: Error) => { problems.push(`dialog: ${error.message}`) })
  })

  const answer = await page.goto(`${base}/cache/stats/dashboard`)
  const csp = answer?.headers()['content-security-policy']
  t.match(csp, /(^|;)script-src 'self'(;|$)/)
  t.match(csp, /(^|;)style-src 'self'(;|$)/)
  t.match(csp, /(^|;)script-src-attr 'none'(;|$)/)
  await page.waitForSelector('body[data-loaded="true"]')

  const stats: any = await (await get('/cache/stats', { authorization: TOKEN })).json()
  // Each row's cells by their data-k, as text.
  const cells = async (selector: string): Promise<Array<Record<string, string>>> => await page.evaluate(`[...document.querySelectorAll(${JSON.stringify(selector)})]
    .map((row) => Object.fromEntries([...row.querySelectorAll('td[data-k]')].map((td) => [td.dataset.k, td.textContent.trim()])))`) as Array<Record<string, string>>
  const rowCount = async (selector: string, n: number): Promise<void> => { await page.waitForFunction(`document.querySelectorAll(${JSON.stringify(selector)}).length === ${n}`) }

  const [total] = await cells('#total tbody tr')
  for (const name of ['hits', 'stale', 'misses', 'bypasses', 'stores', 'errors']) t.equal(total[name], String(stats.total[name]), `total ${name}`)
  t.equal(total.hitRatio, percent(stats.total.hitRatio))
  t.same(stats.total, { hits: 2, misses: 3, stale: 0, bypasses: 1, stores: 3, errors: 0, hitRatio: 0.4 }, 'the traffic above')

  const [store] = await cells('#store tbody tr')
  t.equal(store.name, 'memory')
  t.equal(store.state, 'up')
  t.equal(store.entries, String(stats.store.entries))
  t.equal(store.bytes, String(stats.store.bytes))
  t.match(store.latencyMs, /^\d+(\.\d+)?$/, 'the ping\'s latency')

  const routes = await page.evaluate('[...document.querySelectorAll("#routes tbody tr")].map((row) => row.dataset.route)') as string[]
  t.same(routes, Object.keys(stats.routes).sort())
  const rows = await cells('#routes tbody tr')
  for (const [i, id] of routes.entries()) {
    const json = stats.routes[id]
    for (const name of ['hits', 'stale', 'misses', 'bypasses', 'errors']) t.equal(rows[i][name], String(json[name]), `${id} ${name}`)
    t.equal(rows[i].hitRatio, percent(json.hitRatio))
    t.equal(rows[i].recentHitRatio, percent(stats.recent.routes[id].hitRatio), `${id}: the recent hit ratio`)
  }
  t.equal(rows[routes.indexOf('GET /items/:id')].recentHitRatio, percent(2 / 4))

  // Entries by tag, through the form: a hostile tag is shown as text.
  await page.select('#list-form select', 'tag')
  await page.type('#list-form input', HOSTILE_TAG)
  await page.click('#list-form button')
  await rowCount('#entries tbody tr', 1)
  const [hostile] = await cells('#entries tbody tr')
  t.equal(hostile.tags, HOSTILE_TAG, 'shown as the text it is')
  t.equal(hostile.path, 'GET /hostile')
  t.equal(await page.$('img'), null, 'never made an element')
  t.not(await page.title(), '1')

  // Entries by route, from the route's row; then invalidation from the page, dismissed first.
  const itemsRow = `#routes tbody tr:nth-child(${routes.indexOf('GET /items/:id') + 1})`
  await page.click(`${itemsRow} button:first-of-type`)
  await rowCount('#entries tbody tr', 2)
  t.same((await cells('#entries tbody tr')).map((entry) => entry.path).sort(), ['GET /items/1', 'GET /items/2'])

  await page.select('#invalidate-form select', 'tag')
  await page.type('#invalidate-form input', 'item:1')
  await page.click('#invalidate-form button')
  t.same(dialogs, ['Drop every entry of tag item:1?'], 'asked first')
  await get('/items/1')
  t.equal(runs.runs, 3, 'dismissed: nothing dropped, still a hit')

  accept = true
  dialogs = []
  await page.click('#invalidate-form button')
  await page.waitForFunction('document.getElementById("invalidate-status").textContent !== ""')
  t.equal(await page.$eval('#invalidate-status', (line) => line.textContent), 'dropped 1 entries of tag item:1', await page.$eval('#invalidate-status', (line) => line.textContent ?? ''))
  t.same(dialogs, ['Drop every entry of tag item:1?'])
  t.same((await cells('#entries tbody tr')).map((entry) => entry.path), ['GET /items/2'], 'the listing is read again')
  const after = await get('/items/1')
  t.equal(after.headers.get('x-cache'), 'MISS', 'the next request is a miss')
  t.equal(runs.runs, 4)

  if (process.env.DASHBOARD_SCREENSHOT === '1') {
    await get('/items/1')
    await page.evaluate('document.querySelector("#list-form input").value = ""')
    await page.type('#list-form input', 'items')
    await page.click('#list-form button')
    await rowCount('#entries tbody tr', 2)
    await page.click('#refresh')
    await page.waitForFunction('document.getElementById("status").textContent.startsWith("updated")')
    await page.screenshot({ path: fileURLToPath(new URL('../docs/dashboard.png', import.meta.url)), fullPage: true })
  }

  t.same(await page.evaluate('window.cspViolations'), [], 'no CSP violation')
  t.same(problems, [], 'no console error, page error or failed request')
})

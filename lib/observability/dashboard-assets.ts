// The dashboard's page, script and style, served as three routes (no build step, no external
// assets, nothing inline: it works under a Content-Security-Policy of script-src 'self' and
// style-src 'self'). The script writes data only through textContent and attributes, never HTML.

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Response cache</title>
<link rel="icon" href="dashboard.svg">
<link rel="stylesheet" href="dashboard.css">
<script src="dashboard.js" defer></script>
</head>
<body>
<header><h1>Response cache</h1><button id="refresh" type="button">Refresh</button> <span id="status" role="status"></span></header>
<section>
<h2>Totals</h2>
<table id="total"><thead><tr><th>hits</th><th>stale</th><th>misses</th><th>bypasses</th><th>stores</th><th>errors</th><th>hit ratio</th></tr></thead><tbody></tbody></table>
</section>
<section>
<h2>Store</h2>
<table id="store"><thead><tr><th>store</th><th>state</th><th>latency (ms)</th><th>entries</th><th>bytes</th><th>evictions</th></tr></thead><tbody></tbody></table>
</section>
<section>
<h2>Routes</h2>
<table id="routes"><thead><tr><th>route</th><th>hits</th><th>stale</th><th>misses</th><th>bypasses</th><th>errors</th><th>hit ratio</th><th id="recent-head">recent hit ratio</th><th></th></tr></thead><tbody></tbody></table>
</section>
<section>
<h2>Entries</h2>
<form id="list-form">
<select name="by" aria-label="list by"><option value="route">route</option><option value="tag">tag</option><option value="tenant">tenant</option></select>
<input name="value" required aria-label="route, tag or tenant" placeholder="GET /items/:id, a tag or a tenant">
<button type="submit">List</button>
</form>
<p id="list-status" role="status"></p>
<table id="entries"><thead><tr><th>kind</th><th>path</th><th>route</th><th>status</th><th>age (s)</th><th>ttl (s)</th><th>size</th><th>tags</th></tr></thead><tbody></tbody></table>
<button id="more" type="button" hidden>More</button>
</section>
<section>
<h2>Invalidate</h2>
<form id="invalidate-form">
<select name="by" aria-label="invalidate by"><option value="tag">tag</option><option value="route">route</option></select>
<input name="value" required aria-label="tag or route" placeholder="a tag, or GET /items/:id">
<button type="submit">Invalidate</button>
</form>
<p id="invalidate-status" role="status"></p>
</section>
</body>
</html>
`

export const DASHBOARD_CSS = `body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem 2rem; color: #222; background: #fff; }
h1 { display: inline-block; margin: 0 1rem 0 0; font-size: 1.4rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; font-family: ui-monospace, monospace; }
meter { width: 6rem; vertical-align: middle; }
.error { color: #b00; }
form { margin-bottom: 0.5rem; }
input { width: 22rem; }
`

export const DASHBOARD_JS = `'use strict'
;(() => {
  // The page lives at <stats path>/dashboard: the stats route and the dashboard's are next to it.
  const base = location.pathname.replace(/\\/dashboard$/, '')
  const byId = (id) => document.getElementById(id)
  const cell = (text, kind) => {
    const td = document.createElement('td')
    td.textContent = String(text)
    if (kind !== undefined) td.dataset.k = kind
    return td
  }
  const percent = (ratio) => (ratio * 100).toFixed(1) + '%'
  const say = (id, text, failed) => {
    const line = byId(id)
    line.textContent = text
    line.classList.toggle('error', failed === true)
  }

  async function call (url, init) {
    const response = await fetch(url, { credentials: 'same-origin', ...init, headers: { accept: 'application/json', ...(init && init.headers) } })
    const body = await response.json().catch(() => ({}))
    if (!response.ok) throw new Error(body.message || body.error || String(response.status))
    return body
  }

  const COUNTERS = ['hits', 'stale', 'misses', 'bypasses', 'errors']

  function showTotals (total) {
    const row = document.createElement('tr')
    for (const name of [...COUNTERS.slice(0, 4), 'stores', 'errors']) row.append(cell(total[name], name))
    row.append(cell(percent(total.hitRatio), 'hitRatio'))
    byId('total').tBodies[0].replaceChildren(row)
  }

  function showStore (store, health) {
    const row = document.createElement('tr')
    row.append(cell(store.name, 'name'))
    const state = cell(health.ok ? health.state : health.state + ': ' + (health.error || 'not answering'), 'state')
    if (!health.ok) state.className = 'error'
    row.append(state, cell(health.latencyMs === undefined ? '-' : health.latencyMs, 'latencyMs'))
    for (const name of ['entries', 'bytes', 'evictions']) row.append(cell(store[name], name))
    byId('store').tBodies[0].replaceChildren(row)
  }

  function button (text, onClick) {
    const b = document.createElement('button')
    b.type = 'button'
    b.textContent = text
    b.addEventListener('click', onClick)
    return b
  }

  function showRoutes (routes, recent) {
    const rows = []
    if (recent) byId('recent-head').textContent = 'hit ratio, last ' + Math.max(1, Math.round(recent.seconds / 60)) + ' min'
    for (const [id, counters] of Object.entries(routes).sort(([a], [b]) => a.localeCompare(b))) {
      const row = document.createElement('tr')
      row.dataset.route = id
      const name = cell(id, 'route')
      name.className = 'text'
      row.append(name)
      for (const key of COUNTERS) row.append(cell(counters[key], key))
      row.append(cell(percent(counters.hitRatio), 'hitRatio'))
      const last = recent && recent.routes[id]
      const lastCell = cell(last ? percent(last.hitRatio) + ' ' : '-', 'recentHitRatio')
      if (last) {
        const meter = document.createElement('meter')
        meter.min = 0
        meter.max = 1
        meter.value = last.hitRatio
        lastCell.append(meter)
      }
      row.append(lastCell)
      const actions = document.createElement('td')
      actions.append(button('Entries', () => { list({ route: id }) }), ' ', button('Invalidate', () => { invalidate({ route: id }, 'route ' + id) }))
      row.append(actions)
      rows.push(row)
    }
    byId('routes').tBodies[0].replaceChildren(...rows)
  }

  async function refresh () {
    try {
      const stats = await call(base)
      showTotals(stats.total)
      showStore(stats.store, stats.health)
      showRoutes(stats.routes, stats.recent)
      say('status', 'updated ' + new Date().toLocaleTimeString())
      document.body.dataset.loaded = 'true'
      return stats
    } catch (error) {
      say('status', 'could not read the stats: ' + error.message, true)
    }
  }

  let listing
  async function list (selector, cursor) {
    if (cursor === undefined) {
      listing = selector
      byId('entries').tBodies[0].replaceChildren()
    }
    const query = new URLSearchParams(selector)
    if (cursor !== undefined) query.set('cursor', cursor)
    try {
      const page = await call(base + '/entries?' + query)
      const body = byId('entries').tBodies[0]
      for (const entry of page.entries) {
        const row = document.createElement('tr')
        row.append(cell(entry.kind, 'kind'))
        const path = cell(entry.path === undefined ? '-' : entry.path, 'path')
        path.className = 'text'
        row.append(path, cell(entry.route === undefined ? '-' : entry.route, 'route'), cell(entry.status === undefined ? '-' : entry.status, 'status'))
        row.append(cell(entry.age, 'age'), cell(entry.ttl, 'ttl'), cell(entry.size, 'size'))
        const tags = cell(entry.tags.join(', '), 'tags')
        tags.className = 'text'
        row.append(tags)
        body.append(row)
      }
      const more = byId('more')
      more.hidden = page.cursor === undefined
      more.dataset.cursor = page.cursor || ''
      say('list-status', body.rows.length + ' entries of ' + Object.entries(selector).map(([k, v]) => k + ' ' + v).join(', ') + ' (' + page.source + ')')
    } catch (error) {
      say('list-status', 'could not list: ' + error.message, true)
    }
  }

  async function invalidate (selector, what) {
    if (!confirm('Drop every entry of ' + what + '?')) return
    try {
      const answer = await call(base + '/invalidate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(selector) })
      say('invalidate-status', 'dropped ' + answer.dropped + ' entries of ' + what)
      await refresh()
      if (listing !== undefined) await list(listing)
    } catch (error) {
      say('invalidate-status', 'could not invalidate: ' + error.message, true)
    }
  }

  const field = (form) => [form.elements.by.value, form.elements.value.value.trim()]
  byId('list-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const [by, value] = field(event.target)
    list({ [by]: value })
  })
  byId('invalidate-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const [by, value] = field(event.target)
    invalidate(by === 'tag' ? { tags: [value] } : { route: value }, by + ' ' + value)
  })
  byId('more').addEventListener('click', () => { list(listing, byId('more').dataset.cursor) })
  byId('refresh').addEventListener('click', () => { refresh() })

  refresh().then((stats) => {
    const every = stats && stats.recent ? stats.recent.interval : 10
    setInterval(refresh, every * 1000)
  })
})()
`

/** The page's icon, served like its script (a browser asks for /favicon.ico otherwise). */
export const DASHBOARD_ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#2a7"/></svg>\n'

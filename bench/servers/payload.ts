/** The object every scenario answers with: about 0.7 KB of JSON, like a typical API record. */
export const PRODUCT = {
  id: 42,
  sku: 'SKU-0042-XL',
  name: 'Insulated stainless steel water bottle, 750 ml',
  description: 'Double-walled vacuum insulation keeps drinks cold for 24 hours and hot for 12. Leak-proof lid, powder-coated finish.',
  price: { amount: 2999, currency: 'EUR' },
  stock: { warehouse: 'AMS-2', available: 183, reserved: 12 },
  tags: ['outdoor', 'kitchen', 'travel', 'eco'],
  ratings: { average: 4.6, count: 1289 },
  dimensions: { heightMm: 265, diameterMm: 74, weightG: 410 },
  variants: [
    { color: 'black', sku: 'SKU-0042-XL-BK' },
    { color: 'sage', sku: 'SKU-0042-XL-SG' },
    { color: 'sand', sku: 'SKU-0042-XL-SD' }
  ],
  updatedAt: '2026-11-01T09:30:00.000Z'
}

export const PRODUCT_JSON = Buffer.from(JSON.stringify(PRODUCT))

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** The slow handler's data function: a 20 ms database round trip. */
export async function loadProduct (): Promise<typeof PRODUCT> {
  await sleep(20)
  return PRODUCT
}

/** The compression rows' 60 KB JSON list (issue 26): 700 short records, compressible as API lists are. */
export const LIST = Array.from({ length: 700 }, (_, id) => ({ id, sku: `SKU-${100000 + id}`, name: `Product number ${id}`, price: (id * 7) % 1000 / 10, tags: ['a', 'b'] }))

/** The list's data function: the same 20 ms round trip. */
export async function loadList (): Promise<typeof LIST> {
  await sleep(20)
  return LIST
}

/** About 1 MB of JSON (records like PRODUCT), under the plugin's default maxEntryBytes of 1 MiB. */
export function catalogue (): Array<typeof PRODUCT> {
  const count = Math.floor(1_000_000 / (PRODUCT_JSON.length + 1))
  return Array.from({ length: count }, (_, i) => ({ ...PRODUCT, id: i, sku: `SKU-${String(i).padStart(4, '0')}-XL` }))
}

const SEARCH = {
  query: 'insulated bottle',
  filters: Array.from({ length: 30 }, (_, i) => ({ field: `attribute_${i}`, op: i % 2 === 0 ? 'eq' : 'in', value: i % 2 === 0 ? `value-${i}` : [`a${i}`, `b${i}`, `c${i}`] })),
  sort: [{ field: 'price.amount', order: 'asc' }, { field: 'ratings.average', order: 'desc' }],
  page: { size: 24, after: 'eyJpZCI6NDIsInByaWNlIjoyOTk5fQ' },
  facets: ['tags', 'stock.warehouse', 'variants.color', 'price.currency'],
  locale: 'en-GB'
}

/** The POST scenario's request body: a 2 KB JSON search, the same on every request, so every one is a hit. */
export const SEARCH_BODY = JSON.stringify(SEARCH)

/** The same search with about 64 KB of filters. */
const SEARCH_64K = {
  ...SEARCH,
  filters: Array.from({ length: 1060 }, (_, i) => ({ field: `attribute_${i}`, op: i % 2 === 0 ? 'eq' : 'in', value: i % 2 === 0 ? `value-${i}` : [`a${i}`, `b${i}`, `c${i}`] }))
}
export const SEARCH_BODY_64K = JSON.stringify(SEARCH_64K)

/** Rotates an object's keys by `turn`, at every depth: the same value, other bytes. */
function rotated (value: unknown, turn: number): unknown {
  if (Array.isArray(value)) return value.map((item) => rotated(item, turn))
  if (typeof value !== 'object' || value === null) return value
  const entries = Object.entries(value)
  const shift = turn % entries.length
  return Object.fromEntries([...entries.slice(shift), ...entries.slice(0, shift)].map(([key, item]) => [key, rotated(item, turn)]))
}

/** Six bodies of one search, in six key orders (the first as SEARCH_BODY): six byte strings, one entry. */
export const SHUFFLED_SEARCH_BODIES = Array.from({ length: 6 }, (_, turn) => JSON.stringify(rotated(SEARCH, turn)))
export const SHUFFLED_SEARCH_BODIES_64K = Array.from({ length: 6 }, (_, turn) => JSON.stringify(rotated(SEARCH_64K, turn)))

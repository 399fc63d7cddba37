import type { FieldValue } from './lists.js'

/**
 * The response headers an origin names its cache tags in: Fastly's `Surrogate-Key` (keys separated
 * by spaces) and Cloudflare's `Cache-Tag` (separated by commas). Lower case, as Fastify keeps them.
 */
export const SURROGATE_KEY_HEADERS = ['surrogate-key', 'cache-tag'] as const

const SEPARATORS: Record<(typeof SURROGATE_KEY_HEADERS)[number], RegExp> = {
  'surrogate-key': /[ \t]+/,
  'cache-tag': /[ \t]*,[ \t]*/
}

/**
 * The tags a response's surrogate-key headers name, each once, in the order given; empty items
 * (repeated separators, a trailing comma) are left out. Several fields of one header (an array)
 * count as one list.
 */
export function surrogateKeys (header: (name: string) => FieldValue): string[] {
  const keys = new Set<string>()
  for (const name of SURROGATE_KEY_HEADERS) {
    const value = header(name)
    if (value === undefined) continue
    for (const field of Array.isArray(value) ? value : [String(value)]) {
      for (const key of field.trim().split(SEPARATORS[name])) if (key !== '') keys.add(key)
    }
  }
  return [...keys]
}

import { parseDictionary as parseSfDictionary, ParseError, Token } from 'structured-headers'

/**
 * A Structured Field Dictionary (RFC 9651, which RFC 9213 section 2.1 makes `CDN-Cache-Control`),
 * parsed by structured-headers (the HTTP WG's test suite passes). Members keep their bare item's
 * type, since a directive of the wrong type makes the whole field invalid; parameters are dropped,
 * since no cache directive defines any. JavaScript numbers do not tell `60.0` from `60`: a Decimal
 * with no fraction reads as an Integer.
 */
export type SfItem =
  | { type: 'integer' | 'decimal', value: number }
  | { type: 'string' | 'token' | 'binary', value: string }
  | { type: 'boolean', value: boolean }
  | { type: 'inner-list' | 'other', value: null }

/** The dictionary, or undefined when the field is absent, empty or not a valid dictionary. */
export function parseDictionary (field: string | undefined): Map<string, SfItem> | undefined {
  if (field === undefined || field.trim() === '') return undefined
  let members
  try {
    members = parseSfDictionary(field)
  } catch (error) {
    if (error instanceof ParseError) return undefined
    /* c8 ignore next */
    throw error
  }
  const out = new Map<string, SfItem>()
  for (const [name, [value]] of members) out.set(name, Array.isArray(value) ? { type: 'inner-list', value: null } : item(value))
  return out
}

function item (value: unknown): SfItem {
  if (typeof value === 'number') return { type: Number.isInteger(value) ? 'integer' : 'decimal', value }
  if (typeof value === 'string') return { type: 'string', value }
  if (typeof value === 'boolean') return { type: 'boolean', value }
  if (value instanceof Token) return { type: 'token', value: value.toString() }
  if (value instanceof ArrayBuffer) return { type: 'binary', value: Buffer.from(value).toString('base64') }
  // Dates and Display Strings (RFC 9651): no cache directive takes one.
  return { type: 'other', value: null }
}

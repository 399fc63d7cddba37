import type { HeaderValue } from '../entry.js'

/** A field as Node and Fastify hold it: one string, several lines, or a number. */
export type FieldValue = HeaderValue | number | undefined

/** One field value, several lines joined as one list (RFC 9110 section 5.3). */
export function fieldText (value: FieldValue): string | undefined {
  if (value === undefined) return undefined
  return Array.isArray(value) ? value.join(', ') : String(value)
}

const OWS_AROUND = /^[ \t]+|[ \t]+$/g

/**
 * The members of a comma-separated list field (RFC 9110 section 5.6.1), its lines joined: each
 * without the optional whitespace (space, tab) around it, empty members dropped. With `quoted`, for a
 * field whose grammar has quoted strings (Cache-Control, Accept), a comma inside one does not split
 * (`private="a, b"`), and an unclosed one runs to the end. A field of tokens (Vary, Connection, Age)
 * has none: a quote there is an invalid character of its member, nothing more.
 */
export function listMembers (value: FieldValue, quoted: boolean): string[] {
  const members: string[] = []
  const text = fieldText(value)
  if (text === undefined) return members
  let start = 0
  let inQuotes = false
  const push = (end: number): void => {
    const member = text.slice(start, end).replace(OWS_AROUND, '')
    if (member !== '') members.push(member)
    start = end + 1
  }
  for (let at = 0; at < text.length; at++) {
    const char = text[at]
    if (inQuotes) {
      if (char === '\\') at++
      else if (char === '"') inQuotes = false
    } else if (char === ',') push(at)
    else if (char === '"' && quoted) inQuotes = true
  }
  push(text.length)
  return members
}

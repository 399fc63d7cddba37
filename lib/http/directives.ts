import type { HeaderValue } from '../entry.js'

/**
 * Cache directives of one response, by lower-case name: `true` for a directive without an argument,
 * its text (unquoted) for one with an argument, `null` for one present but malformed.
 */
export type Directives = Map<string, string | true | null>

/** A field as Node and Fastify hold it: one string, several lines, or a number. */
export type FieldValue = HeaderValue | number | undefined

/** The largest delta-seconds a cache must handle; larger values count as this (RFC 9111 section 1.2.2). */
export const MAX_DELTA_SECONDS = 2_147_483_648

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/
const isTchar = (char: string | undefined): boolean => char !== undefined && TCHAR.test(char)
const isOws = (char: string | undefined): boolean => char === ' ' || char === '\t'

/** One field value, several lines joined as one list (RFC 9110 section 5.3). */
export function fieldText (value: FieldValue): string | undefined {
  if (value === undefined) return undefined
  return Array.isArray(value) ? value.join(', ') : String(value)
}

/**
 * Parses `Cache-Control` strictly (RFC 9111 section 5.2, RFC 9110 sections 5.6.1 to 5.6.4):
 * `token [ "=" ( token / quoted-string ) ]`, no whitespace around `=`, both argument forms accepted
 * (section 5.2: "recipients ought to accept both forms"). A directive named twice keeps its first
 * occurrence (section 4.2.1 allows the first or "stale"). A directive whose syntax is broken
 * (`max-age =60`, `max-age=`, an unclosed quote) is recorded as malformed, so that its freshness
 * counts as invalid rather than absent; a phrase inside another directive's quoted argument is never
 * read as a directive.
 */
export function parseCacheControl (value: FieldValue): Directives {
  const directives: Directives = new Map()
  const field = fieldText(value)
  if (field === undefined) return directives
  const text: string = field
  let at = 0
  const record = (name: string, argument: string | true | null): void => {
    if (!directives.has(name)) directives.set(name, argument)
  }
  /** Skips to just past the next comma outside a quoted string. */
  const skipElement = (): void => {
    let quoted = false
    for (; at < text.length; at++) {
      const char = text[at]
      if (quoted && char === '\\') at++
      else if (char === '"') quoted = !quoted
      else if (char === ',' && !quoted) break
    }
    at++
  }
  while (at < text.length) {
    while (isOws(text[at]) || text[at] === ',') at++
    if (at >= text.length) break
    const start = at
    while (isTchar(text[at])) at++
    if (at === start) {
      skipElement()
      continue
    }
    const name = text.slice(start, at).toLowerCase()
    let argument: string | true | null = true
    if (text[at] === '=') {
      at++
      argument = text[at] === '"' ? quotedString() : tokenArgument()
    }
    while (isOws(text[at])) at++
    if (argument === null || (at < text.length && text[at] !== ',')) {
      record(name, null)
      skipElement()
      continue
    }
    record(name, argument)
  }
  return directives

  function tokenArgument (): string | null {
    const start = at
    while (isTchar(text[at])) at++
    return at === start ? null : text.slice(start, at)
  }

  /** The unescaped content of a quoted string starting at `at`, or null if it is never closed. */
  function quotedString (): string | null {
    let out = ''
    for (at++; at < text.length; at++) {
      const char = text[at]
      if (char === '"') {
        at++
        return out
      }
      if (char === '\\') at++
      out += text[at] ?? ''
    }
    return null
  }
}

/**
 * A directive's delta-seconds (RFC 9111 section 1.2.2): `undefined` when the directive is absent,
 * `null` when it is present but not a non-negative integer (`-1`, `60.5`, `'60'`, `1e3`, no argument).
 * Values past 2^31 count as 2^31.
 */
export function deltaSeconds (directives: Directives, name: string): number | null | undefined {
  if (!directives.has(name)) return undefined
  const argument = directives.get(name)
  if (typeof argument !== 'string' || !/^[0-9]+$/.test(argument)) return null
  return Math.min(Number(argument), MAX_DELTA_SECONDS)
}

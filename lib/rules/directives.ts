import { type FieldValue, listMembers } from './lists.js'

/**
 * Cache directives of one response, by lower-case name: `true` for a directive without an argument,
 * its text (unquoted) for one with an argument, `null` for one present but malformed.
 */
export type Directives = Map<string, string | true | null>

/** The largest delta-seconds a cache must handle; larger values count as this (RFC 9111 section 1.2.2). */
export const MAX_DELTA_SECONDS = 2_147_483_648

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/
const isTchar = (char: string | undefined): boolean => char !== undefined && TCHAR.test(char)

/**
 * Parses `Cache-Control` strictly (RFC 9111 section 5.2, RFC 9110 sections 5.6.1 to 5.6.4), the one
 * reading of the field for requests and responses in both modes: each list member is
 * `token [ "=" ( token / quoted-string ) ]`, no whitespace around `=`, both argument forms accepted
 * (section 5.2: "recipients ought to accept both forms"). A directive named twice keeps its first
 * occurrence (section 4.2.1 allows the first or "stale"). A directive whose syntax is broken
 * (`max-age =60`, `max-age=`, an unclosed quote, `no-store garbage`) is recorded as malformed, so that
 * its freshness counts as invalid rather than absent and a flag still applies; a member that does not
 * start with a token, and a phrase inside a quoted argument, are never read as directives.
 */
export function parseCacheControl (value: FieldValue): Directives {
  const directives: Directives = new Map()
  for (const member of listMembers(value, true)) {
    const parsed = directive(member)
    if (parsed !== undefined && !directives.has(parsed[0])) directives.set(parsed[0], parsed[1])
  }
  return directives
}

/** One list member as a directive: its name and argument (null if malformed); undefined if it has no name. */
function directive (member: string): [string, string | true | null] | undefined {
  let at = 0
  while (isTchar(member[at])) at++
  if (at === 0) return undefined
  const name = member.slice(0, at).toLowerCase()
  if (at === member.length) return [name, true]
  if (member[at] !== '=') return [name, null]
  at++
  let argument: string | null
  if (member[at] === '"') {
    // The quoted string's content, unescaped; null if it is never closed.
    argument = null
    let out = ''
    for (at++; at < member.length; at++) {
      const char = member[at]
      if (char === '"') {
        argument = out
        at++
        break
      }
      if (char === '\\') at++
      out += member[at] ?? ''
    }
  } else {
    const start = at
    while (isTchar(member[at])) at++
    argument = at === start ? null : member.slice(start, at)
  }
  // Anything after the argument makes the directive malformed (a member has no whitespace around it).
  return [name, at === member.length ? argument : null]
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

/**
 * The freshness a shared cache reads: `s-maxage`, else `max-age` (RFC 9111 section 5.2.2.10), in
 * seconds; `undefined` when neither is present, `null` when the one that applies is malformed.
 */
export function sharedMaxAge (directives: Directives): number | null | undefined {
  const shared = deltaSeconds(directives, 's-maxage')
  return shared === undefined ? deltaSeconds(directives, 'max-age') : shared
}

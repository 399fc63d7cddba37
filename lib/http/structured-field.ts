/**
 * A Structured Field Dictionary parser (RFC 8941 section 4.2.2), for `CDN-Cache-Control`
 * (RFC 9213 section 2.1), which is one. Members keep their bare item's type, since a directive
 * of the wrong type makes the whole field invalid; parameters are parsed (they must be well formed)
 * and dropped, since no cache directive defines any.
 */
export type SfItem =
  | { type: 'integer' | 'decimal', value: number }
  | { type: 'string' | 'token' | 'binary', value: string }
  | { type: 'boolean', value: boolean }
  | { type: 'inner-list', value: null }

class SfError extends Error {}

const KEY_START = /[a-z*]/
const KEY_CHAR = /[a-z0-9_.*-]/
const TOKEN_START = /[A-Za-z*]/
const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z:/-]/
const BASE64_CHAR = /[A-Za-z0-9+/=]/
const DIGIT = /[0-9]/

/** The dictionary, or undefined when the field is absent, empty or not a valid dictionary. */
export function parseDictionary (field: string | undefined): Map<string, SfItem> | undefined {
  if (field === undefined) return undefined
  const text = field.replace(/^ +| +$/g, '')
  if (text === '') return undefined
  let at = 0
  const fail = (): never => { throw new SfError() }
  const test = (pattern: RegExp): boolean => at < text.length && pattern.test(text[at])
  const skip = (chars: string): void => { while (at < text.length && chars.includes(text[at])) at++ }

  function key (): string {
    if (!test(KEY_START)) fail()
    const start = at
    while (test(KEY_CHAR)) at++
    return text.slice(start, at)
  }

  function parameters (): void {
    while (text[at] === ';') {
      at++
      skip(' ')
      key()
      if (text[at] === '=') {
        at++
        bareItem()
      }
    }
  }

  function number (): SfItem {
    const start = at
    if (text[at] === '-') at++
    if (!test(DIGIT)) fail()
    while (test(DIGIT) || text[at] === '.') at++
    const literal = text.slice(start, at)
    const digits = literal.replace('-', '')
    if (!digits.includes('.')) {
      if (digits.length > 15) fail()
      return { type: 'integer', value: Number(literal) }
    }
    const [whole, fraction] = digits.split('.')
    if (digits.split('.').length !== 2 || whole.length > 12 || fraction.length < 1 || fraction.length > 3) fail()
    return { type: 'decimal', value: Number(literal) }
  }

  function string (): SfItem {
    let out = ''
    for (at++; at < text.length; at++) {
      const char = text[at]
      if (char === '"') {
        at++
        return { type: 'string', value: out }
      }
      if (char === '\\') {
        at++
        if (text[at] !== '"' && text[at] !== '\\') fail()
      } else if (char < ' ' || char > '~') fail()
      out += text[at]
    }
    return fail()
  }

  function bareItem (): SfItem {
    const char = text[at]
    if (char === '-' || test(DIGIT)) return number()
    if (char === '"') return string()
    if (test(TOKEN_START)) {
      const start = at
      while (test(TOKEN_CHAR)) at++
      return { type: 'token', value: text.slice(start, at) }
    }
    if (char === ':') {
      const start = ++at
      while (test(BASE64_CHAR)) at++
      if (text[at] !== ':') fail()
      return { type: 'binary', value: text.slice(start, at++) }
    }
    if (char === '?' && (text[at + 1] === '0' || text[at + 1] === '1')) {
      at += 2
      return { type: 'boolean', value: text[at - 1] === '1' }
    }
    return fail()
  }

  function itemOrInnerList (): SfItem {
    if (text[at] !== '(') {
      const item = bareItem()
      parameters()
      return item
    }
    at++
    for (;;) {
      skip(' ')
      if (text[at] === ')') break
      bareItem()
      parameters()
      if (text[at] !== ' ' && text[at] !== ')') fail()
    }
    at++
    parameters()
    return { type: 'inner-list', value: null }
  }

  const members = new Map<string, SfItem>()
  try {
    for (;;) {
      const name = key()
      let item: SfItem = { type: 'boolean', value: true }
      if (text[at] === '=') {
        at++
        item = itemOrInnerList()
      } else parameters()
      // RFC 8941: a key given twice keeps its last value.
      members.set(name, item)
      skip(' \t')
      if (at >= text.length) return members
      if (text[at] !== ',') fail()
      at++
      skip(' \t')
      if (at >= text.length) fail()
    }
  } catch {
    // Only SfError is thrown above: the field is not a dictionary.
    return undefined
  }
}

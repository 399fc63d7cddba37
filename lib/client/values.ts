import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { Packr } from 'msgpackr'
import { VALUE_STATUS, type CacheEntry } from '../entry.js'
import { FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE } from '../errors.js'
import { encodeSegment } from '../key.js'

export { VALUE_STATUS }

// MessagePack with msgpackr: Dates, Buffers, typed arrays, Maps, Sets, RegExps, Errors, BigInts and
// undefined (as a field or an array item) come back as they went in. Record definitions travel in
// each value, so any process can read what another wrote. copyBuffers: a Buffer read back is bytes of
// its own, not a view of the stored entry's, which a caller writing into it would change.
const packr = new Packr({ moreTypes: true, useBigIntExtension: true, copyBuffers: true })

/** `namespace:tenant:v:key`: `v` is never a method, so values and responses never share a key. */
export function valueKey (namespace: string, tenant: string, key: string): string {
  return namespace + ':' + tenant + ':v:' + encodeSegment(key)
}

/** Throws a clear error for what MessagePack would drop or cannot hold: functions, symbols, cycles. */
function check (value: unknown, path: string, seen: Set<object>): void {
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE(path, `a ${typeof value}`)
  }
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || value instanceof Date) return
  if (value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise) {
    throw new FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE(path, `a ${value.constructor.name}`)
  }
  if (seen.has(value)) throw new FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE(path, 'a circular reference')
  seen.add(value)
  if (value instanceof Map) {
    for (const [k, v] of value) {
      check(k, `${path} key`, seen)
      check(v, `${path}.get(${String(k)})`, seen)
    }
  } else if (value instanceof Set) {
    for (const v of value) check(v, `${path} item`, seen)
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) check(value[i], `${path}[${i}]`, seen)
  } else {
    for (const name of Object.keys(value)) check((value as Record<string, unknown>)[name], `${path}.${name}`, seen)
  }
  seen.delete(value)
}

export function encodeValue (value: unknown): Buffer {
  check(value, 'value', new Set())
  // msgpackr packs into a shared buffer that its next call overwrites: keep a copy.
  return Buffer.from(packr.pack(value))
}

export function decodeValue (body: Buffer): unknown {
  return packr.unpack(body)
}

export function valueEntry (value: unknown, ttl: number): CacheEntry {
  return { status: VALUE_STATUS, headers: {}, body: encodeValue(value), storedAt: Date.now(), ttl, etag: '' }
}

/** One compiled checker per schema object, for as long as the schema lives. */
const checkers = new WeakMap<TSchema, TypeCheck<TSchema>>()

export function matches (schema: TSchema, value: unknown): boolean {
  let checker = checkers.get(schema)
  if (checker === undefined) checkers.set(schema, checker = TypeCompiler.Compile(schema))
  return checker.Check(value)
}

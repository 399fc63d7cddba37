/** The payload as bytes to store, or undefined for streams and anything else not held in memory. */
export function payloadBytes (payload: unknown): Buffer | undefined {
  // Copies into memory of the entry's own (allocUnsafeSlow, not Node's shared 8 KiB pool): a small
  // entry must not keep a whole pool slab alive for as long as it is cached.
  if (typeof payload === 'string') {
    const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(payload))
    bytes.write(payload)
    return bytes
  }
  if (payload === undefined || payload === null) return Buffer.alloc(0)
  // A copy: the caller may reuse or change its buffer after sending.
  if (ArrayBuffer.isView(payload)) {
    const bytes = Buffer.allocUnsafeSlow(payload.byteLength)
    bytes.set(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength))
    return bytes
  }
  return undefined
}

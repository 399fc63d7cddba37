/** Whether a store call answered with a promise (a remote store) rather than in place (the memory store). */
export function isPromise<T> (value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function'
}

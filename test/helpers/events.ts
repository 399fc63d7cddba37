/** Tests wait on the events they order, not on time: these are the two ways they do. */

/** A promise and the function that resolves it. */
export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

/** Until `check` holds, every 10 ms; false if it still does not after `ms` (a bound, not a timing). */
export async function eventually (check: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * Sleeps until more than `ms` have passed since `since` (a Date.now() value taken after the event):
 * for TTLs, where time is the contract.
 */
export async function until (since: number, ms: number): Promise<void> {
  while (Date.now() - since <= ms) await new Promise((resolve) => setTimeout(resolve, since + ms + 1 - Date.now()))
}

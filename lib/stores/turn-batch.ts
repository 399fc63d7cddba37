/**
 * Gathers calls until the event loop has handled what is ready (a setImmediate), then sends each
 * group's calls together, at most `maxBatch` to a send. Under load a burst of requests costs a few
 * round trips and socket writes instead of one each; alone, a call waits a fraction of a millisecond.
 * Each call settles with its own result; a send that fails rejects the calls it carried.
 */
export class TurnBatch<Item, Result> {
  readonly #groups = new Map<number, Array<Pending<Item, Result>>>()
  #scheduled = false

  /** `send` is an async function: it answers one result per item, in order, or rejects. */
  constructor (
    private readonly send: (items: Item[]) => Promise<Result[]>,
    private readonly maxBatch: number
  ) {}

  /** `group`: calls that may travel together (in a Redis Cluster, those of one slot). */
  add (group: number, item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      let pending = this.#groups.get(group)
      if (pending === undefined) this.#groups.set(group, pending = [])
      pending.push({ item, resolve, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => { this.#flush() })
      }
    })
  }

  #flush (): void {
    this.#scheduled = false
    const groups = [...this.#groups.values()]
    this.#groups.clear()
    for (const pending of groups) {
      for (let i = 0; i < pending.length; i += this.maxBatch) this.#sendPart(pending.slice(i, i + this.maxBatch))
    }
  }

  #sendPart (part: Array<Pending<Item, Result>>): void {
    this.send(part.map(({ item }) => item)).then((results) => {
      part.forEach(({ resolve }, i) => { resolve(results[i]) })
    }, (error: unknown) => {
      for (const { reject } of part) reject(error)
    })
  }
}

interface Pending<Item, Result> {
  item: Item
  resolve: (result: Result) => void
  reject: (error: unknown) => void
}

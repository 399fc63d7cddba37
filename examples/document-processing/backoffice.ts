import { setTimeout as sleep } from 'node:timers/promises'

export interface Processed { sha256: string, pages: number, userId?: string, processedAt: string }

const PRICE_PER_PAGE = 0.05

/**
 * The platform's other data, in memory behind a delay like the database's: what each tenant
 * processed, the users' sessions, the reference tables. `queries` counts what reached it.
 */
export class Backoffice {
  queries = { documents: 0, sessions: 0, dashboard: 0, billing: 0, reference: 0 }
  readonly #processed = new Map<string, Processed[]>()

  constructor (private readonly delayMs = 50) {}

  record (tenant: string, document: Processed): void {
    this.#processed.set(tenant, [...this.#processed.get(tenant) ?? [], document])
  }

  async documents (tenant: string): Promise<Processed[]> {
    this.queries.documents++
    await sleep(this.delayMs)
    return this.#processed.get(tenant) ?? []
  }

  async session (tenant: string, userId: string): Promise<{ userId: string, tenant: string, roles: string[], signedInAt: string }> {
    this.queries.sessions++
    await sleep(this.delayMs)
    return { userId, tenant, roles: userId.startsWith('admin') ? ['admin', 'reviewer'] : ['reviewer'], signedInAt: new Date(0).toISOString() }
  }

  async dashboard (tenant: string, userId: string): Promise<{ documents: number, pages: number, mine: number }> {
    this.queries.dashboard++
    await sleep(this.delayMs)
    const all = this.#processed.get(tenant) ?? []
    return { documents: all.length, pages: all.reduce((sum, document) => sum + document.pages, 0), mine: all.filter((document) => document.userId === userId).length }
  }

  async billing (tenant: string): Promise<{ pages: number, amount: number, currency: string }> {
    this.queries.billing++
    await sleep(this.delayMs)
    const pages = (this.#processed.get(tenant) ?? []).reduce((sum, document) => sum + document.pages, 0)
    return { pages, amount: Math.round(pages * PRICE_PER_PAGE * 100) / 100, currency: 'EUR' }
  }

  async reference (table: 'document-types' | 'countries'): Promise<string[]> {
    this.queries.reference++
    await sleep(this.delayMs)
    return table === 'countries' ? ['DE', 'FR', 'PT', 'US'] : ['invoice', 'intake-form', 'receipt']
  }
}

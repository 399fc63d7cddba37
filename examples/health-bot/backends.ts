import { setTimeout as sleep } from 'node:timers/promises'

// The bot's slow parts, in memory behind delays like the write-up's: markdown files (200-500 ms),
// PostgreSQL (50-200 ms) and the USDA API (1-3 s). Each counts its calls, so a test can tell a hit.

export interface UserMemory { profile: Record<string, string>, preferences: Record<string, string> }
export interface Message { role: 'user' | 'assistant', text: string, at: Date }
export interface Food { description: string, kcalPer100g: number }

/** `profile.md` and `preferences.md` per user. */
export class MemoryFiles {
  reads = 0
  readonly #users = new Map<string, UserMemory>([['u1', { profile: { name: 'Ana', goal: 'eat more fibre' }, preferences: { units: 'metric' } }]])

  constructor (private readonly delayMs = 200) {}

  async load (userId: string): Promise<UserMemory> {
    this.reads++
    await sleep(this.delayMs)
    return structuredClone(this.#users.get(userId) ?? { profile: {}, preferences: {} })
  }

  async update (userId: string, part: keyof UserMemory, fields: Record<string, string>): Promise<void> {
    await sleep(this.delayMs)
    const memory = this.#users.get(userId) ?? { profile: {}, preferences: {} }
    memory[part] = { ...memory[part], ...fields }
    this.#users.set(userId, memory)
  }
}

/** The conversations table. */
export class Conversations {
  queries = 0
  readonly #messages = new Map<string, Message[]>()

  constructor (private readonly delayMs = 100) {}

  /** The last `limit` messages, less the assistant's unhelpful answers (the write-up's filter). */
  async history (userId: string, limit: number): Promise<Message[]> {
    this.queries++
    await sleep(this.delayMs)
    const helpful = (this.#messages.get(userId) ?? []).filter((m) => !(m.role === 'assistant' && m.text.startsWith('Sorry')))
    return helpful.slice(-limit)
  }

  async save (userId: string, role: Message['role'], text: string): Promise<void> {
    await sleep(this.delayMs)
    this.#messages.set(userId, [...this.#messages.get(userId) ?? [], { role, text, at: new Date() }])
  }
}

const FOODS = new Map<string, Food[]>([
  ['apple', [{ description: 'Apple, raw, with skin', kcalPer100g: 52 }, { description: 'Apple, dried', kcalPer100g: 243 }]],
  ['banana', [{ description: 'Banana, raw', kcalPer100g: 89 }]],
  ['oatmeal', [{ description: 'Oats, regular, cooked with water', kcalPer100g: 71 }]]
])

/** The USDA FoodData Central search. `down` makes it fail as an outage would. */
export class NutritionApi {
  calls = 0
  down = false

  constructor (private readonly delayMs = 1000) {}

  async search (food: string, maxResults: number): Promise<Food[]> {
    this.calls++
    await sleep(this.delayMs)
    if (this.down) throw new Error('USDA API: 503 Service Unavailable')
    return (FOODS.get(food) ?? []).slice(0, maxResults)
  }
}

export interface Backends { files: MemoryFiles, conversations: Conversations, usda: NutritionApi }

/** `delayMs` shortens every delay (tests); the defaults are the write-up's. */
export function createBackends (delayMs?: number): Backends {
  return { files: new MemoryFiles(delayMs), conversations: new Conversations(delayMs), usda: new NutritionApi(delayMs) }
}

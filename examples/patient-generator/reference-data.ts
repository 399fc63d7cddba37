/** The static data patients are generated from: what the seed kept in demographics.json and the conditions pool. */
export const DEMOGRAPHICS = {
  sexes: ['female', 'male'],
  firstNames: { female: ['Ana', 'Grace', 'Mei', 'Olivia', 'Priya', 'Zoe'], male: ['Ade', 'Carlos', 'Liam', 'Noah', 'Omar', 'Tom'] },
  lastNames: ['Garcia', 'Kim', 'Nguyen', 'Okafor', 'Smith', 'Weber'],
  ageBands: [{ min: 0, max: 17, weight: 22 }, { min: 18, max: 44, weight: 36 }, { min: 45, max: 64, weight: 25 }, { min: 65, max: 95, weight: 17 }],
  cities: ['Austin', 'Boston', 'Denver', 'Portland', 'Raleigh']
}

export const CONDITIONS = {
  chronic: [{ code: 'E11.9', name: 'Type 2 diabetes' }, { code: 'I10', name: 'Hypertension' }, { code: 'J45.909', name: 'Asthma' }],
  acute: [{ code: 'J06.9', name: 'Upper respiratory infection' }, { code: 'S93.401A', name: 'Ankle sprain' }, { code: 'N39.0', name: 'Urinary tract infection' }]
}

export type ReferenceName = 'demographics' | 'conditions'
const FILES = { demographics: DEMOGRAPHICS, conditions: CONDITIONS }

/** Stands in for the files on disk the seed read on every request: slow, and counted so tests can see each read. */
export class ReferenceFiles {
  reads = 0
  constructor (private readonly delayMs = 200) {}

  async read (name: ReferenceName): Promise<unknown> {
    this.reads++
    await new Promise((resolve) => setTimeout(resolve, this.delayMs))
    return structuredClone(FILES[name])
  }
}

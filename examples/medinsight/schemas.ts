// What each MedInsight route takes and answers. Fastify validates requests with these before any
// work (a bad one is a 400 that names the field, and nothing is cached) and serialises answers with them.
import { Type, type Static } from '@sinclair/typebox'

/** A word or a few: at least one character that is not a space. */
const Term = Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' })

/** A session id, as the client sends it in `x-session-id` (a UUID fits). */
export const SessionId = Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$' })
export const SessionHeaders = Type.Object({ 'x-session-id': Type.Optional(SessionId) })

export const HealthAnalysisBody = Type.Object({
  symptoms: Type.Array(Term, { minItems: 1, maxItems: 20 }),
  medications: Type.Optional(Type.Array(Term, { maxItems: 20 }))
}, { additionalProperties: false })
export type HealthAnalysisRequest = Static<typeof HealthAnalysisBody>

export const DrugAnalysisBody = Type.Object({ drug: Term }, { additionalProperties: false })
export type DrugAnalysisRequest = Static<typeof DrugAnalysisBody>

/** A drug name in a URL: letters, digits, spaces and hyphens (`Aspirin`, `st-johns-wort`). */
export const DrugInfoParams = Type.Object({ name: Type.String({ pattern: '^\\s*[A-Za-z0-9][A-Za-z0-9 -]{0,62}\\s*$' }) })
export const SessionParams = Type.Object({ sessionId: SessionId })
export const NoQuery = Type.Object({}, { additionalProperties: false })

export const Problem = Type.Object({ error: Type.String() })

export const HealthAnalysis = Type.Object({
  requestHash: Type.String(),
  symptoms: Type.Array(Type.String()),
  medications: Type.Array(Type.String()),
  conditions: Type.Array(Type.String()),
  interactions: Type.Array(Type.String()),
  analysedAt: Type.String()
})
export const DrugAnalysis = Type.Object({ requestHash: Type.String(), drug: Type.String(), analysis: Type.String(), analysedAt: Type.String() })
export const DrugInfo = Type.Object({ name: Type.String(), summary: Type.String(), updatedAt: Type.String() })
export const Summary = Type.Object({ sessionId: Type.String(), summary: Type.String(), basedOn: Type.Integer({ description: 'symptom inputs summarised' }), summarisedAt: Type.String() })

/** A user session: what the seed's cache_user_session kept, here a value of app.cache (1 h). */
export const Session = Type.Object({
  id: Type.String(),
  startedAt: Type.String(),
  lastSeenAt: Type.String(),
  requests: Type.Integer(),
  endpoints: Type.Record(Type.String(), Type.Integer()),
  drugs: Type.Array(Type.String())
})
export type SessionValue = Static<typeof Session>
/** The seed's cache_symptom_input: the symptom inputs of a session, newest last (30 min). */
export const SymptomInputs = Type.Array(Type.Object({ at: Type.String(), symptoms: Type.Array(Type.String()), medications: Type.Array(Type.String()) }))
export type SymptomInputList = Static<typeof SymptomInputs>
export const SessionView = Type.Object({ session: Session, symptomInputs: SymptomInputs, summaryCached: Type.Boolean() })

export const EntryId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })
export const EntriesQuery = Type.Object({
  limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 }))
}, { additionalProperties: false })
export const EntryPage = Type.Object({
  entries: Type.Array(Type.Object({
    kind: Type.String(),
    route: Type.Optional(Type.String()),
    path: Type.Optional(Type.String()),
    status: Type.Optional(Type.Integer()),
    age: Type.Number(),
    ttl: Type.Number(),
    size: Type.Integer(),
    tags: Type.Array(Type.String())
  })),
  cursor: Type.Optional(Type.String()),
  source: Type.String()
})
export const Dropped = Type.Object({ dropped: Type.Integer() })
export const CacheHealth = Type.Object({
  ok: Type.Boolean(),
  store: Type.String(),
  state: Type.String(),
  latencyMs: Type.Optional(Type.Number()),
  error: Type.Optional(Type.String())
})
const Usage = Type.Object({ requests: Type.Integer(), hits: Type.Integer(), hitRatio: Type.Number(), errors: Type.Integer() })
export const Stats = Type.Object({
  usage: Type.Record(Type.String(), Usage),
  values: Type.Object({ hits: Type.Integer(), misses: Type.Integer(), stale: Type.Integer(), stores: Type.Integer(), errors: Type.Integer() }),
  store: Type.Object({
    name: Type.String(),
    state: Type.String(),
    entries: Type.Optional(Type.Integer({ description: 'absent while the store cannot be asked' })),
    bytes: Type.Optional(Type.Integer()),
    evictions: Type.Optional(Type.Integer()),
    measuredAt: Type.Optional(Type.String())
  })
})
export const Performance = Type.Object({
  store: Type.String(),
  servers: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()])))),
  process: Type.Optional(Type.Object({ rssBytes: Type.Integer(), heapUsedBytes: Type.Integer() })),
  cache: Type.Optional(Type.Object({ entries: Type.Integer(), bytes: Type.Integer(), evictions: Type.Integer() }))
})

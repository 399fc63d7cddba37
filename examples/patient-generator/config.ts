// The service's settings from the environment, checked before anything starts: a bad value stops
// the server with one line that names the variable and what it takes.

/** A year: the longest CACHE_TTL taken. */
const MAX_TTL = 31_536_000
const TRUE = ['true', '1', 'yes', 'on']
const FALSE = ['false', '0', 'no', 'off']

export interface PatientGeneratorConfig {
  /** Seconds the reference data stays cached (`CACHE_TTL`, default a day). */
  ttl: number
  /** Whether the cache is used at all (`CACHE_ENABLED`, default true). */
  enabled: boolean
  /** Redis for the cache (`REDIS_URL`); without it, process memory. */
  redisUrl: string | undefined
  /** The token of the invalidation route (`PATIENT_GENERATOR_OPS_TOKEN`); without it the route answers 401. */
  opsToken: string | undefined
}

/** A setting the server cannot start with; its message is the one line the server prints. */
export class ConfigError extends Error {}

/** An empty variable counts as unset, as `VAR= npm run example ...` means. */
const read = (env: NodeJS.ProcessEnv, name: string): string | undefined => env[name] === '' ? undefined : env[name]

export function readConfig (env: NodeJS.ProcessEnv = process.env): PatientGeneratorConfig {
  const ttlText = read(env, 'CACHE_TTL')
  let ttl = 86_400
  if (ttlText !== undefined) {
    ttl = /^\d+$/.test(ttlText.trim()) ? Number(ttlText.trim()) : NaN
    if (!(ttl >= 1 && ttl <= MAX_TTL)) throw new ConfigError(`CACHE_TTL must be a whole number of seconds from 1 to ${MAX_TTL}, not ${JSON.stringify(ttlText)}`)
  }
  const enabledText = read(env, 'CACHE_ENABLED')
  let enabled = true
  if (enabledText !== undefined) {
    const word = enabledText.trim().toLowerCase()
    if (!TRUE.includes(word) && !FALSE.includes(word)) throw new ConfigError(`CACHE_ENABLED must be true or false (or 1/0, yes/no, on/off), not ${JSON.stringify(enabledText)}`)
    enabled = TRUE.includes(word)
  }
  return { ttl, enabled, redisUrl: read(env, 'REDIS_URL'), opsToken: read(env, 'PATIENT_GENERATOR_OPS_TOKEN') }
}

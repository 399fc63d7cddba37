// Configuration per environment (APP_ENV), as the seed's cache_config.py had: development keeps
// entries a short time and logs at debug (where the plugin says why a response was not stored);
// staging and production keep the seed's TTLs.

export type Environment = 'development' | 'staging' | 'production'

const MINUTE = 60
const HOUR = 3600
const DAY = 86_400

export interface CacheConfig {
  environment: Environment
  /** Seconds each kind of entry stays cached. */
  ttl: { document: number, session: number, api: number, dashboard: number, billing: number, reference: number }
  logLevel: string
  /**
   * The largest answer the cache stores. The plugin's default is 1 MiB; an OCR answer repeats the
   * document's text, so a 4 MB scan answers over 4 MB. 8 MiB is chosen for that; larger answers are
   * served but not stored, and say so at warn.
   */
  maxEntryBytes: number
  /** A production server refuses to start without CACHE_ENCRYPTION_KEY. */
  requireEncryptionKey: boolean
}

const SEED_TTLS = { document: 7 * DAY, session: DAY, api: 5 * MINUTE, dashboard: 10 * MINUTE, billing: HOUR, reference: DAY }

export const ENVIRONMENTS: Record<Environment, CacheConfig> = {
  development: {
    environment: 'development',
    ttl: { document: HOUR, session: HOUR, api: MINUTE, dashboard: MINUTE, billing: 5 * MINUTE, reference: HOUR },
    logLevel: 'debug',
    maxEntryBytes: 8 * 1024 * 1024,
    requireEncryptionKey: false
  },
  staging: { environment: 'staging', ttl: SEED_TTLS, logLevel: 'info', maxEntryBytes: 8 * 1024 * 1024, requireEncryptionKey: false },
  production: { environment: 'production', ttl: SEED_TTLS, logLevel: 'warn', maxEntryBytes: 8 * 1024 * 1024, requireEncryptionKey: true }
}

export function environmentOf (name: string | undefined): Environment {
  if (name === undefined || name === '') return 'development'
  if (name in ENVIRONMENTS) return name as Environment
  throw new Error(`APP_ENV must be development, staging or production, not "${name}"`)
}

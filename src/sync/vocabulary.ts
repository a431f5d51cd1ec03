/**
 * The sync vocabularies. Each is one readonly array: its TypeScript type and the schema `enum`
 * that validates it are both derived from it, so neither can drift from the other.
 */

export const SYNC_STATUSES = ['synced', 'pending', 'failed', 'stale'] as const;
export type SyncStatus = (typeof SYNC_STATUSES)[number];

export const SYNC_ERROR_CODES = [
  'EMBEDDING_TIMEOUT',
  'EMBEDDING_RATE_LIMIT',
  'QDRANT_UNAVAILABLE',
  'QDRANT_TIMEOUT',
  'VALIDATION_ERROR',
  'UNKNOWN',
] as const;
export type SyncErrorCode = (typeof SYNC_ERROR_CODES)[number];

/** The four Qdrant collections every tool is embedded into. */
export const SYNC_COLLECTION_NAMES = ['tools', 'functionality', 'usecases', 'interface'] as const;
export type SyncCollectionName = (typeof SYNC_COLLECTION_NAMES)[number];

/** What a collection (and a tool) starts as: it has never been embedded. */
export const INITIAL_SYNC_STATUS: SyncStatus = 'pending';

/** A failure message is kept to this many characters, so that recording it can never fail. */
export const LAST_ERROR_MAX_LENGTH = 1000;

export function isSyncStatus(value: unknown): value is SyncStatus {
  return typeof value === 'string' && (SYNC_STATUSES as readonly string[]).includes(value);
}

export function isSyncCollectionName(value: unknown): value is SyncCollectionName {
  return typeof value === 'string' && (SYNC_COLLECTION_NAMES as readonly string[]).includes(value);
}

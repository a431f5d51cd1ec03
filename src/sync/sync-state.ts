import { INITIAL_SYNC_STATUS, type SyncErrorCode, type SyncStatus, type SyncCollectionName } from './vocabulary.js';

/**
 * The shape of sync state, as plain types. The decorated classes in `src/models` implement
 * them (and are the schema); the pure rules here need no Mongoose.
 */
export interface CollectionSyncState {
  status: SyncStatus;
  lastSyncedAt: Date | null;
  lastSyncAttemptAt: Date | null;
  lastError: string | null;
  errorCode: SyncErrorCode | null;
  retryCount: number;
  /**
   * When a failed collection is due for its next retry (backoff with jitter, from the attempt
   * that failed); null when it is not failed, or never retried by itself (`VALIDATION_ERROR`: the
   * content has to change first).
   */
  nextRetryAt: Date | null;
  contentHash: string;
  vectorVersion: number;
  /** The worker holding this collection's work (see claimSyncWork); null when nobody does. */
  claimedBy: string | null;
  /** When that worker's lease ends: after it, another worker may claim the work. */
  claimedUntil: Date | null;
  /**
   * The embedding model that made the collection's current vector, as the worker named it when
   * it marked the collection synced; null for vectors made before this was recorded (or none yet).
   */
  embeddingModel: string | null;
}

export type CollectionStateKey = keyof CollectionSyncState;

/**
 * Keys whose absence means null, so a tool stored before they existed is complete without them:
 * a retry time (for any status but `failed`), a claim and the embedding model.
 */
export const OPTIONAL_STATE_KEYS = ['claimedBy', 'claimedUntil', 'embeddingModel'] as const satisfies readonly CollectionStateKey[];

/** The keys of a collection's state, in the order they are stored. */
export const COLLECTION_STATE_KEYS = [
  'status', 'lastSyncedAt', 'lastSyncAttemptAt', 'lastError', 'errorCode', 'retryCount', 'nextRetryAt', 'contentHash', 'vectorVersion', 'claimedBy',
  'claimedUntil', 'embeddingModel',
] as const satisfies readonly CollectionStateKey[];

/** A never-synced collection's state with the given hash: a new object on every call. */
export function newCollectionState(contentHash: string): CollectionSyncState {
  return {
    status: INITIAL_SYNC_STATUS,
    lastSyncedAt: null,
    lastSyncAttemptAt: null,
    lastError: null,
    errorCode: null,
    retryCount: 0,
    nextRetryAt: null,
    contentHash,
    vectorVersion: 0,
    claimedBy: null,
    claimedUntil: null,
    embeddingModel: null,
  };
}

/** Where a tool's sync state lives: the package owns every path under it. */
export const SYNC_METADATA = 'syncMetadata';

/**
 * Set, in the same single-document update, by every write that may change content: the token
 * of that write. While it is set the stored hashes are unverified; settling the tool computes
 * them from the stored content and clears it.
 */
export const PENDING_HASH_CHECK = 'syncMetadata.pendingHashCheck';
export const OVERALL_STATUS = 'syncMetadata.overallStatus';
export const METADATA_UPDATED_AT = 'syncMetadata.updatedAt';
export const LAST_MODIFIED_FIELDS = 'syncMetadata.lastModifiedFields';

/** The dotted path of one field of one collection's state inside a tool document. */
export function collectionPath(collection: SyncCollectionName, key: CollectionStateKey): string {
  return `syncMetadata.collections.${collection}.${key}`;
}

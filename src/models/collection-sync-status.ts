import { modelOptions, prop, Severity } from '@typegoose/typegoose';
import {
  INITIAL_SYNC_STATUS,
  SYNC_ERROR_CODES,
  SYNC_STATUSES,
  type SyncErrorCode,
  type SyncStatus,
} from '../sync/vocabulary.js';
import { CONTENT_HASH_LENGTH } from '../sync/content-hash.js';
import { newCollectionState, type CollectionSyncState } from '../sync/sync-state.js';
import { integerValidator, required, truncateLastError } from './validators.js';

/** A stored content hash: 16 hex characters, or '' for a legacy document not hashed yet. */
const CONTENT_HASH_PATTERN = new RegExp(`^(?:[0-9a-f]{${CONTENT_HASH_LENGTH}})?$`);

/** Sync state of one tool in one vector collection. */
@modelOptions({ schemaOptions: { _id: false }, options: { allowMixed: Severity.ERROR } })
export class CollectionSyncStatus implements CollectionSyncState {
  @prop({ type: String, enum: SYNC_STATUSES, required, default: INITIAL_SYNC_STATUS })
  public status!: SyncStatus;

  /** Last successful embedding. */
  @prop({ type: Date, default: null })
  public lastSyncedAt!: Date | null;

  /** Last attempt, successful or not. */
  @prop({ type: Date, default: null })
  public lastSyncAttemptAt!: Date | null;

  @prop({ type: String, default: null, set: truncateLastError })
  public lastError!: string | null;

  /** Mongoose enum validators let null through, so null stays the "no error" value. */
  @prop({ type: String, enum: SYNC_ERROR_CODES, default: null })
  public errorCode!: SyncErrorCode | null;

  /** Consecutive failed attempts since the last success or content change. */
  @prop({ type: Number, default: 0, min: 0, validate: integerValidator })
  public retryCount!: number;

  /** When a failed collection is due for its next retry; null when not failed, or never by itself (VALIDATION_ERROR). */
  @prop({ type: Date, default: null })
  public nextRetryAt!: Date | null;

  /** Hash of exactly the fields that feed this collection (see COLLECTION_FIELDS). */
  @prop({
    type: String,
    default: '',
    match: [CONTENT_HASH_PATTERN, 'Path `{PATH}` must be 16 lowercase hex characters, got "{VALUE}".'],
  })
  public contentHash!: string;

  /** Incremented each time the embedding is regenerated. */
  @prop({ type: Number, default: 0, min: 0, validate: integerValidator })
  public vectorVersion!: number;

  /** The worker holding this collection's work (claimSyncWork); null when nobody does. */
  @prop({ type: String, default: null })
  public claimedBy!: string | null;

  /** When that worker's lease ends: then another worker may claim the work. */
  @prop({ type: Date, default: null })
  public claimedUntil!: Date | null;

  /** The embedding model that made the current vector (markCollectionSynced); null: not recorded. */
  @prop({ type: String, default: null })
  public embeddingModel!: string | null;
}

/** A fresh, never-synced collection status: a new object on every call. */
export function defaultCollectionSyncStatus(): CollectionSyncStatus {
  return newCollectionState('');
}

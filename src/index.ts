import 'reflect-metadata';

export {
  SYNC_STATUSES,
  SYNC_ERROR_CODES,
  SYNC_COLLECTION_NAMES,
  INITIAL_SYNC_STATUS,
  LAST_ERROR_MAX_LENGTH,
  isSyncCollectionName,
  isSyncStatus,
} from './sync/vocabulary.js';
export type { SyncStatus, SyncErrorCode, SyncCollectionName } from './sync/vocabulary.js';
export { COLLECTION_FIELDS, CONTENT_FIELDS, CONTENT_FIELD_KINDS } from './sync/collection-fields.js';
export type { ContentField } from './sync/collection-fields.js';
export {
  computeContentHash,
  computeContentHashes,
  canonicalContent,
  CONTENT_HASH_SCHEME_VERSION,
  CONTENT_HASH_LENGTH,
} from './sync/content-hash.js';
export type { ToolContent } from './sync/content-hash.js';
export { CollectionSyncStatus, defaultCollectionSyncStatus } from './models/collection-sync-status.js';
export { SyncMetadata, SyncCollections, defaultSyncMetadata, defaultSyncCollections } from './models/sync-metadata.js';
export { Tool, ToolModel } from './models/tool.js';
export { createToolModel } from './models/create-tool-model.js';
export { pointIdOf } from './models/point-id.js';
export { POINT_ID_NAMESPACE } from './sync/point-id.js';
export type { ToolModelOptions, ToolModelType } from './models/create-tool-model.js';
export { BUSINESS_FIELDS, PRICING_MODELS, KNOWN_INTERFACES, TOOL_LIMITS } from './models/tool-vocabulary.js';
export type { BusinessField, PricingModel } from './models/tool-vocabulary.js';
export type { ICollectionSyncStatus, ISyncMetadata, ITool } from './models/types.js';
export { aggregateSyncStatus, SYNC_STATUS_ORDER } from './sync/status-order.js';
export { afterContentChange, afterRequeue } from './sync/transitions.js';
export type { CollectionState } from './sync/transitions.js';
export { classifySyncError, errorMessage, isInputRefusal, SYNC_STAGES } from './sync/error-classification.js';
export type { SyncStage } from './sync/error-classification.js';
export { retryDelayMs, maxRetryDelayMs, RETRY_POLICY } from './sync/backoff.js';
export { SyncArgumentError, ToolNotFoundError, SyncConflictError, SyncStateError } from './models/errors.js';
export { SETTLE_FAILED_EVENT } from './models/change-tracking/settle-after-write.js';
export { WritesRefusedError } from './models/conditional-write.js';
export { PENDING_HASH_CHECK, collectionPath } from './sync/sync-state.js';
export type { CollectionSyncState } from './sync/sync-state.js';
export { parseSyncState } from './sync/stored-tool.js';
export type { StoredTool, ParsedSyncState } from './sync/stored-tool.js';
export type { MarkSyncedResult, MarkFailedResult, MarkBatchItem, MarkBatchOutcome } from './models/tool-transitions.js';
export type { RetryableTool, SyncStats } from './models/tool-queries.js';
export { backfill, BACKFILL_OUTCOMES } from './migrations/backfill.js';
export type { BatchOptions } from './migrations/backfill.js';
export { rehash, REHASH_OUTCOMES } from './migrations/rehash.js';
export { settle } from './migrations/settle.js';
export type { MigrationSummary, MigrationProgress } from './migrations/batch-migration.js';
export { checkIndexes } from './migrations/index-check.js';
export type { IndexCheck, IndexComparison, IndexSpec } from './migrations/index-check.js';
export { runSyncWorker } from './worker/run-sync-worker.js';
export type { BatchCallContext, DeletedTool, EmbedItem, SyncCallContext, SyncWorkerOptions, UpsertItem } from './worker/options.js';
export { DEFAULT_BATCH_SIZE } from './worker/options.js';
export { createRateBudget, estimateTokens } from './worker/rate-budget.js';
export type { RateBudget, RateLimits } from './worker/rate-budget.js';
export { embeddingText } from './sync/embedding-text.js';
export type { ClaimedTool, ClaimedCollection } from './models/tool-claims.js';
export { TOMBSTONE_COLLECTION } from './models/tombstones.js';
export type {
  ClaimedDeletion, DeletionMarkItem, DeletionMarkOutcome, Tombstone, VectorDeletedResult, VectorDeleteFailedResult,
} from './models/tombstones.js';
export { reembed, REEMBED_OUTCOMES } from './migrations/reembed.js';
export type { SyncWorkerEvent, SyncWorkerSummary, SyncCallStage } from './worker/events.js';
export { SYNC_CALL_STAGES } from './worker/events.js';
export { instrumentSync, DEFAULT_COLLECT_EVERY_MS, NOT_RECORDED_MODEL } from './observability/instrument-sync.js';
export type { SyncInstrumentation, SyncInstrumentationOptions } from './observability/instrument-sync.js';
export { retryAfterHintMs, DEFAULT_PAUSE_POLICY } from './worker/pause.js';
export type { WorkerStage, PausePolicy } from './worker/pause.js';

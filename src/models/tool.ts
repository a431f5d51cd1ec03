import {
  getModelForClass,
  index,
  modelOptions,
  plugin,
  prop,
  Severity,
  type DocumentType,
  type ReturnModelType,
} from '@typegoose/typegoose';
import { type Types } from 'mongoose';
import { type SyncStage } from '../sync/error-classification.js';
import { type MarkFailedResult } from '../sync/plans/mark-failed.js';
import { type MarkSyncedResult } from '../sync/plans/mark-synced.js';
import { type SyncCollectionName, type SyncErrorCode } from '../sync/vocabulary.js';
import { changeTrackingPlugin } from './change-tracking/index.js';
import { SyncMetadata } from './sync-metadata.js';
import { findNeedingSync, findRetryable, getSyncStats, type RetryableTool, type SyncStats } from './tool-queries.js';
import {
  markBatch, markCollectionFailed, markCollectionSynced, requeueFailed, settleTool, type MarkBatchItem, type MarkBatchOutcome,
} from './tool-transitions.js';
import { explainTakenName, lazyModel } from './lazy-model.js';
import { flagEmbeddingModelChange } from '../migrations/reembed.js';
import {
  claimVectorDeletions,
  markDeletionBatch,
  markVectorDeleted,
  markVectorDeleteFailed,
  requeueFailedDeletions,
  type ClaimedDeletion,
  type DeletionMarkItem,
  type DeletionMarkOutcome,
  type VectorDeletedResult,
  type VectorDeleteFailedResult,
} from './tombstones.js';
import { claimSyncWork, extendClaims, releaseClaims, type ClaimedTool } from './tool-claims.js';
import { ToolFields } from './tool-fields.js';

/** A product people search for, with the state of its embeddings in the four vector collections. */
@plugin(changeTrackingPlugin)
// Public lookups by slug (`findOne({ id })`); also refuses a second tool with the same slug.
@index({ id: 1 }, { name: 'tool_id_unique', unique: true })
// getSyncStats and the dashboard's counts by overall status.
@index({ 'syncMetadata.overallStatus': 1 }, { name: 'sync_overall_status_idx' })
// findNeedingSync({ collections }), requeueFailed and the dashboard, per collection.
@index({ 'syncMetadata.collections.tools.status': 1 }, { name: 'sync_tools_status_idx' })
@index({ 'syncMetadata.collections.functionality.status': 1 }, { name: 'sync_functionality_status_idx' })
@index({ 'syncMetadata.collections.usecases.status': 1 }, { name: 'sync_usecases_status_idx' })
@index({ 'syncMetadata.collections.interface.status': 1 }, { name: 'sync_interface_status_idx' })
// findNeedingSync(): waiting tools by overall status, oldest metadata change first.
@index({ 'syncMetadata.overallStatus': 1, 'syncMetadata.updatedAt': 1 }, { name: 'sync_worker_query_idx' })
// The spec's retry-eligibility index (failed tools by their collections' retry counts); the
// dashboard's counts of exhausted retries.
@index(
  {
    'syncMetadata.overallStatus': 1,
    'syncMetadata.collections.tools.retryCount': 1,
    'syncMetadata.collections.functionality.retryCount': 1,
    'syncMetadata.collections.usecases.retryCount': 1,
    'syncMetadata.collections.interface.retryCount': 1,
  },
  { name: 'sync_retry_eligibility_idx' },
)
// findRetryable() and claimSyncWork(), per collection: failed collections by the time their retry is due, earliest
// first (a poll reads about as many tools as it returns, however many have failed).
@index({ 'syncMetadata.collections.tools.status': 1, 'syncMetadata.collections.tools.nextRetryAt': 1 }, { name: 'sync_tools_retry_due_idx' })
@index({ 'syncMetadata.collections.functionality.status': 1, 'syncMetadata.collections.functionality.nextRetryAt': 1 }, { name: 'sync_functionality_retry_due_idx' })
@index({ 'syncMetadata.collections.usecases.status': 1, 'syncMetadata.collections.usecases.nextRetryAt': 1 }, { name: 'sync_usecases_retry_due_idx' })
@index({ 'syncMetadata.collections.interface.status': 1, 'syncMetadata.collections.interface.nextRetryAt': 1 }, { name: 'sync_interface_retry_due_idx' })
// claimSyncWork(), per collection: waiting work (pending or stale) by its metadata time, oldest
// first (a claim moves a tool's time to now, so tools in flight are not at the head).
@index({ 'syncMetadata.collections.tools.status': 1, 'syncMetadata.updatedAt': 1 }, { name: 'sync_tools_waiting_idx' })
@index({ 'syncMetadata.collections.functionality.status': 1, 'syncMetadata.updatedAt': 1 }, { name: 'sync_functionality_waiting_idx' })
@index({ 'syncMetadata.collections.usecases.status': 1, 'syncMetadata.updatedAt': 1 }, { name: 'sync_usecases_waiting_idx' })
@index({ 'syncMetadata.collections.interface.status': 1, 'syncMetadata.updatedAt': 1 }, { name: 'sync_interface_waiting_idx' })
// The settle after a write (`find({ pendingHashCheck: token })`), findNeedingSync and `tool-sync settle`.
@index({ 'syncMetadata.pendingHashCheck': 1 }, { name: 'sync_pending_hash_check_idx' })
@modelOptions({
  // Index builds are the operator's decision (`tool-sync indexes --apply`, `checkIndexes(model, { apply: true })`).
  // The package's own bookkeeping array is no reason for Mongoose to version a save: two saves of
  // different fields must not conflict because each records what it changed.
  schemaOptions: { collection: 'tools', timestamps: true, autoIndex: false, skipVersioning: { 'syncMetadata.lastModifiedFields': true } },
  options: { customName: 'Tool', allowMixed: Severity.ERROR },
})
export class Tool extends ToolFields {
  /** Sync infrastructure metadata, isolated from business data. */
  // Not required: a tool loaded without it (a projection) saves its business fields as they are.
  // Default {}: the schema fills each field's own default (what defaultSyncMetadata() gives), at
  // about half the CPU of casting a prebuilt object into its six subdocuments.
  @prop({ type: () => SyncMetadata, default: () => ({}) })
  public syncMetadata!: SyncMetadata;

  /** Set by `timestamps: true`: business edits only (sync transitions move `syncMetadata.updatedAt`). */
  public createdAt?: Date;
  public updatedAt?: Date;

  /** The worker embedded the content with this hash: `synced`, unless the content changed meanwhile. */
  public static markCollectionSynced(
    this: ReturnModelType<typeof Tool>,
    toolId: Types.ObjectId | string,
    collection: SyncCollectionName,
    /**
     * `workerId`: the claimant; refused (`claim-lost`) while another worker's live lease holds the
     * work. `embeddingModel`: the model that made the vector (recorded; null when not given).
     */
    options: { contentHash: string; workerId?: string; embeddingModel?: string | null },
  ): Promise<MarkSyncedResult> {
    return markCollectionSynced(this, toolId, collection, options);
  }

  /** A sync attempt failed at `stage`: `failed`, classified, one more retry counted. */
  public static markCollectionFailed(
    this: ReturnModelType<typeof Tool>,
    toolId: Types.ObjectId | string,
    collection: SyncCollectionName,
    error: unknown,
    stage: SyncStage,
    /** `workerId`: the claimant; nothing is recorded while another worker's live lease holds the work. */
    options: { workerId?: string } = {},
  ): Promise<MarkFailedResult> {
    return markCollectionFailed(this, toolId, collection, error, stage, options);
  }

  /**
   * Many pairs' marks in one bulk, each exactly as markCollectionSynced or markCollectionFailed
   * would make it (`workerId`: the claimant, as there); one result (or error) per item, in order.
   */
  public static markBatch(
    this: ReturnModelType<typeof Tool>,
    items: MarkBatchItem[],
    options: { workerId?: string; embeddingModel?: string | null } = {},
  ): Promise<MarkBatchOutcome[]> {
    return markBatch(this, items, options);
  }

  /**
   * Claims up to `limit` tool × collection pairs that need work (pending, stale, or failed and
   * due), oldest first, each leased to `workerId` for `leaseMs`; no other worker gets them until
   * the lease ends or they are marked or released.
   */
  public static claimSyncWork(
    this: ReturnModelType<typeof Tool>,
    options: { workerId: string; limit?: number; leaseMs?: number; collections?: SyncCollectionName[]; maxRetries?: number; now?: Date },
  ): Promise<ClaimedTool[]> {
    return claimSyncWork(this, options);
  }

  /** Renews the leases `workerId` still holds among `claims` (`now`: the clock its claims use); returns those renewed. */
  public static extendClaims(
    this: ReturnModelType<typeof Tool>,
    workerId: string,
    claims: { toolId: Types.ObjectId | string; collection: SyncCollectionName }[],
    options: { leaseMs?: number; now?: Date } = {},
  ): Promise<{ toolId: Types.ObjectId; collection: SyncCollectionName }[]> {
    return extendClaims(this, workerId, claims, options);
  }

  /** Gives back `workerId`'s claims (the pairs of `claims`, or on `toolIds`, or everywhere); returns how many pairs. */
  public static releaseClaims(
    this: ReturnModelType<typeof Tool>,
    workerId: string,
    options: { toolIds?: (Types.ObjectId | string)[]; claims?: { toolId: Types.ObjectId | string; collection: SyncCollectionName }[] } = {},
  ): Promise<number> {
    return releaseClaims(this, workerId, options);
  }

  /** Puts failed collections back in line; returns how many (tool × collection) it requeued. */
  public static requeueFailed(
    this: ReturnModelType<typeof Tool>,
    options: { collections?: SyncCollectionName[]; errorCodes?: SyncErrorCode[]; toolIds?: (Types.ObjectId | string)[] } = {},
  ): Promise<number> {
    return requeueFailed(this, options);
  }

  /** Tools with a pending or stale collection, oldest metadata change first (the worker's queue). */
  public static findNeedingSync(
    this: ReturnModelType<typeof Tool>,
    options: { limit?: number; collections?: SyncCollectionName[] } = {},
  ): Promise<DocumentType<Tool>[]> {
    return findNeedingSync(this, options);
  }

  /** Failed collections under the retry limit whose backoff has elapsed. */
  public static findRetryable(
    this: ReturnModelType<typeof Tool>,
    options: { maxRetries?: number; now?: Date; limit?: number } = {},
  ): Promise<RetryableTool[]> {
    return findRetryable(this, options);
  }

  /**
   * Makes the tool's stored sync state agree with its stored content (completes missing
   * metadata, transitions collections whose hash changed, clears a pending hash check).
   * Returns whether anything was written.
   */
  public static settleSyncState(this: ReturnModelType<typeof Tool>, toolId: Types.ObjectId | string): Promise<boolean> {
    return settleTool(this, toolId);
  }

  /**
   * The embedding model of `collection` changed: every `synced` collection whose vector another
   * model made (or an unrecorded one) goes `stale`, in batches of `batchSize`, so the worker
   * re-embeds it. Returns how many it flagged (with `dryRun`, would flag). Resumable; tools whose
   * metadata cannot be used are skipped (`reembed()` and `tool-sync reembed` report them).
   */
  public static flagEmbeddingModelChange(
    this: ReturnModelType<typeof Tool>,
    collection: SyncCollectionName,
    embeddingModel: string,
    options: { batchSize?: number; dryRun?: boolean } = {},
  ): Promise<number> {
    return flagEmbeddingModelChange(this, collection, embeddingModel, options);
  }

  /**
   * Claims up to `limit` removals of deleted tools' points (tombstone × collection), pending or
   * failed and due, leased to `workerId`; returns `{ toolObjectId, id, deletedAt, collections }`.
   */
  public static claimVectorDeletions(
    this: ReturnModelType<typeof Tool>,
    options: { workerId: string; limit?: number; leaseMs?: number; collections?: SyncCollectionName[]; maxRetries?: number; now?: Date },
  ): Promise<ClaimedDeletion[]> {
    return claimVectorDeletions(this, options);
  }

  /** A deleted tool's points are gone from `collection`; its tombstone goes once all are. */
  public static markVectorDeleted(
    this: ReturnModelType<typeof Tool>,
    toolObjectId: Types.ObjectId | string,
    collection: SyncCollectionName,
    options: { workerId?: string } = {},
  ): Promise<VectorDeletedResult> {
    return markVectorDeleted(this, toolObjectId, collection, options);
  }

  /**
   * Many removals' marks in one bulk, each exactly as markVectorDeleted or markVectorDeleteFailed
   * would make it; one result (or error) per item, in order.
   */
  public static markDeletionBatch(
    this: ReturnModelType<typeof Tool>,
    items: DeletionMarkItem[],
    options: { workerId?: string } = {},
  ): Promise<DeletionMarkOutcome[]> {
    return markDeletionBatch(this, items, options);
  }

  /** Removing a deleted tool's points from `collection` failed: recorded, retried after the backoff. */
  public static markVectorDeleteFailed(
    this: ReturnModelType<typeof Tool>,
    toolObjectId: Types.ObjectId | string,
    collection: SyncCollectionName,
    error: unknown,
    options: { workerId?: string } = {},
  ): Promise<VectorDeleteFailedResult> {
    return markVectorDeleteFailed(this, toolObjectId, collection, error, options);
  }

  /** Failed removals of deleted tools' points back in line; returns how many. */
  public static requeueFailedDeletions(
    this: ReturnModelType<typeof Tool>,
    options: { collections?: SyncCollectionName[]; errorCodes?: SyncErrorCode[] } = {},
  ): Promise<number> {
    return requeueFailedDeletions(this, options);
  }

  /** The dashboard's numbers. */
  public static getSyncStats(this: ReturnModelType<typeof Tool>, options: { now?: Date; full?: boolean } = {}): Promise<SyncStats> {
    return getSyncStats(this, options);
  }
}

/** The default connection's `Tool` model on `tools`: created on first use, never by an import. */
export const defaultToolModel = lazyModel(() => explainTakenName(() => getModelForClass(Tool)));
export const ToolModel: ReturnModelType<typeof Tool> = defaultToolModel.model;

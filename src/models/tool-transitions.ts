import { type ReturnModelType } from '@typegoose/typegoose';
import { type Types } from 'mongoose';
import { classifySyncError, errorMessage, type SyncStage, SYNC_STAGES } from '../sync/error-classification.js';
import { aggregateSyncStatus } from '../sync/status-order.js';
import { computeContentHashes, type ToolContent } from '../sync/content-hash.js';
import { reconcileHashes, type StoredCollectionState } from '../sync/reconcile.js';
import { afterRequeue } from '../sync/transitions.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncErrorCode, type SyncStatus } from '../sync/vocabulary.js';
import { collectionPath, type CollectionSyncStatus } from './collection-sync-status.js';
import { SyncArgumentError, SyncConflictError, ToolNotFoundError } from './errors.js';
import { contentAsRead, hasCompleteSyncMetadata, reconciliationSet, statusesAsRead } from './sync-conditions.js';
import { collectionName, collectionNames, contentHashArgument, errorCodes, toolObjectId } from './sync-arguments.js';
import { type Tool } from './tool.js';
import { truncateLastError } from './validators.js';

type ToolModelType = ReturnModelType<typeof Tool>;

/*
 * The conditional writes below go to the driver's collection directly: their values are
 * computed and complete here, they must not bump the tool's own `updatedAt` (a sync transition
 * is not a business edit), and they must not pass through the model's write-path routing.
 */

/** A lost compare-and-swap is retried this many times before the caller is told. */
const MAX_ATTEMPTS = 50;

type StoredCollections = Partial<Record<SyncCollectionName, Partial<CollectionSyncStatus>>>;
interface StoredSync {
  _id: Types.ObjectId;
  syncMetadata?: { overallStatus?: SyncStatus; collections?: StoredCollections };
}


function statusesOf(stored: StoredSync): Record<SyncCollectionName, SyncStatus> {
  const statuses = {} as Record<SyncCollectionName, SyncStatus>;
  for (const name of SYNC_COLLECTION_NAMES) statuses[name] = stored.syncMetadata?.collections?.[name]?.status ?? 'pending';
  return statuses;
}

async function readSync(model: ToolModelType, id: Types.ObjectId): Promise<StoredSync> {
  const stored = await model.findById(id, { syncMetadata: 1 }).lean<StoredSync>();
  if (stored === null) throw new ToolNotFoundError(id.toHexString());
  return stored;
}

/**
 * Reads a tool's sync state, completing it first if it was written before this package
 * (no metadata, or no hashes yet): saving it through the model fills in what is missing.
 */
async function readCompleteSync(model: ToolModelType, id: Types.ObjectId): Promise<StoredSync> {
  const stored = await readSync(model, id);
  if (hasCompleteSyncMetadata(stored)) return stored;
  const doc = await model.findById(id);
  if (doc === null) throw new ToolNotFoundError(id.toHexString());
  await doc.save();
  return readSync(model, id);
}

/**
 * Runs `attempt` until its conditional write matches: it gets a fresh read each time and
 * returns undefined when its compare-and-swap lost.
 */
async function withRetries<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < MAX_ATTEMPTS; i += 1) {
    const result = await attempt();
    if (result !== undefined) return result;
  }
  throw new SyncConflictError(`${what}: the tool kept changing under ${MAX_ATTEMPTS} attempts; try again`);
}

export type MarkSyncedResult =
  | { synced: true; vectorVersion: number }
  | { synced: false; reason: 'content-changed'; currentContentHash: string };

/**
 * The worker embedded the content whose hash it read. The collection becomes `synced` only if
 * the stored hash is still that one; otherwise the attempt is recorded and the caller is told
 * to embed again.
 */
export async function markCollectionSynced(
  model: ToolModelType,
  toolId: unknown,
  collectionArg: unknown,
  options: { contentHash: unknown },
): Promise<MarkSyncedResult> {
  const id = toolObjectId(toolId);
  const collection = collectionName(collectionArg);
  const contentHash = contentHashArgument((options as { contentHash?: unknown } | undefined)?.contentHash);
  return withRetries(`markCollectionSynced(${id.toHexString()}, ${collection})`, async () => {
    const stored = await readCompleteSync(model, id);
    const current = stored.syncMetadata?.collections?.[collection];
    const now = new Date();
    if (current?.contentHash !== contentHash) {
      const recorded = await model.collection.updateOne(
        { _id: id, [collectionPath(collection, 'contentHash')]: current?.contentHash },
        { $set: { [collectionPath(collection, 'lastSyncAttemptAt')]: now, 'syncMetadata.updatedAt': now } },
      );
      if (recorded.matchedCount === 0) return undefined;
      return { synced: false, reason: 'content-changed', currentContentHash: current?.contentHash ?? '' } as const;
    }
    const statuses = statusesOf(stored);
    const overallStatus = aggregateSyncStatus(SYNC_COLLECTION_NAMES.map((name) => (name === collection ? 'synced' : statuses[name])));
    const result = await model.collection.updateOne(
      { _id: id, ...statusesAsRead(statuses), [collectionPath(collection, 'contentHash')]: contentHash },
      {
        $set: {
          [collectionPath(collection, 'status')]: 'synced',
          [collectionPath(collection, 'lastSyncedAt')]: now,
          [collectionPath(collection, 'lastSyncAttemptAt')]: now,
          [collectionPath(collection, 'lastError')]: null,
          [collectionPath(collection, 'errorCode')]: null,
          [collectionPath(collection, 'retryCount')]: 0,
          'syncMetadata.overallStatus': overallStatus,
          'syncMetadata.updatedAt': now,
        },
        $inc: { [collectionPath(collection, 'vectorVersion')]: 1 },
      },
    );
    if (result.matchedCount === 0) return undefined;
    return { synced: true, vectorVersion: (current.vectorVersion ?? 0) + 1 } as const;
  });
}

export interface MarkFailedResult {
  errorCode: SyncErrorCode;
  retryCount: number;
}

/** A sync attempt failed: records the failure, classified, and counts the retry. */
export async function markCollectionFailed(
  model: ToolModelType,
  toolId: unknown,
  collectionArg: unknown,
  error: unknown,
  stage: unknown,
): Promise<MarkFailedResult> {
  const id = toolObjectId(toolId);
  const collection = collectionName(collectionArg);
  if (!(SYNC_STAGES as readonly unknown[]).includes(stage)) throw new SyncArgumentError('stage', stage, `one of ${SYNC_STAGES.join(', ')}`);
  const errorCode = classifySyncError(error, stage as SyncStage);
  const lastError = truncateLastError(errorMessage(error));
  return withRetries(`markCollectionFailed(${id.toHexString()}, ${collection})`, async () => {
    const stored = await readCompleteSync(model, id);
    const statuses = statusesOf(stored);
    const overallStatus = aggregateSyncStatus(SYNC_COLLECTION_NAMES.map((name) => (name === collection ? 'failed' : statuses[name])));
    const now = new Date();
    const updated = await model.collection.findOneAndUpdate(
      { _id: id, ...statusesAsRead(statuses) },
      {
        $set: {
          [collectionPath(collection, 'status')]: 'failed',
          [collectionPath(collection, 'lastSyncAttemptAt')]: now,
          [collectionPath(collection, 'lastError')]: lastError,
          [collectionPath(collection, 'errorCode')]: errorCode,
          'syncMetadata.overallStatus': overallStatus,
          'syncMetadata.updatedAt': now,
        },
        $inc: { [collectionPath(collection, 'retryCount')]: 1 },
      },
      // No projection: FerretDB v1 does not implement one on findAndModify.
      { returnDocument: 'after' },
    ) as StoredSync | null;
    if (updated === null) return undefined;
    return { errorCode, retryCount: updated.syncMetadata?.collections?.[collection]?.retryCount ?? 0 };
  });
}

export interface RequeueOptions {
  collections?: unknown;
  errorCodes?: unknown;
  toolIds?: unknown;
}

/**
 * Puts failed collections back in line (`stale` if ever synced, else `pending`, retries reset),
 * for the operator who fixed the cause. Returns how many collections (tool × collection) it requeued.
 */
export async function requeueFailed(model: ToolModelType, options: RequeueOptions = {}): Promise<number> {
  const collections = collectionNames(options.collections);
  const codes = errorCodes(options.errorCodes);
  const ids = options.toolIds === undefined ? undefined : Array.isArray(options.toolIds)
    ? options.toolIds.map((id, index) => toolObjectId(id, `toolIds[${index}]`))
    : (() => { throw new SyncArgumentError('toolIds', options.toolIds, 'an array of tool _ids'); })();

  const failedIn = (name: SyncCollectionName): Record<string, unknown> => ({
    [collectionPath(name, 'status')]: 'failed',
    ...(codes === undefined ? {} : { [collectionPath(name, 'errorCode')]: { $in: codes } }),
  });
  const filter = { ...(ids === undefined ? {} : { _id: { $in: ids } }), $or: collections.map(failedIn) };

  let requeued = 0;
  for await (const candidate of model.find(filter, { _id: 1 }).lean<{ _id: Types.ObjectId }>().cursor()) {
    requeued += await withRetries(`requeueFailed(${candidate._id.toHexString()})`, async () => {
      const stored = await readSync(model, candidate._id);
      const statuses = statusesOf(stored);
      const set: Record<string, unknown> = {};
      const next = { ...statuses };
      for (const name of collections) {
        const state = stored.syncMetadata?.collections?.[name];
        const code = state?.errorCode ?? null;
        if (codes !== undefined && (code === null || !codes.includes(code))) continue;
        const change = afterRequeue({ status: statuses[name], lastSyncedAt: state?.lastSyncedAt ?? null, retryCount: state?.retryCount ?? 0 });
        if (change === null) continue;
        next[name] = change.status;
        set[collectionPath(name, 'status')] = change.status;
        set[collectionPath(name, 'retryCount')] = change.retryCount;
      }
      const count = Object.keys(set).length / 2;
      if (count === 0) return 0;
      set['syncMetadata.overallStatus'] = aggregateSyncStatus(Object.values(next));
      set['syncMetadata.updatedAt'] = new Date();
      const result = await model.collection.updateOne({ _id: candidate._id, ...statusesAsRead(statuses) }, { $set: set });
      return result.matchedCount === 0 ? undefined : count;
    });
  }
  return requeued;
}

/**
 * Makes a tool's stored sync state agree with its stored content: every collection whose hash
 * no longer describes the content goes through `afterContentChange` with the right hash, and the
 * overall status becomes the aggregate. Written only if the statuses and the content are still
 * as read. Used after a save, which computes hashes from the content it loaded: a concurrent
 * atomic `$push` by someone else lands in the database but not in that computation.
 */
export async function reconcileSyncState(model: ToolModelType, id: Types.ObjectId): Promise<void> {
  await withRetries(`reconcileSyncState(${id.toHexString()})`, async () => {
    const stored = await model.collection.findOne({ _id: id }) as (StoredSync & ToolContent) | null;
    if (stored === null || !hasCompleteSyncMetadata(stored)) return true;
    const statuses = statusesOf(stored);
    const states = {} as Record<SyncCollectionName, StoredCollectionState>;
    for (const name of SYNC_COLLECTION_NAMES) {
      const state = stored.syncMetadata?.collections?.[name];
      states[name] = { status: statuses[name], lastSyncedAt: state?.lastSyncedAt ?? null, retryCount: state?.retryCount ?? 0, contentHash: state?.contentHash ?? '' };
    }
    const { changes, statuses: next } = reconcileHashes(states, computeContentHashes(stored));
    const set = reconciliationSet(changes);
    const overallStatus = aggregateSyncStatus(Object.values(next));
    if (Object.keys(set).length === 0 && stored.syncMetadata?.overallStatus === overallStatus) return true;
    const result = await model.collection.updateOne(
      { _id: id, ...statusesAsRead(statuses), ...contentAsRead(stored) },
      { $set: { ...set, 'syncMetadata.overallStatus': overallStatus, 'syncMetadata.updatedAt': new Date() } },
    );
    return result.matchedCount === 0 ? undefined : true;
  });
}

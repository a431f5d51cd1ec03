import { type ReturnModelType } from '@typegoose/typegoose';
import { classifySyncError, errorMessage, type SyncStage, SYNC_STAGES } from '../sync/error-classification.js';
import { planMarkFailed, type MarkFailedResult } from '../sync/plans/mark-failed.js';
import { planMarkSynced, type MarkSyncedResult } from '../sync/plans/mark-synced.js';
import { planRequeue } from '../sync/plans/requeue.js';
import { type Decision } from '../sync/plans/plan.js';
import { planSettle } from '../sync/plans/settle.js';
import { type StoredTool } from '../sync/stored-tool.js';
import { collectionPath } from '../sync/sync-state.js';
import { type SyncCollectionName } from '../sync/vocabulary.js';
import { toolCollection } from './change-tracking/settle-after-write.js';
import { applyPlan } from './conditional-write.js';
import { SyncArgumentError } from './errors.js';
import { collectionName, collectionNames, contentHashArgument, embeddingModelArgument, errorCodes, toolObjectId } from './sync-arguments.js';
import { type Tool } from './tool.js';
import { workerIdOption } from './tool-claims.js';
import { reopenRemoval } from './tombstones.js';
import { truncateLastError } from './validators.js';

type ToolModelType = ReturnModelType<typeof Tool>;

/*
 * Each transition parses its arguments, then carries out its plan (src/sync/plans) through the
 * shared conditional write. The writes go to the driver's collection: their values are computed
 * and complete, and a sync transition is not a business edit (the tool's `updatedAt` stays).
 */

export type { MarkFailedResult, MarkSyncedResult };

export async function markCollectionSynced(
  model: ToolModelType,
  toolId: unknown,
  collectionArg: unknown,
  options: { contentHash: unknown; workerId?: unknown; embeddingModel?: unknown },
): Promise<MarkSyncedResult> {
  const id = toolObjectId(toolId);
  const collection = collectionName(collectionArg);
  const given = options as { contentHash?: unknown; workerId?: unknown; embeddingModel?: unknown } | undefined;
  const contentHash = contentHashArgument(given?.contentHash);
  const workerId = workerIdOption(given);
  const embeddingModel = given?.embeddingModel === undefined || given.embeddingModel === null ? null : embeddingModelArgument(given.embeddingModel);
  const result = await applyPlan<MarkSyncedResult>(toolCollection(model), id, (tool, now) => planMarkSynced(tool, collection, contentHash, now, workerId, embeddingModel), {
    what: `markCollectionSynced(${id.toHexString()}, ${collection})`,
    missing: () => ({ synced: false, reason: 'deleted' }),
  });
  // The caller wrote a point for a tool that is gone: its removal comes after that write.
  if (!result.synced && result.reason === 'deleted') await reopenRemoval(model, id, collection);
  return result;
}

export async function markCollectionFailed(
  model: ToolModelType,
  toolId: unknown,
  collectionArg: unknown,
  error: unknown,
  stage: unknown,
  options: { workerId?: unknown } = {},
): Promise<MarkFailedResult> {
  const id = toolObjectId(toolId);
  const collection = collectionName(collectionArg);
  if (!(SYNC_STAGES as readonly unknown[]).includes(stage)) throw new SyncArgumentError('stage', stage, `one of ${SYNC_STAGES.join(', ')}`);
  const workerId = workerIdOption(options);
  const failure = { errorCode: classifySyncError(error, stage as SyncStage), lastError: String(truncateLastError(errorMessage(error))) };
  // A failed store write may have landed all the same.
  const mayHaveWritten = stage === 'qdrant';
  const result = await applyPlan<MarkFailedResult>(toolCollection(model), id, (tool, now) => planMarkFailed(tool, collection, failure, now, workerId, mayHaveWritten), {
    what: `markCollectionFailed(${id.toHexString()}, ${collection})`,
    missing: () => ({ recorded: false, reason: 'deleted', errorCode: failure.errorCode }),
  });
  if (!result.recorded && result.reason === 'deleted' && mayHaveWritten) await reopenRemoval(model, id, collection);
  return result;
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
  const candidates = await toolCollection(model).find(filter, { projection: { _id: 1 } }).toArray();
  let requeued = 0;
  for (const candidate of candidates) {
    const id = candidate._id;
    requeued += await applyPlan(toolCollection(model), id, (tool, now) => planRequeue(tool, collections, codes, now), {
      what: `requeueFailed(${id.toHexString()})`,
    });
  }
  return requeued;
}

/** Settles one tool; returns whether anything was written. */
export async function settleTool(model: ToolModelType, toolId: unknown): Promise<boolean> {
  const id = toolObjectId(toolId);
  let wrote = false;
  return applyPlan<boolean>(toolCollection(model), id, (tool: StoredTool, now): Decision<boolean> => {
    const plan = planSettle(tool, now);
    if (plan.kind === 'invalid') return plan;
    if (plan.kind === 'settled') return { kind: 'done', write: null, result: wrote };
    wrote = true;
    return { kind: 'again', write: plan.write };
  }, { what: `settleSyncState(${id.toHexString()})` });
}

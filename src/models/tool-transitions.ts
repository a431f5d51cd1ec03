import { type ReturnModelType } from '@typegoose/typegoose';
import { type Types } from 'mongoose';
import { classifySyncError, errorMessage, type SyncStage, SYNC_STAGES } from '../sync/error-classification.js';
import { planMarkFailed, type MarkFailedResult } from '../sync/plans/mark-failed.js';
import { planMarkSynced, type MarkSyncedResult } from '../sync/plans/mark-synced.js';
import { planRequeue } from '../sync/plans/requeue.js';
import { type Decision } from '../sync/plans/plan.js';
import { planSettle } from '../sync/plans/settle.js';
import { type StoredTool } from '../sync/stored-tool.js';
import { collectionPath } from '../sync/sync-state.js';
import { type SyncCollectionName, type SyncErrorCode } from '../sync/vocabulary.js';
import { bulkSizeOf, toolCollection } from './change-tracking/settle-after-write.js';
import { applyPlan, applyPlans, type PlanItem } from './conditional-write.js';
import { SyncArgumentError } from './errors.js';
import { collectionName, collectionNames, contentHashArgument, embeddingModelArgument, errorCodes, toolObjectId } from './sync-arguments.js';
import { type Tool } from './tool.js';
import { workerIdOption } from './tool-claims.js';
import { reopenRemoval, reopenRemovals } from './tombstones.js';
import { truncateLastError } from './validators.js';

type ToolModelType = ReturnModelType<typeof Tool>;

/*
 * Each transition parses its arguments, then carries out its plan (src/sync/plans) through the
 * shared conditional write. The writes go to the driver's collection: their values are computed
 * and complete, and a sync transition is not a business edit (the tool's `updatedAt` stays).
 */

export type { MarkFailedResult, MarkSyncedResult };

/** A mark of one pair: the worker's report, parsed (see markBatch). */
type ParsedMark =
  | { id: Types.ObjectId; collection: SyncCollectionName; outcome: 'synced'; contentHash: string }
  | { id: Types.ObjectId; collection: SyncCollectionName; outcome: 'failed'; failure: { errorCode: SyncErrorCode; lastError: string }; stage: SyncStage };

type MarkResult = MarkSyncedResult | MarkFailedResult;

function embeddingModelOption(value: unknown): string | null {
  return value === undefined || value === null ? null : embeddingModelArgument(value);
}

function failureOf(error: unknown, stage: unknown, argument: string): { failure: { errorCode: SyncErrorCode; lastError: string }; stage: SyncStage } {
  if (!(SYNC_STAGES as readonly unknown[]).includes(stage)) throw new SyncArgumentError(argument, stage, `one of ${SYNC_STAGES.join(', ')}`);
  const known = stage as SyncStage;
  return { failure: { errorCode: classifySyncError(error, known), lastError: String(truncateLastError(errorMessage(error))) }, stage: known };
}

/** A failed store write may have landed all the same. */
const mayHaveWritten = (mark: ParsedMark): boolean => mark.outcome === 'synced' || mark.stage === 'qdrant';

/** One mark as a plan of the shared conditional write (planMarkSynced or planMarkFailed). */
function markPlan(mark: ParsedMark, workerId: string | undefined, embeddingModel: string | null): PlanItem<MarkResult, StoredTool> {
  const { id, collection } = mark;
  if (mark.outcome === 'synced') {
    return {
      id,
      decide: (tool, now) => planMarkSynced(tool, collection, mark.contentHash, now, workerId, embeddingModel),
      missing: (): MarkResult => ({ synced: false, reason: 'deleted' }),
    };
  }
  return {
    id,
    decide: (tool, now) => planMarkFailed(tool, collection, mark.failure, now, workerId, mayHaveWritten(mark)),
    missing: (): MarkResult => ({ recorded: false, reason: 'deleted', errorCode: mark.failure.errorCode }),
  };
}

/** A mark for a tool that is gone after a store write: its point is owed a removal after that write. */
const owesRemoval = (mark: ParsedMark, result: MarkResult): boolean =>
  'reason' in result && result.reason === 'deleted' && mayHaveWritten(mark);

export async function markCollectionSynced(
  model: ToolModelType,
  toolId: unknown,
  collectionArg: unknown,
  options: { contentHash: unknown; workerId?: unknown; embeddingModel?: unknown },
): Promise<MarkSyncedResult> {
  const id = toolObjectId(toolId);
  const collection = collectionName(collectionArg);
  const given = options as { contentHash?: unknown; workerId?: unknown; embeddingModel?: unknown } | undefined;
  const mark: ParsedMark = { id, collection, outcome: 'synced', contentHash: contentHashArgument(given?.contentHash) };
  const plan = markPlan(mark, workerIdOption(given), embeddingModelOption(given?.embeddingModel));
  const result = await applyPlan(toolCollection(model), id, plan.decide, { what: `markCollectionSynced(${id.toHexString()}, ${collection})`, missing: plan.missing });
  // The caller wrote a point for a tool that is gone: its removal comes after that write.
  if (owesRemoval(mark, result)) await reopenRemoval(model, id, collection);
  return result as MarkSyncedResult;
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
  const mark: ParsedMark = { id, collection, outcome: 'failed', ...failureOf(error, stage, 'stage') };
  const plan = markPlan(mark, workerIdOption(options), null);
  const result = await applyPlan(toolCollection(model), id, plan.decide, { what: `markCollectionFailed(${id.toHexString()}, ${collection})`, missing: plan.missing });
  if (owesRemoval(mark, result)) await reopenRemoval(model, id, collection);
  return result as MarkFailedResult;
}

/** One pair's report in a batch of marks: synced (the content of `contentHash` is in the store), or failed at `stage`. */
export type MarkBatchItem =
  | { toolId: Types.ObjectId | string; collection: SyncCollectionName; outcome: 'synced'; contentHash: string }
  | { toolId: Types.ObjectId | string; collection: SyncCollectionName; outcome: 'failed'; error: unknown; stage: SyncStage };

/**
 * What one mark of a batch came to: the result markCollectionSynced or markCollectionFailed would
 * have given it, or the error of that pair alone (its write refused, its metadata unusable, or it
 * kept changing) — the rest of the batch is marked all the same.
 */
export type MarkBatchOutcome =
  | { toolId: Types.ObjectId; collection: SyncCollectionName; outcome: 'synced'; result: MarkSyncedResult }
  | { toolId: Types.ObjectId; collection: SyncCollectionName; outcome: 'failed'; result: MarkFailedResult }
  | { toolId: Types.ObjectId; collection: SyncCollectionName; outcome: 'synced' | 'failed'; error: Error };

function markItem(value: unknown, index: number): ParsedMark {
  const at = `items[${index}]`;
  if (typeof value !== 'object' || value === null) throw new SyncArgumentError(at, value, 'an object { toolId, collection, outcome, ... }');
  const item = value as { toolId?: unknown; collection?: unknown; outcome?: unknown; contentHash?: unknown; error?: unknown; stage?: unknown };
  const id = toolObjectId(item.toolId, `${at}.toolId`);
  const collection = collectionName(item.collection, `${at}.collection`);
  if (item.outcome === 'synced') return { id, collection, outcome: 'synced', contentHash: contentHashArgument(item.contentHash, `${at}.contentHash`) };
  if (item.outcome === 'failed') return { id, collection, outcome: 'failed', ...failureOf(item.error, item.stage, `${at}.stage`) };
  throw new SyncArgumentError(`${at}.outcome`, item.outcome, "'synced' or 'failed'");
}

/**
 * Many pairs' marks at once, each exactly as markCollectionSynced or markCollectionFailed (the
 * same plans, the same results, the same fencing: a claim lost after a store write re-opens the
 * pair, a deleted tool's write is owed a removal). One `find` of their tools and one unordered bulk
 * of conditional writes (split as the engine needs: 25 statements a command on FerretDB 1.x); a
 * tool whose write lost is read again and planned again. Two marks of the same pair in one batch
 * are refused: the second would find the claim the first released.
 */
export async function markBatch(model: ToolModelType, itemsArg: unknown, options: { workerId?: unknown; embeddingModel?: unknown } = {}): Promise<MarkBatchOutcome[]> {
  if (!Array.isArray(itemsArg)) throw new SyncArgumentError('items', itemsArg, 'an array of marks { toolId, collection, outcome, ... }');
  const workerId = workerIdOption(options);
  const embeddingModel = embeddingModelOption((options as { embeddingModel?: unknown } | undefined)?.embeddingModel);
  const marks = itemsArg.map((item: unknown, index) => markItem(item, index));
  const seen = new Set<string>();
  marks.forEach(({ id, collection }, index) => {
    const key = `${id.toHexString()}/${collection}`;
    if (seen.has(key)) throw new SyncArgumentError(`items[${index}]`, { toolId: id.toHexString(), collection }, 'one mark per tool and collection in a batch');
    seen.add(key);
  });
  if (marks.length === 0) return [];
  const outcomes = await applyPlans(toolCollection(model), marks.map((mark) => markPlan(mark, workerId, embeddingModel)), { bulkSize: bulkSizeOf(model), what: 'markBatch' });
  const owed = marks.filter((mark, index) => {
    const outcome = outcomes[index];
    return outcome?.ok === true && owesRemoval(mark, outcome.value);
  });
  await reopenRemovals(model, owed.map(({ id, collection }) => ({ toolObjectId: id, collection })));
  return marks.map((mark, index): MarkBatchOutcome => {
    const outcome = outcomes[index];
    const pair = { toolId: mark.id, collection: mark.collection };
    if (!outcome?.ok) return { ...pair, outcome: mark.outcome, error: outcome?.error ?? new Error('no outcome') };
    return mark.outcome === 'synced'
      ? { ...pair, outcome: 'synced', result: outcome.value as MarkSyncedResult }
      : { ...pair, outcome: 'failed', result: outcome.value as MarkFailedResult };
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

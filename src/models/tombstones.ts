import { type ReturnModelType } from '@typegoose/typegoose';
import mongoose, { type mongo, type Types } from 'mongoose';
import { classifySyncError, errorMessage } from '../sync/error-classification.js';
import {
  finishedFilter,
  planClaimDeletion,
  planMarkVectorDeleted,
  planMarkVectorDeleteFailed,
  planRecordTombstone,
  planReopenRemoval,
  planRequeueDeletions,
  tombstoneFor,
  tombstoneKey,
  type Tombstone,
  type VectorDeletedResult,
  type VectorDeleteFailedResult,
} from '../sync/plans/tombstone.js';
import { type Decision } from '../sync/plans/plan.js';
import { planReopen } from '../sync/plans/reopen.js';
import { parseSyncState, type StoredTool } from '../sync/stored-tool.js';
import { pointIdFromHex } from '../sync/point-id.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncErrorCode } from '../sync/vocabulary.js';
import { bulkSizeOf } from './change-tracking/settle-after-write.js';
import { applyPlan, applyPlans, type PlanItem, type ToolCollection } from './conditional-write.js';
import { SyncArgumentError } from './errors.js';
import { collectionName, collectionNames, dateArgument, errorCodes, integerInRange, toolObjectId } from './sync-arguments.js';
import { leaseArgument, workerIdArgument, workerIdOption, type ClaimOptions } from './tool-claims.js';
import { limitArgument } from './tool-queries.js';
import { type Tool } from './tool.js';
import { inBulkTurn, updatesPerBulk } from './updates-per-bulk.js';
import { truncateLastError } from './validators.js';

type ToolModelType = ReturnModelType<typeof Tool>;

/** Where deleted tools' tombstones wait for their points to be removed (shared by every tools collection of a database). */
export const TOMBSTONE_COLLECTION = 'tool_sync_tombstones';

export type { Tombstone, VectorDeletedResult, VectorDeleteFailedResult };

const tombstones = (model: ToolModelType): mongo.Collection<Tombstone> => model.db.collection(TOMBSTONE_COLLECTION) as unknown as mongo.Collection<Tombstone>;
/** The same collection, for the shared conditional write (typed for tools, whose `_id` is an ObjectId). */
const planTarget = (model: ToolModelType): ToolCollection => tombstones(model) as unknown as ToolCollection;
const toolsCollectionOf = (model: ToolModelType): string => model.collection.collectionName;

/** Tools read per batch when a delete's candidates are tombstoned. */
const CANDIDATE_BATCH = 1000;

export interface DeleteScope {
  session?: mongo.ClientSession | undefined;
  collation?: mongo.CollationOptions | undefined;
}

/**
 * Before a delete is sent: a tombstone for every tool it may delete that has points in any vector
 * collection (a tool never embedded leaves none). Written first, so a crash between the two leaves
 * the tombstone and the tool, never a deleted tool with no record of its points; a tombstone whose
 * tool still exists is void (see retireLiving). Returns the tools tombstoned.
 */
export async function recordTombstones(model: ToolModelType, filter: mongo.Filter<mongo.Document>, scope: DeleteScope): Promise<Recorded> {
  const recorded: mongo.ObjectId[] = [];
  const token = new mongoose.Types.ObjectId();
  const projection = { _id: 1, id: 1, 'syncMetadata.collections': 1 };
  const cursor = model.collection.find<StoredTool>(filter, { projection, session: scope.session, collation: scope.collation, batchSize: CANDIDATE_BATCH });
  let batch: Tombstone[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const size = await updatesPerBulk(model.db, batch.length);
    for (let start = 0; start < batch.length; start += size) {
      // Merged into one already there: an earlier attempt's (void, but its collections still hold
      // this tool's points) or an earlier incarnation's (a restored `_id`) removals stay owed.
      const writes = batch.slice(start, start + size)
        .map((tombstone) => ({ updateOne: planRecordTombstone(tombstone) })) as mongo.AnyBulkWriteOperation<Tombstone>[];
      await inBulkTurn(tombstones(model), () => tombstones(model).bulkWrite(writes, { ordered: false, session: scope.session }));
    }
    recorded.push(...batch.map(({ toolObjectId }) => toolObjectId));
    batch = [];
  };
  try {
    const now = new Date();
    for await (const tool of cursor) {
      const tombstone = tombstoneFor(tool, toolsCollectionOf(model), now, token);
      if (tombstone !== null) batch.push(tombstone);
      if (batch.length >= CANDIDATE_BATCH) await flush();
    }
    await flush();
  } finally {
    await cursor.close();
  }
  return { token, ids: recorded };
}

/** What a delete's tombstoning wrote: its token and the tools. */
export interface Recorded {
  token: mongo.ObjectId;
  ids: mongo.ObjectId[];
}

/**
 * After a delete (or its failure): the tombstones of tools that still exist are void (the delete
 * matched another tool, or none, or failed) and go. Their points belong to a live tool.
 */
export async function retireLiving(model: ToolModelType, { token, ids }: Recorded, session?: mongo.ClientSession): Promise<void> {
  for (let start = 0; start < ids.length; start += CANDIDATE_BATCH) {
    const chunk = ids.slice(start, start + CANDIDATE_BATCH);
    const living = await model.collection.find({ _id: { $in: chunk } }, { projection: { _id: 1 }, session }).toArray();
    // Only its own: a concurrent delete of the same tool may have written the tombstone again.
    const keys = living.map(({ _id }) => tombstoneKey(toolsCollectionOf(model), _id));
    if (keys.length > 0) await tombstones(model).deleteMany({ _id: { $in: keys }, writtenBy: token }, { session });
  }
}

/**
 * A tombstone whose tool still exists is void (its delete failed, or crashed before it was sent)
 * only once it is this old: until then its delete may simply not have been sent yet (a large
 * deleteMany tombstones every tool first).
 */
export const VOID_TOMBSTONE_AFTER_MS = 60 * 60 * 1000;

/**
 * A stored tombstone the package can act on: its key, an ObjectId tool `_id`, a Date. (Its `id`
 * is only a record: missing when a late write's removal wrote the tombstone, which some engines
 * store without the null.)
 */
const usable = (tombstone: Tombstone): boolean => tombstone.toolObjectId instanceof mongoose.Types.ObjectId
  && tombstone._id === tombstoneKey(tombstone.toolsCollection, tombstone.toolObjectId) && tombstone.deletedAt instanceof Date;

/** A deleted tool's points to remove from `collections`: give them to `remove`, then mark each. */
export interface ClaimedDeletion {
  /** The deleted tool's `_id`. */
  toolObjectId: Types.ObjectId;
  /** The key of its points (pointIdOf its `_id`): remove this point from each collection. */
  pointId: string;
  /** Its business `id` when it was deleted, for the record (null if unknown). */
  id: string | null;
  deletedAt: Date;
  collections: SyncCollectionName[];
}

/** Removals the worker may claim in `name`: pending or failed and due, no lease live, no embedding upsert still to come. */
function removalWork(name: SyncCollectionName, now: Date): Record<string, unknown>[] {
  const path = (key: string): string => `collections.${name}.${key}`;
  const free = { $and: [
    { $or: [{ [path('claimedUntil')]: null }, { [path('claimedUntil')]: { $lte: now } }] },
    { $or: [{ [path('notBefore')]: null }, { [path('notBefore')]: { $lte: now } }] },
  ] };
  return [
    { [path('status')]: 'pending', ...free },
    { [path('status')]: 'failed', [path('nextRetryAt')]: { $lte: now }, ...free },
  ];
}

/**
 * Claims up to `limit` removals (tombstone × collection) that are pending, or failed and due, each
 * leased to `workerId` like live work; never one held by a live lease (this worker's own
 * included), nor one whose tool a worker was embedding when it was deleted until that worker's
 * lease has ended or its mark has come. A tombstone whose tool exists again is void and goes. A
 * tool re-created under the same business `id` is another document (another `_id`, so other
 * points): its predecessor's removals stay owed.
 */
export async function claimVectorDeletions(model: ToolModelType, given: ClaimOptions = {}): Promise<ClaimedDeletion[]> {
  const options = { workerId: workerIdArgument(given.workerId), limit: limitArgument(given.limit, 10), leaseMs: leaseArgument(given.leaseMs), now: given.now };
  const collections = collectionNames(given.collections);
  const maxRetries = integerInRange(given.maxRetries ?? 5, 'maxRetries', 1, 1000);
  const fixedNow = options.now === undefined ? undefined : dateArgument(options.now, 'now');
  const clock = (): Date => fixedNow ?? new Date();
  const now = clock();
  const work = collections.flatMap((name) => removalWork(name, now));
  const found = await tombstones(model).find<Tombstone>({ toolsCollection: toolsCollectionOf(model), $or: work }, { sort: { deletedAt: 1, _id: 1 }, limit: options.limit }).toArray();
  if (found.length === 0) return [];
  const living = await model.collection.find<StoredTool>({ _id: { $in: found.filter(usable).map(({ toolObjectId }) => toolObjectId) } }, { projection: { _id: 1 } }).toArray();
  const liveIds = new Set(living.map(({ _id }) => String(_id)));
  const request = { ...options, collections, maxRetries };
  // The tombstones holding `limit` removals (each claims all of its own), claimed in one bulk.
  const batch: Tombstone[] = [];
  let pairs = 0;
  for (const tombstone of found) {
    if (pairs >= options.limit) break;
    // One the package did not write (or that was edited by hand) is left alone, never handed out.
    if (!usable(tombstone)) continue;
    if (liveIds.has(String(tombstone.toolObjectId))) {
      // Its tool is still there: void once old enough (see VOID_TOMBSTONE_AFTER_MS), never work.
      if (now.getTime() - tombstone.deletedAt.getTime() >= VOID_TOMBSTONE_AFTER_MS) await tombstones(model).deleteOne({ _id: tombstone._id, deletedAt: tombstone.deletedAt });
      continue;
    }
    const planned = planClaimDeletion(tombstone, request, now);
    if (planned.kind !== 'done' || planned.result.length === 0) continue;
    batch.push(tombstone);
    pairs += planned.result.length;
  }
  const outcomes = await applyPlans<SyncCollectionName[], Tombstone>(planTarget(model), batch.map((first) => ({
    id: first._id, first, decide: (stored: Tombstone, at: Date) => planClaimDeletion(stored, request, at), missing: () => [],
  })), { bulkSize: bulkSizeOf(model), what: 'claimVectorDeletions', now: clock });
  const claimed: ClaimedDeletion[] = [];
  outcomes.forEach((outcome, index) => {
    const tombstone = batch[index];
    // One tombstone that cannot be claimed (its state was edited into something no write matches) never stops the others.
    if (!outcome.ok || outcome.value.length === 0 || tombstone === undefined) return;
    const { toolObjectId, deletedAt } = tombstone;
    const id = typeof tombstone.id === 'string' ? tombstone.id : null;
    claimed.push({ toolObjectId, pointId: pointIdFromHex(toolObjectId.toHexString()), id, deletedAt, collections: outcome.value });
  });
  return claimed;
}

/**
 * Points were written (or may have been) for tools that are gone: each one's removal in its
 * collection is owed after that write, whatever the tombstone said (see planReopenRemoval). One
 * bulk of upserts (split as the engine needs).
 */
export async function reopenRemovals(model: ToolModelType, owed: { toolObjectId: mongo.ObjectId; collection: SyncCollectionName }[]): Promise<void> {
  if (owed.length === 0) return;
  const now = new Date();
  const writes = owed.map(({ toolObjectId, collection }) => {
    const { filter, update, upsert } = planReopenRemoval({ toolObjectId, toolsCollection: toolsCollectionOf(model) }, collection, now, new mongoose.Types.ObjectId());
    return { updateOne: { filter, update, upsert } };
  });
  const size = await updatesPerBulk(model.db, writes.length);
  for (let start = 0; start < writes.length; start += size) {
    await inBulkTurn(tombstones(model), () => tombstones(model).bulkWrite(writes.slice(start, start + size), { ordered: false }));
  }
}

export const reopenRemoval = (model: ToolModelType, toolObjectId: mongo.ObjectId, collection: SyncCollectionName): Promise<void> =>
  reopenRemovals(model, [{ toolObjectId, collection }]);

/** Removes the tombstones of `keys` whose removals are all done: one read, one bulk of conditional deletes. */
async function removeFinished(model: ToolModelType, keys: string[]): Promise<void> {
  const unique = [...new Set(keys)];
  if (unique.length === 0) return;
  const read = await tombstones(model).find<Tombstone>(unique.length === 1 ? { _id: unique[0] } : { _id: { $in: unique } }, { limit: unique.length, batchSize: unique.length }).toArray();
  const filters = read.map(finishedFilter).filter((filter): filter is Record<string, unknown> => filter !== null);
  const size = await updatesPerBulk(model.db, filters.length);
  for (let start = 0; start < filters.length; start += size) {
    await inBulkTurn(tombstones(model), () => tombstones(model).bulkWrite(filters.slice(start, start + size).map((filter) => ({ deleteOne: { filter } })), { ordered: false }));
  }
}

/** One removal's report in a batch: the point is gone from `collection` (`removed`), or removing it failed. */
export type DeletionMarkItem =
  | { toolObjectId: Types.ObjectId | string; collection: SyncCollectionName; outcome: 'removed' }
  | { toolObjectId: Types.ObjectId | string; collection: SyncCollectionName; outcome: 'failed'; error: unknown };

/** What one removal's mark came to: markVectorDeleted's or markVectorDeleteFailed's result, or that pair's own error. */
export type DeletionMarkOutcome =
  | { toolObjectId: Types.ObjectId; collection: SyncCollectionName; outcome: 'removed'; result: VectorDeletedResult }
  | { toolObjectId: Types.ObjectId; collection: SyncCollectionName; outcome: 'failed'; result: VectorDeleteFailedResult }
  | { toolObjectId: Types.ObjectId; collection: SyncCollectionName; outcome: 'removed' | 'failed'; error: Error };

type ParsedDeletionMark = { id: Types.ObjectId; collection: SyncCollectionName } & (
  | { outcome: 'removed' }
  | { outcome: 'failed'; failure: { errorCode: SyncErrorCode; lastError: string } }
);

function deletionMark(value: unknown, index: number): ParsedDeletionMark {
  const at = `items[${index}]`;
  if (typeof value !== 'object' || value === null) throw new SyncArgumentError(at, value, 'an object { toolObjectId, collection, outcome }');
  const item = value as { toolObjectId?: unknown; collection?: unknown; outcome?: unknown; error?: unknown };
  const id = toolObjectId(item.toolObjectId, `${at}.toolObjectId`);
  const collection = collectionName(item.collection, `${at}.collection`);
  if (item.outcome === 'removed') return { id, collection, outcome: 'removed' };
  if (item.outcome === 'failed') return { id, collection, outcome: 'failed', failure: { errorCode: classifySyncError(item.error, 'qdrant'), lastError: String(truncateLastError(errorMessage(item.error))) } };
  throw new SyncArgumentError(`${at}.outcome`, item.outcome, "'removed' or 'failed'");
}

/** One removal's mark as a plan of the shared conditional write. */
function deletionPlan(model: ToolModelType, mark: ParsedDeletionMark, workerId: string | undefined): PlanItem<VectorDeletedResult | VectorDeleteFailedResult, Tombstone> {
  const id = tombstoneKey(toolsCollectionOf(model), mark.id);
  if (mark.outcome === 'removed') {
    return { id, decide: (stored, now) => planMarkVectorDeleted(stored, mark.collection, now, workerId), missing: () => ({ done: true }) };
  }
  return {
    id,
    decide: (stored, now) => planMarkVectorDeleteFailed(stored, mark.collection, mark.failure, now, workerId),
    missing: () => ({ recorded: false, reason: 'already-done', claimedBy: null }),
  };
}

/**
 * Many removals' marks at once, each exactly as markVectorDeleted or markVectorDeleteFailed: one
 * `find` of their tombstones and one unordered bulk of conditional writes (split as the engine
 * needs); then the tombstones whose removals are all done go, in one read and one bulk.
 */
export async function markDeletionBatch(model: ToolModelType, itemsArg: unknown, options: { workerId?: unknown } = {}): Promise<DeletionMarkOutcome[]> {
  if (!Array.isArray(itemsArg)) throw new SyncArgumentError('items', itemsArg, 'an array of removals { toolObjectId, collection, outcome }');
  const workerId = workerIdOption(options);
  const marks = itemsArg.map((item: unknown, index) => deletionMark(item, index));
  if (marks.length === 0) return [];
  const outcomes = await applyPlans(planTarget(model), marks.map((mark) => deletionPlan(model, mark, workerId)), { bulkSize: bulkSizeOf(model), what: 'markDeletionBatch' });
  const done = marks.filter((mark, index) => {
    const outcome = outcomes[index];
    return mark.outcome === 'removed' && outcome?.ok === true && 'done' in outcome.value && outcome.value.done;
  });
  await removeFinished(model, done.map((mark) => tombstoneKey(toolsCollectionOf(model), mark.id)));
  await reopenRestored(model, done.map(({ id, collection }) => ({ id, collection })));
  return marks.map((mark, index): DeletionMarkOutcome => {
    const outcome = outcomes[index];
    const pair = { toolObjectId: mark.id, collection: mark.collection };
    if (!outcome?.ok) return { ...pair, outcome: mark.outcome, error: outcome?.error ?? new Error('no outcome') };
    return mark.outcome === 'removed'
      ? { ...pair, outcome: 'removed', result: outcome.value as VectorDeletedResult }
      : { ...pair, outcome: 'failed', result: outcome.value as VectorDeleteFailedResult };
  });
}

/** The points of a deleted tool in `collection` are gone. A tombstone whose collections are all done is removed. */
export async function markVectorDeleted(
  model: ToolModelType,
  toolIdArg: unknown,
  collectionArg: unknown,
  options: { workerId?: unknown } = {},
): Promise<VectorDeletedResult> {
  const id = toolObjectId(toolIdArg, 'toolObjectId');
  const collection = collectionName(collectionArg);
  const workerId = workerIdOption(options);
  const key = tombstoneKey(toolsCollectionOf(model), id);
  const result = await applyPlan<VectorDeletedResult, Tombstone>(planTarget(model), key, (stored, now) => planMarkVectorDeleted(stored, collection, now, workerId), {
    what: `markVectorDeleted(${id.toHexString()}, ${collection})`, missing: () => ({ done: true }),
  });
  if (result.done) {
    await removeFinished(model, [key]);
    await reopenRestored(model, [{ id, collection }]);
  }
  return result;
}

/**
 * Tools whose `_id` came back (a restore) while their points were being removed: the removal may
 * have taken a restored tool's point, so that collection is re-opened (planReopen), never left
 * `synced` over no point. One read for all of them (few ever come back).
 */
async function reopenRestored(model: ToolModelType, removed: { id: mongo.ObjectId; collection: SyncCollectionName }[]): Promise<void> {
  if (removed.length === 0) return;
  const back = await model.collection.find<StoredTool>({ _id: { $in: removed.map(({ id }) => id) } }).toArray();
  for (const tool of back) {
    for (const { collection } of removed.filter(({ id }) => String(id) === String(tool._id))) {
      await applyPlan<undefined>(model.collection, tool._id, (stored, now): Decision<undefined> => {
        const parsed = parseSyncState(stored);
        // Metadata it cannot use is quarantined by the next reader; nothing to re-open meanwhile.
        if (parsed.invalid !== undefined) return { kind: 'done', write: null, result: undefined };
        return { kind: 'done', write: planReopen(stored, parsed, collection, now).write, result: undefined };
      }, { what: `markVectorDeleted(${String(tool._id)}, ${collection}): restored tool`, first: tool, missing: () => undefined });
    }
  }
}

/** Removing a deleted tool's points failed: recorded and retried with the same backoff as live work. */
export async function markVectorDeleteFailed(
  model: ToolModelType,
  toolIdArg: unknown,
  collectionArg: unknown,
  error: unknown,
  options: { workerId?: unknown } = {},
): Promise<VectorDeleteFailedResult> {
  const id = toolObjectId(toolIdArg, 'toolObjectId');
  const collection = collectionName(collectionArg);
  const workerId = workerIdOption(options);
  const failure = { errorCode: classifySyncError(error, 'qdrant'), lastError: String(truncateLastError(errorMessage(error))) };
  return applyPlan<VectorDeleteFailedResult, Tombstone>(planTarget(model), tombstoneKey(toolsCollectionOf(model), id), (stored, now) => planMarkVectorDeleteFailed(stored, collection, failure, now, workerId), {
    what: `markVectorDeleteFailed(${id.toHexString()}, ${collection})`, missing: () => ({ recorded: false, reason: 'already-done', claimedBy: null }),
  });
}

/** Failed removals back in line; returns how many (tombstone × collection). */
export async function requeueFailedDeletions(model: ToolModelType, options: { collections?: unknown; errorCodes?: unknown } = {}): Promise<number> {
  const collections = collectionNames(options.collections);
  const codes = errorCodes(options.errorCodes);
  const failedIn = collections.map((name) => ({
    [`collections.${name}.status`]: 'failed',
    ...(codes === undefined ? {} : { [`collections.${name}.errorCode`]: { $in: codes } }),
  }));
  let requeued = 0;
  for (const tombstone of await tombstones(model).find<Tombstone>({ toolsCollection: toolsCollectionOf(model), $or: failedIn }).toArray()) {
    requeued += await applyPlan<number, Tombstone>(planTarget(model), tombstone._id, (stored) => planRequeueDeletions(stored, collections, codes), {
      what: `requeueFailed(deletion ${tombstone._id})`, first: tombstone, missing: () => 0,
    });
  }
  return requeued;
}

/** Gives back `workerId`'s claims on removals; returns how many. */
export async function releaseDeletionClaims(model: ToolModelType, workerId: string, ids?: mongo.ObjectId[]): Promise<number> {
  let released = 0;
  for (const name of SYNC_COLLECTION_NAMES) {
    const result = await tombstones(model).updateMany(
      { toolsCollection: toolsCollectionOf(model), ...(ids === undefined ? {} : { _id: { $in: ids.map((id) => tombstoneKey(toolsCollectionOf(model), id)) } }), [`collections.${name}.claimedBy`]: workerId },
      { $set: { [`collections.${name}.claimedBy`]: null, [`collections.${name}.claimedUntil`]: null } },
    );
    released += result.modifiedCount;
  }
  return released;
}

/** Removals waiting (pending) and failed, per collection: deleted tools whose points are still in Qdrant. */
export async function deletionStats(model: ToolModelType): Promise<Record<SyncCollectionName, { pending: number; failed: number }>> {
  const stats = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, { pending: 0, failed: 0 }])) as Record<SyncCollectionName, { pending: number; failed: number }>;
  const key = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, `$collections.${name}.status`]));
  const groups = await tombstones(model).aggregate<{ _id: Record<string, unknown>; n: number }>([
    { $match: { toolsCollection: toolsCollectionOf(model) } },
    { $group: { _id: key, n: { $sum: 1 } } },
  ]).toArray();
  for (const { _id: state, n } of groups) {
    for (const name of SYNC_COLLECTION_NAMES) {
      if (state[name] === 'pending') stats[name].pending += n;
      if (state[name] === 'failed') stats[name].failed += n;
    }
  }
  return stats;
}

import { type DocumentType, type ReturnModelType } from '@typegoose/typegoose';
import mongoose from 'mongoose';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SYNC_STATUSES, type SyncCollectionName, type SyncErrorCode, type SyncStatus } from '../sync/vocabulary.js';
import { parseSyncState, type ParsedSyncState, type StoredTool } from '../sync/stored-tool.js';
import { planQuarantine, QUARANTINE_MESSAGE_PREFIX } from '../sync/plans/quarantine.js';
import { UNUSABLE_METADATA } from './unusable-filter.js';
import { deletionStats } from './tombstones.js';
import { collectionPath, METADATA_UPDATED_AT, OVERALL_STATUS, PENDING_HASH_CHECK } from '../sync/sync-state.js';
import { bulkSizeOf, toolCollection } from './change-tracking/settle-after-write.js';
import { applyIdempotentPlans, type IdempotentPlan, settlePlan, type ToolCollection } from './conditional-write.js';
import { mergeQueues, timeAt, type Queue } from './queue-merge.js';
import { collectionNames, dateArgument, integerInRange } from './sync-arguments.js';
import { SyncArgumentError } from './errors.js';
import { type Tool } from './tool.js';

type ToolModelType = ReturnModelType<typeof Tool>;
type ToolDocument = DocumentType<Tool>;

export const MAX_QUERY_LIMIT = 10_000;
export const NEEDS_SYNC: SyncStatus[] = ['pending', 'stale'];
const statusPath = (name: SyncCollectionName): string => collectionPath(name, 'status');
/** Documents written before this package: no metadata yet; they count as pending. */
export const LEGACY = { 'syncMetadata.overallStatus': { $exists: false } };
/** Tools whose last content write has not been settled yet (its writer crashed, or is settling now). */
export const UNSETTLED = { [PENDING_HASH_CHECK]: { $ne: null } };

export function limitArgument(value: unknown, fallback: number): number {
  return integerInRange(value ?? fallback, 'limit', 1, MAX_QUERY_LIMIT);
}

/**
 * Settles the tools read that need it (legacy metadata, a pending hash check) through the same
 * conditional writes as every transition, then returns each as stored afterwards: a worker never
 * sees an unverified hash, and no concurrent edit is lost.
 */
export async function settledForWorker(model: ToolModelType, found: StoredTool[]): Promise<StoredTool[]> {
  const after = new Map<string, StoredTool>();
  // A tool whose settle the server refuses (near the 16 MB limit) is left out of this call, never a reason to throw.
  const context = { bulkSize: bulkSizeOf(model), recordRefused: true, onSettled: (tool: StoredTool) => { after.set(String(tool._id), tool); } };
  const { invalid } = await applyIdempotentPlans(toolCollection(model), found, settlePlan, context);
  if (invalid.length > 0) {
    // Skipped by this call, and quarantined so that no later poll finds them again.
    const unusable = new Set(invalid.map(({ id }) => id));
    await applyIdempotentPlans(toolCollection(model), found.filter((tool) => unusable.has(String(tool._id))), quarantinePlan, { bulkSize: bulkSizeOf(model), recordRefused: true });
  }
  return found.map((tool) => after.get(String(tool._id))).filter((tool): tool is StoredTool => tool !== undefined);
}

/** Quarantines a tool whose stored metadata cannot be used; one repaired meanwhile needs nothing. */
function quarantinePlan(tool: StoredTool, now: Date): IdempotentPlan {
  const { invalid } = parseSyncState(tool);
  return invalid === undefined ? { kind: 'none', outcome: 'usable' } : { kind: 'write', outcome: 'quarantined', write: planQuarantine(tool, invalid, now) };
}

const waitsIn = (tool: StoredTool, names: readonly SyncCollectionName[]): boolean => {
  const collections = (tool.syncMetadata as { collections?: Record<string, { status?: unknown }> } | undefined)?.collections;
  return names.some((name) => NEEDS_SYNC.some((status) => status === collections?.[name]?.status));
};

/**
 * Tools with a `pending` or `stale` collection (optionally only among `collections`), oldest
 * `syncMetadata.updatedAt` first. Without `collections`, the overall status finds most of them
 * through `sync_worker_query_idx`; a tool whose overall status is `failed` may still have a
 * collection waiting, so those are looked at collection by collection. Legacy and unsettled
 * tools are settled first.
 */
export async function findNeedingSync(
  model: ToolModelType,
  options: { limit?: unknown; collections?: unknown } = {},
): Promise<ToolDocument[]> {
  const limit = limitArgument(options.limit, 100);
  const names = collectionNames(options.collections);
  const byCollection = names.map((name) => ({ [statusPath(name)]: { $in: NEEDS_SYNC } }));
  const filter = options.collections === undefined
    ? { $or: [{ 'syncMetadata.overallStatus': { $in: NEEDS_SYNC } }, { 'syncMetadata.overallStatus': 'failed' as const, $or: byCollection }, LEGACY, UNSETTLED] }
    : { $or: [...byCollection, LEGACY, UNSETTLED] };
  const found = await toolCollection(model).find(filter, { sort: { 'syncMetadata.updatedAt': 1, _id: 1 }, limit }).toArray();
  const settled = await settledForWorker(model, found);
  return settled.filter((tool) => waitsIn(tool, names)).map((tool) => model.hydrate(tool));
}

export interface RetryableTool {
  tool: ToolDocument;
  /** Its failed collections whose backoff has elapsed. */
  collections: SyncCollectionName[];
}

/** The failed collections under `maxRetries` whose stored retry time has come (never a validation error). */
function dueIn(parsed: ParsedSyncState, maxRetries: number, now: Date): SyncCollectionName[] {
  return SYNC_COLLECTION_NAMES.filter((name) => {
    const state = parsed.collections[name];
    return state?.status === 'failed' && state.errorCode !== 'VALIDATION_ERROR' && state.retryCount < maxRetries
      && state.nextRetryAt !== null && state.nextRetryAt.getTime() <= now.getTime();
  });
}

/**
 * Failed collections without a retry time (stored before retry times were, or by another writer
 * that left it null): a settle gives them theirs.
 */
export const WITHOUT_RETRY_TIME = SYNC_COLLECTION_NAMES.flatMap((name) => [
  { [statusPath(name)]: 'failed', [collectionPath(name, 'nextRetryAt')]: { $exists: false } },
  { [statusPath(name)]: 'failed', [collectionPath(name, 'nextRetryAt')]: null, [collectionPath(name, 'errorCode')]: { $ne: 'VALIDATION_ERROR' } },
]);

/** Documents per reply of each collection's queue: what a poll reads beyond what it returns. */
export const QUEUE_BATCH = 16;
const RETRY_BATCH = QUEUE_BATCH;

/**
 * One collection's retry queue: failed, due by `now`, under `maxRetries`, never a validation
 * error; earliest due first, through `sync_<collection>_retry_due_idx`.
 */
export function dueQueue(collection: ToolCollection, name: SyncCollectionName, options: { now: Date; maxRetries: number; batchSize: number; limit?: number }): Queue {
  const { filter, sort } = dueQueueQuery(name, options);
  const { batchSize, limit } = options;
  return { cursor: collection.find<StoredTool>(filter, { sort, batchSize, ...(limit === undefined ? {} : { limit }) }), key: (tool) => timeAt(tool, collectionPath(name, 'nextRetryAt')) };
}

export function dueQueueQuery(name: SyncCollectionName, options: { now: Date; maxRetries: number }): { filter: Record<string, unknown>; sort: Record<string, 1> } {
  const due = {
    [statusPath(name)]: 'failed',
    [collectionPath(name, 'nextRetryAt')]: { $lte: options.now },
    [collectionPath(name, 'retryCount')]: { $lt: options.maxRetries },
    [collectionPath(name, 'errorCode')]: { $ne: 'VALIDATION_ERROR' },
  };
  // One key: the index has no `_id` after it, and a tie-break on `_id` would make the server sort the whole queue.
  return { filter: due, sort: { [collectionPath(name, 'nextRetryAt')]: 1 } };
}

/**
 * Failed collections under the retry limit whose stored retry time (`nextRetryAt`, set by
 * `markCollectionFailed` from the backoff) has come, earliest first. Each collection's queue is
 * read through its `sync_<collection>_retry_due_idx`, earliest due first, and the four are merged
 * as they are read, so a poll reads about `limit` tools (plus a batch per queue), however many
 * have failed. `VALIDATION_ERROR` has no retry time: the content has to change first. Failed
 * collections stored before retry times were are given theirs first (a settle: due when the
 * backoff after their last attempt ends).
 */
export async function findRetryable(
  model: ToolModelType,
  options: { maxRetries?: unknown; now?: unknown; limit?: unknown } = {},
): Promise<RetryableTool[]> {
  const maxRetries = integerInRange(options.maxRetries ?? 5, 'maxRetries', 1, 1000);
  const now = options.now === undefined ? new Date() : dateArgument(options.now, 'now');
  const limit = limitArgument(options.limit, 100);
  const collection = toolCollection(model);
  const unsettled = await collection.find({ $or: WITHOUT_RETRY_TIME }, { limit }).toArray();
  if (unsettled.length > 0) await settledForWorker(model, unsettled);

  const queues = SYNC_COLLECTION_NAMES.map((name) => dueQueue(collection, name, { now, maxRetries, batchSize: Math.min(limit, RETRY_BATCH) }));
  const found: RetryableTool[] = [];
  const unusable: StoredTool[] = [];
  for await (const tool of mergeQueues(queues)) {
    const parsed = parseSyncState(tool);
    if (parsed.invalid !== undefined) {
      unusable.push(tool);
      continue;
    }
    const collections = dueIn(parsed, maxRetries, now);
    if (collections.length > 0) found.push({ tool: model.hydrate(tool), collections });
    if (found.length >= limit) break;
  }
  // Skipped by this call, and quarantined (no retry time) so that no later poll reads them again.
  if (unusable.length > 0) await applyIdempotentPlans(collection, unusable, quarantinePlan, { bulkSize: bulkSizeOf(model), recordRefused: true });
  return found;
}

export interface SyncStats {
  total: number;
  byOverallStatus: Record<SyncStatus, number>;
  byCollection: Record<SyncCollectionName, Record<SyncStatus, number>>;
  /** Failed collections by error code (a collection failed without a code counts as UNKNOWN). */
  failuresByErrorCode: Record<SyncErrorCode, number>;
  /** Age in ms of the oldest tool with a pending or stale collection (null if none). */
  oldestPendingAgeMs: number | null;
  /**
   * Per collection, the lag: age in ms of the oldest pair waiting (pending or stale), from the
   * head of the collection's waiting queue (null if none waits). Legacy tools, which have no
   * per-collection status yet, are left out here (they count in `oldestPendingAgeMs`).
   */
  oldestWaitingAgeMs: Record<SyncCollectionName, number | null>;
  /** Tools written before this package and not backfilled; included above as pending. */
  legacyWithoutMetadata: number;
  /**
   * Tools whose last content write is not settled yet: their hashes are unverified (counted
   * above under their stored statuses). Normally 0 between writes; more means writers crashed
   * mid-write: `tool-sync settle` (or the worker's next `findNeedingSync`) finishes them.
   */
  unsettled: number;
  /** Collections claimed by a worker whose lease has not ended: being embedded now. */
  inFlight: Record<SyncCollectionName, number>;
  /**
   * Tools whose stored metadata holds a value the package never writes (counted above under
   * what they show): the next poll that meets one quarantines it. A pass over every tool: counted
   * only with `{ full: true }`, else null.
   */
  unusable: number | null;
  /** Tools quarantined for such metadata: every collection `failed` with `VALIDATION_ERROR`. */
  quarantined: number;
  /**
   * Per collection, the vectors (collections embedded at least once) by the embedding model that
   * made them, most first; `model: null` for vectors made before the model was recorded. More
   * than one entry means a migration between models is under way. A pass over every tool: counted
   * only with `{ full: true }`, else null.
   */
  vectorsByEmbeddingModel: Record<SyncCollectionName, { model: string | null; vectors: number }[]> | null;
  /** Per collection, deleted tools whose points are still to be removed (pending) or whose removal failed. */
  deletions: Record<SyncCollectionName, { pending: number; failed: number }>;
}

function zeroes<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

const escapeRegex = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The statuses counted one by one; `pending` is what is left (a missing or unknown status counts as pending, never left out). */
const COUNTED: SyncStatus[] = ['synced', 'stale', 'failed'];

/**
 * Vectors by the model that made them, per collection: one pass over the tools embedded at least
 * once (their last sync time is a Date), grouped by the four models at once.
 */
async function vectorsByModel(model: ToolModelType): Promise<NonNullable<SyncStats['vectorsByEmbeddingModel']>> {
  const key: Record<string, unknown> = {};
  for (const name of SYNC_COLLECTION_NAMES) {
    key[name] = `$${collectionPath(name, 'embeddingModel')}`;
    key[`${name}Embedded`] = { $type: `$${collectionPath(name, 'lastSyncedAt')}` };
  }
  const groups = await model.aggregate<{ _id: Record<string, unknown>; n: number }>([{ $group: { _id: key, n: { $sum: 1 } } }]);
  const vectors = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, new Map<string | null, number>()])) as Record<SyncCollectionName, Map<string | null, number>>;
  for (const { _id: state, n } of groups) {
    for (const name of SYNC_COLLECTION_NAMES) {
      if (state[`${name}Embedded`] !== 'date') continue;
      const made = state[name];
      const which = typeof made === 'string' ? made : null;
      vectors[name].set(which, (vectors[name].get(which) ?? 0) + n);
    }
  }
  return Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [
    name,
    [...vectors[name]].map(([made, count]) => ({ model: made, vectors: count })).sort((a, b) => b.vectors - a.vectors),
  ])) as NonNullable<SyncStats['vectorsByEmbeddingModel']>;
}

/**
 * Per collection, when the oldest waiting tool's metadata last changed: the head of the
 * collection's waiting queue (sync_<collection>_waiting_idx); undefined when nothing waits.
 */
async function oldestWaiting(model: ToolModelType): Promise<Record<SyncCollectionName, number | undefined>> {
  const heads = await Promise.all(SYNC_COLLECTION_NAMES.map(async (name) => {
    const head = await toolCollection(model).findOne<StoredTool>({ [statusPath(name)]: { $in: NEEDS_SYNC } }, { sort: { [METADATA_UPDATED_AT]: 1 }, projection: { [METADATA_UPDATED_AT]: 1 } });
    const at = (head?.syncMetadata as { updatedAt?: unknown } | undefined)?.updatedAt;
    return [name, at instanceof Date ? at.getTime() : undefined] as const;
  }));
  return Object.fromEntries(heads) as Record<SyncCollectionName, number | undefined>;
}

/** Failed collections of `name` by error code: the failed ones only (through sync_<collection>_status_idx). */
async function failuresIn(model: ToolModelType, name: SyncCollectionName): Promise<{ _id: unknown; n: number }[]> {
  return model.aggregate<{ _id: unknown; n: number }>([
    { $match: { [statusPath(name)]: 'failed' } },
    { $group: { _id: `$${collectionPath(name, 'errorCode')}`, n: { $sum: 1 } } },
  ]);
}

/**
 * Where sync stands: the dashboard's numbers. Legacy documents count as pending, never left out.
 * Every count is one the indexes serve, sent side by side: by overall status
 * (sync_overall_status_idx), by collection and status (sync_<collection>_status_idx), unsettled
 * tools (sync_pending_hash_check_idx); failures by code, quarantined tools and claims in flight
 * read only the failed, or waiting, tools of a collection; the oldest wait is the head of each
 * waiting queue; deletions count the tombstones (removals owed). `{ full: true }` adds the two
 * counts that need a pass over every tool: unusable metadata, and vectors by embedding model.
 */
export async function getSyncStats(model: ToolModelType, options: { now?: unknown; full?: unknown } = {}): Promise<SyncStats> {
  const now = options.now === undefined ? new Date() : dateArgument(options.now, 'now');
  if (options.full !== undefined && typeof options.full !== 'boolean') throw new SyncArgumentError('full', options.full, 'true or false');
  const full = options.full === true;
  const tools = toolCollection(model);
  const count = (filter: Record<string, unknown>): Promise<number> => tools.countDocuments(filter);
  const [overall, others, collections, failures, inFlight, unsettled, legacyWithoutMetadata, quarantined, oldest, deletions, unusable, vectors] = await Promise.all([
    Promise.all(SYNC_STATUSES.map((status) => count({ [OVERALL_STATUS]: status }))),
    // Legacy tools (no overall status) and any value that is not a status: pending.
    count({ [OVERALL_STATUS]: { $nin: [...SYNC_STATUSES] } }),
    Promise.all(SYNC_COLLECTION_NAMES.map((name) => Promise.all(COUNTED.map((status) => count({ [statusPath(name)]: status }))))),
    Promise.all(SYNC_COLLECTION_NAMES.map((name) => failuresIn(model, name))),
    // A live claim is on work (pending, stale or failed): a synced collection holds none.
    Promise.all(SYNC_COLLECTION_NAMES.map((name) => count({ [statusPath(name)]: { $in: [...NEEDS_SYNC, 'failed'] }, [collectionPath(name, 'claimedUntil')]: { $gt: now } }))),
    count(UNSETTLED),
    count(LEGACY),
    // planQuarantine writes its message into every collection: one of them tells.
    count({ [statusPath('tools')]: 'failed', [collectionPath('tools', 'lastError')]: { $regex: `^${escapeRegex(QUARANTINE_MESSAGE_PREFIX)}` } }),
    oldestWaiting(model),
    deletionStats(model),
    full ? count(UNUSABLE_METADATA) : Promise.resolve(null),
    full ? vectorsByModel(model) : Promise.resolve(null),
  ]);
  const byOverallStatus = Object.fromEntries(SYNC_STATUSES.map((status, index) => [status, overall[index] ?? 0])) as Record<SyncStatus, number>;
  byOverallStatus.pending += others;
  const total = SYNC_STATUSES.reduce((sum, status) => sum + byOverallStatus[status], 0);
  const byCollection = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name, index) => {
    const counted = Object.fromEntries(COUNTED.map((status, at) => [status, collections[index]?.[at] ?? 0])) as Record<SyncStatus, number>;
    counted.pending = total - COUNTED.reduce((sum, status) => sum + counted[status], 0);
    return [name, counted];
  })) as Record<SyncCollectionName, Record<SyncStatus, number>>;
  const failuresByErrorCode = zeroes(SYNC_ERROR_CODES);
  for (const groups of failures) {
    for (const { _id: code, n } of groups) failuresByErrorCode[(SYNC_ERROR_CODES as readonly unknown[]).includes(code) ? (code as SyncErrorCode) : 'UNKNOWN'] += n;
  }
  // A legacy tool's `_id` may be anything: only an ObjectId (or its createdAt) tells when it was made.
  const oldestLegacy = legacyWithoutMetadata > 0 ? await model.findOne(LEGACY, { createdAt: 1, _id: 1 }).sort({ _id: 1 }).lean<{ _id: unknown; createdAt?: Date }>() : null;
  const legacyId = oldestLegacy?._id;
  const heads = SYNC_COLLECTION_NAMES.map((name) => oldest[name]).filter((at): at is number => at !== undefined);
  const since = [heads.length === 0 ? undefined : Math.min(...heads), (oldestLegacy?.createdAt ?? (legacyId instanceof mongoose.Types.ObjectId ? legacyId.getTimestamp() : undefined))?.getTime()]
    .filter((at): at is number => at !== undefined);
  return {
    total,
    byOverallStatus,
    byCollection,
    failuresByErrorCode,
    oldestPendingAgeMs: since.length === 0 ? null : Math.max(0, now.getTime() - Math.min(...since)),
    oldestWaitingAgeMs: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => {
      const head = oldest[name];
      return [name, head === undefined ? null : Math.max(0, now.getTime() - head)];
    })) as Record<SyncCollectionName, number | null>,
    legacyWithoutMetadata,
    unsettled,
    inFlight: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name, index) => [name, inFlight[index] ?? 0])) as Record<SyncCollectionName, number>,
    unusable,
    quarantined,
    vectorsByEmbeddingModel: vectors,
    deletions,
  };
}

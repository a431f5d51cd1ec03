import { type DocumentType, type ReturnModelType } from '@typegoose/typegoose';
import mongoose, { type Types } from 'mongoose';
import { isSyncStatus, SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SYNC_STATUSES, type SyncCollectionName, type SyncErrorCode, type SyncStatus } from '../sync/vocabulary.js';
import { parseSyncState, type ParsedSyncState, type StoredTool } from '../sync/stored-tool.js';
import { planQuarantine, QUARANTINE_MESSAGE_PREFIX } from '../sync/plans/quarantine.js';
import { UNUSABLE_METADATA } from './unusable-filter.js';
import { deletionStats } from './tombstones.js';
import { collectionPath, PENDING_HASH_CHECK } from '../sync/sync-state.js';
import { bulkSizeOf, toolCollection } from './change-tracking/settle-after-write.js';
import { applyIdempotentPlans, type IdempotentPlan, settlePlan, type ToolCollection } from './conditional-write.js';
import { mergeQueues, timeAt, type Queue } from './queue-merge.js';
import { collectionNames, dateArgument, integerInRange } from './sync-arguments.js';
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
   * what they show): the next poll that meets one quarantines it.
   */
  unusable: number;
  /** Tools quarantined for such metadata: every collection `failed` with `VALIDATION_ERROR`. */
  quarantined: number;
  /**
   * Per collection, the vectors (collections embedded at least once) by the embedding model that
   * made them, most first; `model: null` for vectors made before the model was recorded. More
   * than one entry means a migration between models is under way.
   */
  vectorsByEmbeddingModel: Record<SyncCollectionName, { model: string | null; vectors: number }[]>;
  /** Per collection, deleted tools whose points are still to be removed (pending) or whose removal failed. */
  deletions: Record<SyncCollectionName, { pending: number; failed: number }>;
}

function zeroes<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

/**
 * The group key of one tool: its overall status (and whether it has one: a legacy document has
 * none), and each collection's status and error code.
 */
interface StateGroup { _id: Record<string, unknown>; n: number }

const errorCodeKey = (name: SyncCollectionName): string => `${name}ErrorCode`;
const modelKey = (name: SyncCollectionName): string => `${name}Model`;
const embeddedKey = (name: SyncCollectionName): string => `${name}EmbeddedType`;

/**
 * Tools counted by their whole sync state in one pass over the collection (the distinct states
 * are few), instead of one `$group` per field: FerretDB has no index to help any of them.
 */
function countStates(model: ToolModelType): Promise<StateGroup[]> {
  const key: Record<string, unknown> = {
    overall: '$syncMetadata.overallStatus',
    overallType: { $type: '$syncMetadata.overallStatus' },
    pendingType: { $type: `$${PENDING_HASH_CHECK}` },
  };
  for (const name of SYNC_COLLECTION_NAMES) {
    key[name] = `$${statusPath(name)}`;
    key[errorCodeKey(name)] = `$${collectionPath(name, 'errorCode')}`;
    key[modelKey(name)] = `$${collectionPath(name, 'embeddingModel')}`;
    // Embedded at least once: it has a last sync time (a Date).
    key[embeddedKey(name)] = { $type: `$${collectionPath(name, 'lastSyncedAt')}` };
  }
  return model.aggregate<StateGroup>([{ $group: { _id: key, n: { $sum: 1 } } }]);
}

const asStatus = (value: unknown): SyncStatus => (isSyncStatus(value) ? value : 'pending');

const escapeRegex = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Claims in flight (few: the fleet's concurrency), unusable and quarantined tools. */
async function claimsAndPoison(model: ToolModelType, now: Date): Promise<Pick<SyncStats, 'inFlight' | 'unusable' | 'quarantined'>> {
  const inFlight = zeroes(SYNC_COLLECTION_NAMES);
  const claimed = SYNC_COLLECTION_NAMES.map((name) => ({ [collectionPath(name, 'claimedUntil')]: { $gt: now } }));
  const projection = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [collectionPath(name, 'claimedUntil'), 1]));
  for (const tool of await toolCollection(model).find<StoredTool>({ $or: claimed }, { projection }).toArray()) {
    for (const name of SYNC_COLLECTION_NAMES) if (timeAt(tool, collectionPath(name, 'claimedUntil')) > now.getTime()) inFlight[name] += 1;
  }
  const unusable = await toolCollection(model).countDocuments(UNUSABLE_METADATA);
  // planQuarantine writes its message into every collection: one of them tells.
  const quarantined = await toolCollection(model).countDocuments({ [collectionPath('tools', 'lastError')]: { $regex: `^${escapeRegex(QUARANTINE_MESSAGE_PREFIX)}` } });
  return { inFlight, unusable, quarantined };
}

/** Where sync stands: the dashboard's numbers. Legacy documents count as pending, never left out. */
export async function getSyncStats(model: ToolModelType, options: { now?: unknown } = {}): Promise<SyncStats> {
  const now = options.now === undefined ? new Date() : dateArgument(options.now, 'now');
  const byOverallStatus = zeroes(SYNC_STATUSES);
  const byCollection = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, zeroes(SYNC_STATUSES)])) as Record<SyncCollectionName, Record<SyncStatus, number>>;
  const failuresByErrorCode = zeroes(SYNC_ERROR_CODES);
  let total = 0;
  let legacyWithoutMetadata = 0;
  let unsettled = 0;
  const vectors = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, new Map<string | null, number>()])) as Record<SyncCollectionName, Map<string | null, number>>;
  for (const { _id: state, n } of await countStates(model)) {
    total += n;
    if (state.pendingType === 'objectId') unsettled += n;
    if (state.overallType === 'missing') legacyWithoutMetadata += n;
    byOverallStatus[asStatus(state.overall)] += n;
    for (const name of SYNC_COLLECTION_NAMES) {
      const status = asStatus(state[name]);
      byCollection[name][status] += n;
      if (state[embeddedKey(name)] === 'date') {
        const made = state[modelKey(name)];
        const key = typeof made === 'string' ? made : null;
        vectors[name].set(key, (vectors[name].get(key) ?? 0) + n);
      }
      if (status !== 'failed') continue;
      const code = state[errorCodeKey(name)];
      failuresByErrorCode[(SYNC_ERROR_CODES as readonly unknown[]).includes(code) ? (code as SyncErrorCode) : 'UNKNOWN'] += n;
    }
  }
  const waiting = { $or: [...SYNC_COLLECTION_NAMES.map((name) => ({ [statusPath(name)]: { $in: NEEDS_SYNC } }))] };
  const oldest = await model.findOne(waiting, { 'syncMetadata.updatedAt': 1 }).sort({ 'syncMetadata.updatedAt': 1 }).lean<{ _id: Types.ObjectId; syncMetadata?: { updatedAt?: Date } }>();
  const oldestLegacy = legacyWithoutMetadata > 0 ? await model.findOne(LEGACY, { createdAt: 1, _id: 1 }).sort({ _id: 1 }).lean<{ _id: unknown; createdAt?: Date }>() : null;
  // A legacy tool's `_id` may be anything: only an ObjectId tells when it was made.
  const legacyId = oldestLegacy?._id;
  const since = [oldest?.syncMetadata?.updatedAt, oldestLegacy?.createdAt ?? (legacyId instanceof mongoose.Types.ObjectId ? legacyId.getTimestamp() : undefined)]
    .filter((date): date is Date => date instanceof Date)
    .map((date) => date.getTime());
  return {
    ...(await claimsAndPoison(model, now)),
    deletions: await deletionStats(model),
    total,
    byOverallStatus,
    byCollection,
    failuresByErrorCode,
    oldestPendingAgeMs: since.length === 0 ? null : Math.max(0, now.getTime() - Math.min(...since)),
    legacyWithoutMetadata,
    unsettled,
    vectorsByEmbeddingModel: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [
      name,
      [...vectors[name]].map(([made, count]) => ({ model: made, vectors: count })).sort((a, b) => b.vectors - a.vectors),
    ])) as SyncStats['vectorsByEmbeddingModel'],
  };
}

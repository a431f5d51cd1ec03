import { type mongo } from 'mongoose';
import { nextRetryAt, retryJitterKey } from '../backoff.js';
import { parseSyncState, type StoredTool } from '../stored-tool.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, type SyncCollectionName, type SyncErrorCode } from '../vocabulary.js';
import { type Decision, type PlannedWrite } from './plan.js';

/*
 * A deleted tool's vectors outlive it in Qdrant until a worker removes them. Before a tool with
 * vectors is deleted, a tombstone records which collections hold its points; a worker claims them
 * like any other work, removes the points and marks each collection done; a tombstone whose
 * collections are all done is removed. A collection that a worker was embedding when the tool
 * was deleted is removed only after that worker's lease (its upsert may still come); a worker's
 * write that lands after a removal re-opens it (see planReopenRemoval).
 */

export const DELETION_STATUSES = ['pending', 'synced', 'failed'] as const;
export type DeletionStatus = (typeof DELETION_STATUSES)[number];

/** One collection's removal: `synced` once its points are gone. Errors and retries as for a live collection. */
export interface DeletionState {
  status: DeletionStatus;
  lastSyncAttemptAt: Date | null;
  lastError: string | null;
  errorCode: SyncErrorCode | null;
  retryCount: number;
  nextRetryAt: Date | null;
  claimedBy: string | null;
  claimedUntil: Date | null;
  /**
   * Not to be removed before then: the end of the lease of a worker that was embedding this
   * collection when the tool was deleted (null: no such worker). Its upsert may land until then;
   * its mark, or the lease's end, lets the removal go.
   */
  notBefore: Date | null;
}

export interface Tombstone {
  /** `<tools collection>/<tool _id>` (see tombstoneKey): one tombstone per tool of a tools collection. */
  _id: string;
  /** The deleted tool's `_id`. */
  toolObjectId: mongo.ObjectId;
  /** The collection of tools it was deleted from (several tool collections may share a database). */
  toolsCollection: string;
  /** Its business `id` when it was deleted (for the record: points are keyed by the `_id`, see pointIdOf). */
  id: string | null;
  deletedAt: Date;
  /** The delete that wrote it: only that delete's own follow-up retires it (see retireLiving). */
  writtenBy: mongo.ObjectId;
  collections: Partial<Record<SyncCollectionName, DeletionState>>;
}

const isDate = (value: unknown): value is Date => value instanceof Date;

/** An ObjectId of any copy of the bson package (the driver's, or one a caller brought). */
export const isObjectId = (value: unknown): value is mongo.ObjectId =>
  typeof value === 'object' && value !== null && (value as { _bsontype?: unknown })._bsontype === 'ObjectId';

/** Held by a worker whose lease has not ended at `now`: the end of that lease, else null. */
function liveLeaseEnd(raw: Record<string, unknown> | undefined, now: Date): Date | null {
  const until = raw?.claimedUntil;
  return isDate(until) && until.getTime() > now.getTime() ? until : null;
}

/**
 * The collections in which the tool has, or may have, or may be about to have points: embedded
 * at least once; or a worker's write may have landed without being recorded as a sync (an
 * attempt was recorded: a mark whose content had changed, a failed or refused write, a re-open;
 * or a worker holds or held a claim, and may have written before it died); none else can hold one.
 */
export function collectionsWithVectors(tool: StoredTool, now: Date): SyncCollectionName[] {
  const parsed = parseSyncState(tool);
  const stored = (tool.syncMetadata as { collections?: Record<string, Record<string, unknown> | undefined> } | undefined)?.collections;
  return SYNC_COLLECTION_NAMES.filter((name) => {
    const state = parsed.collections[name];
    const raw = stored?.[name];
    const embedded = (state?.vectorVersion ?? 0) > 0 || isDate(raw?.lastSyncedAt);
    const attempted = isDate(raw?.lastSyncAttemptAt) || typeof raw?.claimedBy === 'string';
    return embedded || attempted || liveLeaseEnd(raw, now) !== null;
  });
}

/** A removal to do, once `notBefore` (if any) has passed. */
export const freshDeletion = (notBefore: Date | null = null): DeletionState => ({
  status: 'pending', lastSyncAttemptAt: null, lastError: null, errorCode: null, retryCount: 0, nextRetryAt: null, claimedBy: null, claimedUntil: null, notBefore,
});

/** A tombstone's `_id`: tools collections sharing a database (and copies of one tool) never share one. */
export const tombstoneKey = (toolsCollection: string, toolObjectId: mongo.ObjectId): string => `${toolsCollection}/${toolObjectId.toHexString()}`;

/**
 * The tombstone of a tool about to be deleted; null when it never had a vector (nothing to
 * remove), or when its `_id` is not an ObjectId (the package never embeds such a tool: it
 * quarantines it, so no point of it is the package's to remove).
 */
export function tombstoneFor(tool: StoredTool, toolsCollection: string, now: Date, writtenBy: mongo.ObjectId): Tombstone | null {
  if (!isObjectId(tool._id)) return null;
  const names = collectionsWithVectors(tool, now);
  if (names.length === 0) return null;
  const stored = (tool.syncMetadata as { collections?: Record<string, Record<string, unknown> | undefined> } | undefined)?.collections;
  return {
    _id: tombstoneKey(toolsCollection, tool._id),
    toolObjectId: tool._id,
    toolsCollection,
    id: typeof tool.id === 'string' ? tool.id : null,
    deletedAt: now,
    writtenBy,
    collections: Object.fromEntries(names.map((name) => [name, freshDeletion(liveLeaseEnd(stored?.[name], now))])),
  };
}

/** A stored tombstone's collection state, trusting nothing (the package writes them; a person might not). */
export function deletionState(tombstone: Tombstone, name: SyncCollectionName): DeletionState | undefined {
  const collections: unknown = tombstone.collections;
  const raw = typeof collections === 'object' && collections !== null && !Array.isArray(collections) ? (collections as Record<string, unknown>)[name] : undefined;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || raw instanceof Date) return undefined;
  const state = raw as Record<string, unknown>;
  const status = (DELETION_STATUSES as readonly unknown[]).includes(state.status) ? (state.status as DeletionStatus) : 'pending';
  return {
    status,
    lastSyncAttemptAt: isDate(state.lastSyncAttemptAt) ? state.lastSyncAttemptAt : null,
    lastError: typeof state.lastError === 'string' ? state.lastError : null,
    errorCode: (SYNC_ERROR_CODES as readonly unknown[]).includes(state.errorCode) ? (state.errorCode as SyncErrorCode) : null,
    retryCount: typeof state.retryCount === 'number' && Number.isInteger(state.retryCount) && state.retryCount >= 0 ? state.retryCount : 0,
    nextRetryAt: isDate(state.nextRetryAt) ? state.nextRetryAt : null,
    claimedBy: typeof state.claimedBy === 'string' ? state.claimedBy : null,
    claimedUntil: isDate(state.claimedUntil) ? state.claimedUntil : null,
    notBefore: isDate(state.notBefore) ? state.notBefore : null,
  };
}

const path = (name: SyncCollectionName, key: keyof DeletionState): string => `collections.${name}.${key}`;

/** The condition that a collection's removal state is still as read (`$eq`: stored values are compared, never run). */
function asRead(tombstone: Tombstone, name: SyncCollectionName): Record<string, unknown> {
  const raw = ((tombstone.collections as Record<string, Record<string, unknown> | undefined>)[name]) ?? {};
  return Object.fromEntries((['status', 'retryCount', 'claimedBy', 'claimedUntil', 'nextRetryAt', 'notBefore'] as const)
    .map((key) => [path(name, key), { $eq: raw[key] ?? null }]));
}

const after = (date: Date | null, now: Date): boolean => date !== null && date.getTime() > now.getTime();

/**
 * Removal work in this collection: pending, or failed and due; not held by a live lease (the
 * worker's own included: that removal is in flight, and handed out again it would run twice);
 * and no embedding worker's upsert still to come (`notBefore`).
 */
export function isDeletionWork(state: DeletionState | undefined, maxRetries: number, now: Date): state is DeletionState {
  if (state === undefined || after(state.claimedUntil, now) || after(state.notBefore, now)) return false;
  if (state.status === 'pending') return true;
  return state.status === 'failed' && state.retryCount < maxRetries && state.nextRetryAt !== null && state.nextRetryAt.getTime() <= now.getTime();
}

/** Claims the removals of this tombstone that are work (as planClaim does for live collections). */
export function planClaimDeletion(
  tombstone: Tombstone,
  request: { workerId: string; leaseMs: number; collections: readonly SyncCollectionName[]; maxRetries: number },
  now: Date,
): Decision<SyncCollectionName[]> {
  const claimedUntil = new Date(now.getTime() + request.leaseMs);
  const claimed: SyncCollectionName[] = [];
  let filter: Record<string, unknown> = { _id: tombstone._id };
  const set: Record<string, unknown> = {};
  for (const name of request.collections) {
    const state = deletionState(tombstone, name);
    if (!isDeletionWork(state, request.maxRetries, now)) continue;
    claimed.push(name);
    filter = { ...filter, ...asRead(tombstone, name) };
    set[path(name, 'claimedBy')] = request.workerId;
    set[path(name, 'claimedUntil')] = claimedUntil;
    if (state.status === 'failed') set[path(name, 'nextRetryAt')] = claimedUntil;
  }
  if (claimed.length === 0) return { kind: 'done', write: null, result: [] };
  return { kind: 'done', write: { filter, update: { $set: set } }, result: claimed };
}

export type VectorDeletedResult = { done: true } | { done: false; reason: 'claim-lost'; claimedBy: string | null };

/**
 * The points of `collection` are gone: that removal is done (the claim released). With a
 * `workerId`, only while that worker holds the removal: one that was re-opened meanwhile (an
 * embedding worker's upsert landed after the removal was claimed) stays to be done again.
 */
export function planMarkVectorDeleted(tombstone: Tombstone, collection: SyncCollectionName, now: Date, workerId?: string): Decision<VectorDeletedResult> {
  const state = deletionState(tombstone, collection);
  if (state === undefined || (state.status === 'synced' && workerId === undefined)) return { kind: 'done', write: null, result: { done: true } };
  if (workerId !== undefined && state.claimedBy !== workerId) {
    return { kind: 'done', write: null, result: { done: false, reason: 'claim-lost', claimedBy: state.claimedBy } };
  }
  return {
    kind: 'done',
    write: {
      filter: { _id: tombstone._id, ...asRead(tombstone, collection) },
      update: {
        $set: {
          [path(collection, 'status')]: 'synced', [path(collection, 'lastSyncAttemptAt')]: now, [path(collection, 'lastError')]: null,
          [path(collection, 'errorCode')]: null, [path(collection, 'nextRetryAt')]: null, [path(collection, 'claimedBy')]: null,
          [path(collection, 'claimedUntil')]: null, [path(collection, 'notBefore')]: null,
        },
      },
    },
    result: { done: true },
  };
}

export type VectorDeleteFailedResult =
  | { recorded: true; errorCode: SyncErrorCode; retryCount: number }
  | { recorded: false; reason: 'claim-lost' | 'already-done'; claimedBy: string | null };

/** Removing the points failed: `failed`, classified, one more retry, due after the same backoff as a live collection. */
export function planMarkVectorDeleteFailed(
  tombstone: Tombstone,
  collection: SyncCollectionName,
  failure: { errorCode: SyncErrorCode; lastError: string },
  now: Date,
  workerId?: string,
): Decision<VectorDeleteFailedResult> {
  const state = deletionState(tombstone, collection);
  if (state === undefined || state.status === 'synced') return { kind: 'done', write: null, result: { recorded: false, reason: 'already-done', claimedBy: null } };
  // Not this worker's any more: another one claimed it after the lease ended.
  if (workerId !== undefined && state.claimedBy !== workerId) return { kind: 'done', write: null, result: { recorded: false, reason: 'claim-lost', claimedBy: state.claimedBy } };
  const retryCount = state.retryCount + 1;
  return {
    kind: 'done',
    write: {
      filter: { _id: tombstone._id, ...asRead(tombstone, collection) },
      update: {
        $set: {
          [path(collection, 'status')]: 'failed', [path(collection, 'lastSyncAttemptAt')]: now, [path(collection, 'lastError')]: failure.lastError,
          [path(collection, 'errorCode')]: failure.errorCode, [path(collection, 'retryCount')]: retryCount,
          [path(collection, 'nextRetryAt')]: nextRetryAt(now, retryCount, failure.errorCode, retryJitterKey(tombstone._id, `${collection}:delete`)),
          [path(collection, 'claimedBy')]: null, [path(collection, 'claimedUntil')]: null,
        },
      },
    },
    result: { recorded: true, errorCode: failure.errorCode, retryCount },
  };
}

/** Failed removals back in line (pending, retries reset); the result is how many. */
export function planRequeueDeletions(tombstone: Tombstone, collections: readonly SyncCollectionName[], errorCodes: readonly SyncErrorCode[] | undefined): Decision<number> {
  let filter: Record<string, unknown> = { _id: tombstone._id };
  const set: Record<string, unknown> = {};
  let count = 0;
  for (const name of collections) {
    const state = deletionState(tombstone, name);
    if (state?.status !== 'failed' || (errorCodes !== undefined && (state.errorCode === null || !errorCodes.includes(state.errorCode)))) continue;
    filter = { ...filter, ...asRead(tombstone, name) };
    Object.assign(set, { [path(name, 'status')]: 'pending', [path(name, 'retryCount')]: 0, [path(name, 'nextRetryAt')]: null });
    count += 1;
  }
  if (count === 0) return { kind: 'done', write: null, result: 0 };
  return { kind: 'done', write: { filter, update: { $set: set } }, result: count };
}

/** A tombstone all of whose removals are done: it can go (conditioned on exactly that). */
export function finishedFilter(tombstone: Tombstone): Record<string, unknown> | null {
  const names = SYNC_COLLECTION_NAMES.filter((name) => deletionState(tombstone, name) !== undefined);
  if (names.some((name) => deletionState(tombstone, name)?.status !== 'synced')) return null;
  return { _id: tombstone._id, ...Object.fromEntries(names.map((name) => [path(name, 'status'), 'synced'])) };
}

/**
 * A worker's vector store write for a tool that is gone now (deleted while it was being embedded)
 * has landed, or may have: the tool's point in `collection` is to be removed after it. The removal
 * is pending again whatever it was (done, failed, or held by a worker whose removal may have come
 * before the write: that worker's mark then finds it lost), and a tombstone already removed is
 * written anew. Not conditional: whatever the tombstone says, this removal is owed.
 */
export function planReopenRemoval(
  deleted: { toolObjectId: mongo.ObjectId; toolsCollection: string },
  collection: SyncCollectionName,
  now: Date,
  writtenBy: mongo.ObjectId,
): PlannedWrite & { upsert: true } {
  const key = tombstoneKey(deleted.toolsCollection, deleted.toolObjectId);
  return {
    filter: { _id: key },
    update: {
      $set: { [`collections.${collection}`]: freshDeletion() },
      $setOnInsert: { toolObjectId: deleted.toolObjectId, toolsCollection: deleted.toolsCollection, id: null, deletedAt: now, writtenBy },
    },
    upsert: true,
  };
}

/**
 * How a delete writes its tombstone: merged into one already there (a tool whose `_id` came back,
 * by a restore, and is deleted again), so removals owed from before are never dropped; the
 * collections it names start over.
 */
export function planRecordTombstone(tombstone: Tombstone): PlannedWrite & { upsert: true } {
  const { _id, collections, ...fields } = tombstone;
  const named = Object.fromEntries(Object.entries(collections).map(([name, state]) => [`collections.${name}`, state]));
  return { filter: { _id }, update: { $set: { ...fields, ...named } }, upsert: true };
}

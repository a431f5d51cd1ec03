import { parseSyncState, type ParsedCollection, type StoredTool } from '../stored-tool.js';
import { collectionPath, METADATA_UPDATED_AT, PENDING_HASH_CHECK } from '../sync-state.js';
import { type SyncCollectionName, type SyncStatus } from '../vocabulary.js';
import { type Decision } from './plan.js';
import { planQuarantine } from './quarantine.js';
import { settleFirst } from './settle-first.js';

/** One tool × collection a worker holds: embed `contentHash`'s content, then mark it. */
export interface ClaimedCollection {
  collection: SyncCollectionName;
  /** The hash of the content to embed: pass it to markCollectionSynced. */
  contentHash: string;
  /** The status the work was claimed in (`pending`, `stale`, or `failed` and due). */
  status: SyncStatus;
  /** The lease ends then: renew it (extendClaims) for longer work. */
  claimedUntil: Date;
}

export interface ClaimRequest {
  workerId: string;
  leaseMs: number;
  collections: readonly SyncCollectionName[];
  maxRetries: number;
  /** Claim at most this many collections of this tool. */
  limit: number;
}

/**
 * A worker's report no longer belongs to it: the pair is not claimed by `workerId` (another worker
 * claimed it after the lease ended, or has already reported it and released it). A caller that
 * names no worker claims nothing: never.
 */
export function claimLostBy(state: ParsedCollection | undefined, workerId: string | undefined): boolean {
  return workerId !== undefined && state?.claimedBy !== workerId;
}

/** Held by a worker, this one included, whose lease has not ended. */
const leaseLive = (state: ParsedCollection, now: Date): boolean => state.claimedUntil !== null && state.claimedUntil.getTime() > now.getTime();

/** Work to do in this collection: waiting to be embedded, or failed and due for its retry. */
export function isWork(state: ParsedCollection | undefined, maxRetries: number, now: Date): boolean {
  if (state === undefined) return false;
  if (state.status === 'pending' || state.status === 'stale') return true;
  return state.status === 'failed' && state.errorCode !== 'VALIDATION_ERROR' && state.retryCount < maxRetries
    && state.nextRetryAt !== null && state.nextRetryAt.getTime() <= now.getTime();
}

/**
 * The claim's condition on one collection: its claim and retry state as read, so no other
 * worker's claim, mark or release came in between.
 */
function claimAsRead(name: SyncCollectionName, state: ParsedCollection | undefined): Record<string, unknown> {
  return {
    [collectionPath(name, 'claimedBy')]: { $eq: state?.storedClaimedBy ?? null },
    [collectionPath(name, 'claimedUntil')]: { $eq: state?.storedClaimedUntil ?? null },
    [collectionPath(name, 'nextRetryAt')]: { $eq: state?.storedNextRetryAt ?? null },
    [collectionPath(name, 'retryCount')]: { $eq: state?.storedRetryCount ?? null },
  };
}

/**
 * Claims this tool's work in the requested collections that no live lease holds: each gets the
 * worker and the end of its lease. Its metadata time moves to now, so claimed tools leave the
 * head of the waiting queues; a failed collection's retry time moves to the lease's end, so it
 * leaves the head of the retry queue and is due again if the worker never reports. A tool whose
 * metadata cannot be used is quarantined and gives no work.
 */
export function planClaim(tool: StoredTool, request: ClaimRequest, now: Date): Decision<ClaimedCollection[]> {
  const unsettled = settleFirst(tool, now);
  if (unsettled?.kind === 'invalid') return { kind: 'done', write: planQuarantine(tool, unsettled.reason, now), result: [] };
  if (unsettled !== undefined) return unsettled;
  const parsed = parseSyncState(tool);
  const claimedUntil = new Date(now.getTime() + request.leaseMs);
  const claimed: ClaimedCollection[] = [];
  // No content write in flight, and each claimed collection's status, hash and claim as read. Not
  // the other collections': a mark of one of them (another batch of this worker) changes nothing
  // this claim relies on, and would make it lose for nothing.
  let filter: Record<string, unknown> = { _id: tool._id, [PENDING_HASH_CHECK]: parsed.pendingHashCheck };
  const set: Record<string, unknown> = {};
  for (const name of request.collections) {
    if (claimed.length >= request.limit) break;
    const state = parsed.collections[name];
    // A live lease, even the worker's own, is work in flight: claimed again, it would be done twice.
    if (state?.status === undefined || !isWork(state, request.maxRetries, now) || leaseLive(state, now)) continue;
    claimed.push({ collection: name, contentHash: state.contentHash, status: state.status, claimedUntil });
    filter = {
      ...filter,
      [collectionPath(name, 'status')]: state.storedStatus ?? null,
      [collectionPath(name, 'contentHash')]: state.storedHash ?? null,
      ...claimAsRead(name, state),
    };
    set[collectionPath(name, 'claimedBy')] = request.workerId;
    set[collectionPath(name, 'claimedUntil')] = claimedUntil;
    if (state.status === 'failed') set[collectionPath(name, 'nextRetryAt')] = claimedUntil;
  }
  if (claimed.length === 0) return { kind: 'done', write: null, result: [] };
  set[METADATA_UPDATED_AT] = now;
  return { kind: 'done', write: { filter, update: { $set: set } }, result: claimed };
}

/**
 * A worker still at work renews its leases on `collections`: the ones it still holds get
 * `leaseMs` more from now (a failed one's retry time with them). Returns the collections renewed;
 * one another worker has taken over (after the lease ended) or that was marked meanwhile is not.
 */
export function planExtendClaims(
  tool: StoredTool,
  request: { workerId: string; leaseMs: number; collections: readonly SyncCollectionName[] },
  now: Date,
): Decision<SyncCollectionName[]> {
  const parsed = parseSyncState(tool);
  if (parsed.invalid !== undefined) return { kind: 'done', write: null, result: [] };
  const claimedUntil = new Date(now.getTime() + request.leaseMs);
  const renewed: SyncCollectionName[] = [];
  let filter: Record<string, unknown> = { _id: tool._id };
  const set: Record<string, unknown> = {};
  for (const name of request.collections) {
    const state = parsed.collections[name];
    if (state?.claimedBy !== request.workerId) continue;
    renewed.push(name);
    filter = { ...filter, ...claimAsRead(name, state), [collectionPath(name, 'status')]: { $eq: state.storedStatus } };
    set[collectionPath(name, 'claimedUntil')] = claimedUntil;
    if (state.status === 'failed') set[collectionPath(name, 'nextRetryAt')] = claimedUntil;
  }
  if (renewed.length === 0) return { kind: 'done', write: null, result: [] };
  return { kind: 'done', write: { filter, update: { $set: set } }, result: renewed };
}

/**
 * A worker gives back what it holds on this tool (shutting down, or work it will not do): each
 * claim of `workerId` among `collections` is cleared, and a failed collection is due again now.
 * Returns how many it released.
 */
export function planReleaseClaims(
  tool: StoredTool,
  request: { workerId: string; collections: readonly SyncCollectionName[] },
  now: Date,
): Decision<number> {
  const parsed = parseSyncState(tool);
  if (parsed.invalid !== undefined) return { kind: 'done', write: null, result: 0 };
  let filter: Record<string, unknown> = { _id: tool._id };
  const set: Record<string, unknown> = {};
  let released = 0;
  for (const name of request.collections) {
    const state = parsed.collections[name];
    if (state?.claimedBy !== request.workerId) continue;
    released += 1;
    filter = { ...filter, ...claimAsRead(name, state), [collectionPath(name, 'status')]: { $eq: state.storedStatus } };
    set[collectionPath(name, 'claimedBy')] = null;
    set[collectionPath(name, 'claimedUntil')] = null;
    if (state.status === 'failed') set[collectionPath(name, 'nextRetryAt')] = now;
  }
  if (released === 0) return { kind: 'done', write: null, result: 0 };
  return { kind: 'done', write: { filter, update: { $set: set } }, result: released };
}

/** A mark's write clears the collection's claim: the work is done (or recorded as failed). */
export function clearClaim(collection: SyncCollectionName): Record<string, null> {
  return { [collectionPath(collection, 'claimedBy')]: null, [collectionPath(collection, 'claimedUntil')]: null };
}

/**
 * The claim goes, its lease stays: nobody claims the pair before the lease ends, so a store write
 * that may still be on its way (sent with at least `maxWriteMs` of the lease left) lands before any
 * later worker's. No worker holds it meanwhile: renewals and marks of the former holder find it lost.
 */
export function fenceClaim(collection: SyncCollectionName): Record<string, null> {
  return { [collectionPath(collection, 'claimedBy')]: null };
}

/** A mark's condition: the claim as read, so a worker's mark never lands over another's new claim. */
export function claimUnchanged(collection: SyncCollectionName, state: ParsedCollection | undefined): Record<string, unknown> {
  return {
    [collectionPath(collection, 'claimedBy')]: { $eq: state?.storedClaimedBy ?? null },
    [collectionPath(collection, 'claimedUntil')]: { $eq: state?.storedClaimedUntil ?? null },
  };
}

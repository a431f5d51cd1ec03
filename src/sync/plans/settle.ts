import { CONTENT_FIELDS } from '../collection-fields.js';
import { computeContentHashes } from '../content-hash.js';
import { aggregateSyncStatus } from '../status-order.js';
import { nextRetryAt, retryJitterKey } from '../backoff.js';
import { parseSyncState, type ParsedCollection, type ParsedSyncState, type StoredTool } from '../stored-tool.js';
import {
  collectionPath,
  LAST_MODIFIED_FIELDS,
  METADATA_UPDATED_AT,
  OVERALL_STATUS,
  PENDING_HASH_CHECK,
  newCollectionState,
  type CollectionSyncState,
} from '../sync-state.js';
import { afterContentChange } from '../transitions.js';
import { INITIAL_SYNC_STATUS, SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncStatus } from '../vocabulary.js';
import { type PlannedWrite } from './plan.js';

export type SettlePlan =
  | { kind: 'settled' }
  | { kind: 'write'; write: PlannedWrite; statuses: Record<SyncCollectionName, SyncStatus> }
  | { kind: 'invalid'; reason: string };

/**
 * The condition under which a plan made from `parsed` still holds: no content write since (every
 * content write sets a new `pendingHashCheck` in the same single-document update), and the
 * statuses and hashes as read (transitions change nothing else that plans depend on).
 */
export function unchangedSince(id: unknown, parsed: ParsedSyncState): Record<string, unknown> {
  const filter: Record<string, unknown> = { _id: id, [PENDING_HASH_CHECK]: parsed.pendingHashCheck };
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = parsed.collections[name];
    filter[collectionPath(name, 'status')] = state?.storedStatus ?? null;
    filter[collectionPath(name, 'contentHash')] = state?.storedHash ?? null;
  }
  return filter;
}

/**
 * Every content field as read (null matches a missing field too), when nothing else guards it. A
 * write through the package sets a new pending check with its content, so a settle of a tool
 * carrying one needs no more; a tool without one (legacy, or edited around the package by the raw
 * driver) is guarded by its content itself, so the settle's hashes are those of what it read.
 */
function contentGuard(tool: StoredTool, parsed: ParsedSyncState, options: SettleOptions): Record<string, unknown> {
  const content = parsed.pendingHashCheck === null || options.unread === true ? contentAsRead(tool) : {};
  return options.unread === true ? { ...content, ...historyAsHeld(parsed) } : content;
}

/**
 * A tool held in memory since it was loaded may have been synced and failed again meanwhile,
 * with the same status and hash as held: its transitions depend on its history too (a failed
 * collection synced before goes back as `stale`), so that is a condition as well. Every
 * transition moves the attempt time or the retry count.
 */
function historyAsHeld(parsed: ParsedSyncState): Record<string, unknown> {
  const filter: Record<string, unknown> = {};
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = parsed.collections[name];
    if (state === undefined) continue;
    filter[collectionPath(name, 'retryCount')] = { $eq: state.storedRetryCount ?? null };
    filter[collectionPath(name, 'lastSyncedAt')] = { $eq: state.lastSyncedAt };
    filter[collectionPath(name, 'lastSyncAttemptAt')] = { $eq: state.lastSyncAttemptAt };
  }
  return filter;
}

export interface SettleOptions {
  /**
   * The tool was not read: it is what a write should have stored (a saved document as it is in
   * memory). Its content is a condition too, so hashes are never written for content that is not
   * the stored one (a concurrent write, or a value the server stores otherwise).
   */
  unread?: boolean;
}

export function contentAsRead(tool: StoredTool): Record<string, unknown> {
  // `$eq`: a stored value that is itself a regular expression or an object is compared, never matched against.
  return Object.fromEntries(CONTENT_FIELDS.map((field) => [field, { $eq: tool[field] ?? null }]));
}

/**
 * A failed collection stored without a retry time (before the package stored one): due when the
 * backoff after its last attempt ends, or now if the attempt was not recorded.
 */
function legacyRetryAt(id: unknown, name: SyncCollectionName, state: ParsedCollection, now: Date): Date | null {
  if (state.lastSyncAttemptAt === null) return state.errorCode === 'VALIDATION_ERROR' ? null : now;
  return nextRetryAt(state.lastSyncAttemptAt, state.retryCount, state.errorCode, retryJitterKey(id, name));
}

/**
 * Makes a tool's stored sync state agree with its stored content: missing metadata gets defaults
 * with the real hashes (a tool written before this package, or inserted by an upsert), a
 * collection whose stored hash no longer describes the content goes through `afterContentChange`,
 * the overall status becomes the aggregate, and a pending hash check is cleared. Nothing to do
 * for a settled tool whose hashes hold.
 */
export function planSettle(tool: StoredTool, now: Date, options: SettleOptions = {}): SettlePlan {
  const parsed = parseSyncState(tool);
  if (parsed.invalid !== undefined) return { kind: 'invalid', reason: parsed.invalid };
  const hashes = computeContentHashes(tool);
  const set: Record<string, unknown> = {};
  const statuses = {} as Record<SyncCollectionName, SyncStatus>;

  if (parsed.absent) {
    const collections = {} as Record<SyncCollectionName, CollectionSyncState>;
    for (const name of SYNC_COLLECTION_NAMES) {
      collections[name] = newCollectionState(hashes[name]);
      statuses[name] = INITIAL_SYNC_STATUS;
    }
    set.syncMetadata = {
      overallStatus: INITIAL_SYNC_STATUS, collections, lastModifiedFields: [], createdAt: now, updatedAt: now, pendingHashCheck: null,
    };
    return { kind: 'write', write: { filter: { ...unchangedSince(tool._id, parsed), ...contentGuard(tool, parsed, options) }, update: { $set: set } }, statuses };
  }

  const noCollections = SYNC_COLLECTION_NAMES.every((name) => parsed.collections[name] === undefined);
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = parsed.collections[name];
    if (state === undefined) {
      statuses[name] = INITIAL_SYNC_STATUS;
      if (!noCollections) set[`syncMetadata.collections.${name}`] = newCollectionState(hashes[name]);
      continue;
    }
    const status = state.status ?? INITIAL_SYNC_STATUS;
    statuses[name] = status;
    for (const key of state.missing) {
      if (key === 'nextRetryAt') set[collectionPath(name, key)] = legacyRetryAt(tool._id, name, state, now);
      else if (key !== 'contentHash') set[collectionPath(name, key)] = newCollectionState('')[key];
    }
    // Never hashed and not written since: what was embedded (if anything) is unknown, so the hash
    // is taken as it is. Written since (a pending check): the content changed, whatever it was.
    if (state.contentHash === '' && parsed.pendingHashCheck === null) {
      set[collectionPath(name, 'contentHash')] = hashes[name];
    } else if (state.contentHash !== hashes[name]) {
      const next = afterContentChange({ status, lastSyncedAt: state.lastSyncedAt, retryCount: state.retryCount });
      statuses[name] = next.status;
      set[collectionPath(name, 'status')] = next.status;
      set[collectionPath(name, 'retryCount')] = next.retryCount;
      set[collectionPath(name, 'contentHash')] = hashes[name];
      // Out of `failed`: no retry is due any more (the collection is back in line).
      if (next.status !== 'failed' && state.nextRetryAt !== null) set[collectionPath(name, 'nextRetryAt')] = null;
    }
    // Failed with nothing to wait for (no retry time, not a validation error): due now.
    if (statuses[name] === 'failed' && state.errorCode !== 'VALIDATION_ERROR' && state.storedNextRetryAt === null) {
      set[collectionPath(name, 'nextRetryAt')] = now;
    }
  }
  if (noCollections) {
    const collections = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, newCollectionState(hashes[name])]));
    set['syncMetadata.collections'] = collections;
  }

  const overallStatus = aggregateSyncStatus(SYNC_COLLECTION_NAMES.map((name) => statuses[name]));
  if (parsed.overallStatus !== overallStatus) set[OVERALL_STATUS] = overallStatus;
  for (const key of parsed.missingMetadataKeys) {
    if (key === 'lastModifiedFields') set[LAST_MODIFIED_FIELDS] = [];
    else if (key === 'createdAt') set['syncMetadata.createdAt'] = now;
    else if (key === 'updatedAt') set[METADATA_UPDATED_AT] = now;
  }
  if (parsed.pendingHashCheck !== null) {
    set[PENDING_HASH_CHECK] = null;
  }
  if (Object.keys(set).length === 0) return { kind: 'settled' };
  set[METADATA_UPDATED_AT] = now;
  return { kind: 'write', write: { filter: { ...unchangedSince(tool._id, parsed), ...contentGuard(tool, parsed, options) }, update: { $set: set } }, statuses };
}

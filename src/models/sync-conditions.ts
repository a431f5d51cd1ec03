import { CONTENT_FIELDS } from '../sync/collection-fields.js';
import { type ToolContent } from '../sync/content-hash.js';
import { type HashReconciliation } from '../sync/reconcile.js';
import { isSyncStatus, SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncStatus } from '../sync/vocabulary.js';
import { collectionPath } from './collection-sync-status.js';

/**
 * Conditions of the compare-and-swap writes: a write computed from what was read matches only
 * while the document still is so.
 */

/** A hydrated tool whose stored metadata predates content hashes (defaults filled in on read). */
export function lacksContentHash(collections: Record<SyncCollectionName, { contentHash: string }>): boolean {
  return SYNC_COLLECTION_NAMES.some((name) => collections[name].contentHash === '');
}

type StoredCollections = Partial<Record<SyncCollectionName, { status?: unknown; contentHash?: unknown }>>;

/** A stored tool whose every collection has a valid status and a real hash: safe to transition or re-hash. */
export function hasCompleteSyncMetadata(stored: object): boolean {
  const collections = (stored as { syncMetadata?: { collections?: StoredCollections } | null }).syncMetadata?.collections;
  return SYNC_COLLECTION_NAMES.every((name) => {
    const state = collections?.[name];
    return isSyncStatus(state?.status) && typeof state.contentHash === 'string' && state.contentHash !== '';
  });
}

/** The four statuses as read: the overall status depends on nothing else. */
export function statusesAsRead(statuses: Record<SyncCollectionName, SyncStatus | null>): Record<string, SyncStatus | null> {
  const filter: Record<string, SyncStatus | null> = {};
  for (const name of SYNC_COLLECTION_NAMES) filter[collectionPath(name, 'status')] = statuses[name];
  return filter;
}

/** Every content field as read (null matches a missing field too). */
export function contentAsRead(doc: ToolContent): Record<string, unknown> {
  return Object.fromEntries(CONTENT_FIELDS.map((field) => [field, doc[field] ?? null]));
}

/** The `$set` of a hash reconciliation's changes. */
export function reconciliationSet(changes: HashReconciliation['changes']): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  for (const name of SYNC_COLLECTION_NAMES) {
    const change = changes[name];
    if (change === undefined) continue;
    set[collectionPath(name, 'status')] = change.status;
    set[collectionPath(name, 'retryCount')] = change.retryCount;
    set[collectionPath(name, 'contentHash')] = change.contentHash;
  }
  return set;
}

import { type ReturnModelType } from '@typegoose/typegoose';
import { collectionPath } from '../models/collection-sync-status.js';
import { contentAsRead, hasCompleteSyncMetadata, reconciliationSet, statusesAsRead } from '../models/sync-conditions.js';
import { type Tool } from '../models/tool.js';
import { computeContentHashes, type ToolContent } from '../sync/content-hash.js';
import { reconcileHashes, type StoredCollectionState } from '../sync/reconcile.js';
import { aggregateSyncStatus } from '../sync/status-order.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName } from '../sync/vocabulary.js';
import { type BatchOptions } from './backfill.js';
import { runBatchMigration, type MigrationSummary, type Plan, type RawTool } from './batch-migration.js';

type ToolModelType = ReturnModelType<typeof Tool>;

export const REHASH_OUTCOMES = { flagged: 'flagged', unchanged: 'unchanged', needsBackfill: 'needs backfill first' } as const;

/**
 * Recomputes a tool's hashes under the current field lists and hashing scheme; each collection
 * whose hash changed goes through `afterContentChange` (`synced` → `stale`). Tools without complete
 * metadata are left to `backfill`.
 */
export function rehashPlan(doc: RawTool, now: Date): Plan {
  if (!hasCompleteSyncMetadata(doc)) return { outcome: REHASH_OUTCOMES.needsBackfill };
  // Complete means a status and a hash in each collection; the rest may still be missing.
  type Stored = Pick<StoredCollectionState, 'status' | 'contentHash'> & Partial<StoredCollectionState>;
  const collections = (doc.syncMetadata as { collections: Record<SyncCollectionName, Stored> }).collections;
  const states = {} as Record<SyncCollectionName, StoredCollectionState>;
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = collections[name];
    states[name] = { status: state.status, lastSyncedAt: state.lastSyncedAt ?? null, retryCount: state.retryCount ?? 0, contentHash: state.contentHash };
  }
  const { changes, statuses } = reconcileHashes(states, computeContentHashes(doc as ToolContent));
  const set = reconciliationSet(changes);
  if (Object.keys(set).length === 0) return { outcome: REHASH_OUTCOMES.unchanged };
  const before = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, states[name].status])) as Record<SyncCollectionName, StoredCollectionState['status']>;
  const hashesAsRead = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [collectionPath(name, 'contentHash'), states[name].contentHash]));
  return {
    outcome: REHASH_OUTCOMES.flagged,
    write: {
      filter: { _id: doc._id, ...statusesAsRead(before), ...hashesAsRead, ...contentAsRead(doc as ToolContent) },
      update: { $set: { ...set, 'syncMetadata.overallStatus': aggregateSyncStatus(Object.values(statuses)), 'syncMetadata.updatedAt': now } },
    },
  };
}

export function rehash(model: ToolModelType, options: BatchOptions): Promise<MigrationSummary> {
  return runBatchMigration(model, { name: 'rehash', plan: rehashPlan, ...options });
}

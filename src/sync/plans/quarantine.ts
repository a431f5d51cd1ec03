import { computeContentHashes } from '../content-hash.js';
import { parseSyncState, type StoredTool } from '../stored-tool.js';
import { newCollectionState, type CollectionSyncState } from '../sync-state.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName } from '../vocabulary.js';
import { type PlannedWrite } from './plan.js';
import { contentAsRead } from './settle.js';

/** What `lastError` says of a tool whose stored sync metadata could not be used. */
export const QUARANTINE_MESSAGE_PREFIX = 'tool-sync could not use the stored sync metadata: ';

/**
 * A tool whose stored sync metadata cannot be used (a value the package never writes: a negative
 * retry count, a status that is not one, metadata that is not an object) would be found by every
 * poll and skipped by it, so enough of them would starve the queue. Its metadata is replaced by
 * valid metadata in which every collection is `failed` with `VALIDATION_ERROR` and a message
 * naming the path and value: out of the queue, visible in the stats, and back in line as soon as
 * its content changes (a settle turns `failed` into `pending` or `stale`) or an operator requeues
 * it. What could be read is kept (last sync times, vector versions); the hashes are those of the
 * content read. The write is conditioned on the metadata and content as read, so a tool repaired
 * meanwhile is left alone.
 */
export function planQuarantine(tool: StoredTool, reason: string, now: Date): PlannedWrite {
  const parsed = parseSyncState(tool);
  const hashes = computeContentHashes(tool);
  const lastError = `${QUARANTINE_MESSAGE_PREFIX}${reason}`;
  const collections = {} as Record<SyncCollectionName, CollectionSyncState>;
  for (const name of SYNC_COLLECTION_NAMES) {
    const read = parsed.collections[name];
    collections[name] = {
      ...newCollectionState(hashes[name]),
      status: 'failed',
      errorCode: 'VALIDATION_ERROR',
      lastError,
      lastSyncAttemptAt: now,
      lastSyncedAt: read?.lastSyncedAt ?? null,
      vectorVersion: read?.vectorVersion ?? 0,
    };
  }
  const stored = tool.syncMetadata;
  const createdAt = typeof stored === 'object' && stored !== null && (stored as { createdAt?: unknown }).createdAt instanceof Date
    ? (stored as { createdAt: Date }).createdAt
    : now;
  return {
    // `$eq`: the stored metadata is compared as a whole, never read as an operator.
    filter: { _id: tool._id, syncMetadata: { $eq: stored ?? null }, ...contentAsRead(tool) },
    update: {
      $set: {
        syncMetadata: { overallStatus: 'failed', collections, lastModifiedFields: [], createdAt, updatedAt: now, pendingHashCheck: null },
      },
    },
  };
}

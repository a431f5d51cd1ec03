import { parseSyncState, type StoredTool } from '../stored-tool.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncStatus } from '../vocabulary.js';

/** The four statuses of a settled tool (every collection parsed and complete). */
export function settledStatuses(tool: StoredTool): Record<SyncCollectionName, SyncStatus> {
  const parsed = parseSyncState(tool);
  const statuses = {} as Record<SyncCollectionName, SyncStatus>;
  for (const name of SYNC_COLLECTION_NAMES) statuses[name] = parsed.collections[name]?.status ?? 'pending';
  return statuses;
}

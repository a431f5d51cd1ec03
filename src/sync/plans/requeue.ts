import { aggregateSyncStatus } from '../status-order.js';
import { parseSyncState, type StoredTool } from '../stored-tool.js';
import { collectionPath, METADATA_UPDATED_AT, OVERALL_STATUS } from '../sync-state.js';
import { afterRequeue } from '../transitions.js';
import { type SyncCollectionName, type SyncErrorCode } from '../vocabulary.js';
import { settledStatuses } from './settled-statuses.js';
import { type Decision } from './plan.js';
import { planQuarantine } from './quarantine.js';
import { settleFirst } from './settle-first.js';
import { unchangedSince } from './settle.js';

/**
 * Failed collections among `collections` (and among `errorCodes`, if given) back in line:
 * `stale` if ever synced, else `pending`, retries reset. The result is how many it requeued.
 */
export function planRequeue(
  tool: StoredTool,
  collections: readonly SyncCollectionName[],
  errorCodes: readonly SyncErrorCode[] | undefined,
  now: Date,
): Decision<number> {
  const unsettled = settleFirst(tool, now);
  // Metadata that cannot be used is quarantined first (every collection failed validation), then requeued.
  if (unsettled?.kind === 'invalid') return { kind: 'again', write: planQuarantine(tool, unsettled.reason, now) };
  if (unsettled !== undefined) return unsettled;
  const parsed = parseSyncState(tool);
  const statuses = settledStatuses(tool);
  const set: Record<string, unknown> = {};
  let count = 0;
  for (const name of collections) {
    const state = parsed.collections[name];
    const code = state?.errorCode ?? null;
    if (errorCodes !== undefined && (code === null || !errorCodes.includes(code))) continue;
    const change = afterRequeue({ status: statuses[name], lastSyncedAt: state?.lastSyncedAt ?? null, retryCount: state?.retryCount ?? 0 });
    if (change === null) continue;
    statuses[name] = change.status;
    set[collectionPath(name, 'status')] = change.status;
    set[collectionPath(name, 'retryCount')] = change.retryCount;
    set[collectionPath(name, 'nextRetryAt')] = null;
    count += 1;
  }
  if (count === 0) return { kind: 'done', write: null, result: 0 };
  set[OVERALL_STATUS] = aggregateSyncStatus(Object.values(statuses));
  set[METADATA_UPDATED_AT] = now;
  return { kind: 'done', write: { filter: unchangedSince(tool._id, parsed), update: { $set: set } }, result: count };
}

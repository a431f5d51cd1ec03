import { nextRetryAt, retryJitterKey } from '../backoff.js';
import { aggregateSyncStatus } from '../status-order.js';
import { parseSyncState, type StoredTool } from '../stored-tool.js';
import { collectionPath, METADATA_UPDATED_AT, OVERALL_STATUS } from '../sync-state.js';
import { type SyncCollectionName, type SyncErrorCode } from '../vocabulary.js';
import { claimLostBy, claimUnchanged, clearClaim } from './claim.js';
import { settledStatuses } from './mark-synced.js';
import { type Decision } from './plan.js';
import { planQuarantine } from './quarantine.js';
import { settleFirst } from './settle-first.js';
import { unchangedSince } from './settle.js';

export type MarkFailedResult =
  | { recorded: true; errorCode: SyncErrorCode; retryCount: number }
  /** The pair is not this worker's any more (its lease ended; another worker claimed or reported it): nothing was recorded. */
  | { recorded: false; reason: 'claim-lost'; claimedBy: string | null; errorCode: SyncErrorCode; retryCount: number };

/**
 * A sync attempt failed: `failed`, the classified error recorded, one more retry counted, and
 * the time its retry is due stored (see `nextRetryAt`: none for `VALIDATION_ERROR`).
 */
export function planMarkFailed(
  tool: StoredTool,
  collection: SyncCollectionName,
  failure: { errorCode: SyncErrorCode; lastError: string },
  now: Date,
  workerId?: string,
): Decision<MarkFailedResult> {
  const unsettled = settleFirst(tool, now);
  // Metadata that cannot be used cannot take this failure either: the tool is quarantined (see
  // planQuarantine), which records the problem and takes it out of the queue.
  if (unsettled?.kind === 'invalid') {
    return { kind: 'done', write: planQuarantine(tool, unsettled.reason, now), result: { recorded: true, errorCode: 'VALIDATION_ERROR', retryCount: 0 } };
  }
  if (unsettled !== undefined) return unsettled;
  const parsed = parseSyncState(tool);
  const state = parsed.collections[collection];
  const retryCount = (state?.retryCount ?? 0) + 1;
  if (claimLostBy(state, workerId)) {
    return { kind: 'done', write: null, result: { recorded: false, reason: 'claim-lost', claimedBy: state?.claimedBy ?? null, errorCode: failure.errorCode, retryCount: retryCount - 1 } };
  }
  const statuses = settledStatuses(tool);
  statuses[collection] = 'failed';
  return {
    kind: 'done',
    write: {
      filter: { ...unchangedSince(tool._id, parsed), ...claimUnchanged(collection, state), [collectionPath(collection, 'retryCount')]: retryCount - 1 },
      update: {
        $set: {
          [collectionPath(collection, 'status')]: 'failed',
          [collectionPath(collection, 'lastSyncAttemptAt')]: now,
          [collectionPath(collection, 'lastError')]: failure.lastError,
          [collectionPath(collection, 'errorCode')]: failure.errorCode,
          [collectionPath(collection, 'retryCount')]: retryCount,
          [collectionPath(collection, 'nextRetryAt')]: nextRetryAt(now, retryCount, failure.errorCode, retryJitterKey(tool._id, collection)),
          ...clearClaim(collection),
          [OVERALL_STATUS]: aggregateSyncStatus(Object.values(statuses)),
          [METADATA_UPDATED_AT]: now,
        },
      },
    },
    result: { recorded: true, errorCode: failure.errorCode, retryCount },
  };
}

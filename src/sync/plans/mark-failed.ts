import { nextRetryAt, retryJitterKey } from '../backoff.js';
import { aggregateSyncStatus } from '../status-order.js';
import { parseSyncState, type StoredTool } from '../stored-tool.js';
import { collectionPath, METADATA_UPDATED_AT, OVERALL_STATUS } from '../sync-state.js';
import { type SyncCollectionName, type SyncErrorCode } from '../vocabulary.js';
import { claimLostBy, claimUnchanged, clearClaim, fenceClaim } from './claim.js';
import { settledStatuses } from './settled-statuses.js';
import { type Decision } from './plan.js';
import { planReopen } from './reopen.js';
import { planQuarantine } from './quarantine.js';
import { settleFirst } from './settle-first.js';
import { unchangedSince } from './settle.js';

export type MarkFailedResult =
  | { recorded: true; errorCode: SyncErrorCode; retryCount: number }
  /**
   * The pair is not this worker's any more (its lease ended; another worker claimed or reported
   * it): the failure was not recorded. `reopened`: the failed call was a vector store write that
   * may have landed, so the pair was put back in line (see planReopen).
   */
  | { recorded: false; reason: 'claim-lost'; claimedBy: string | null; errorCode: SyncErrorCode; retryCount: number; reopened: boolean }
  /** The tool is gone (deleted meanwhile); a store write that may have landed is owed a removal, recorded in its tombstone. */
  | { recorded: false; reason: 'deleted'; errorCode: SyncErrorCode };

/**
 * A sync attempt failed: `failed`, the classified error recorded, one more retry counted, and
 * the time its retry is due stored (see `nextRetryAt`: none for `VALIDATION_ERROR`).
 * `mayHaveWritten`: the failed call was the vector store write (it may have landed all the same).
 */
export function planMarkFailed(
  tool: StoredTool,
  collection: SyncCollectionName,
  failure: { errorCode: SyncErrorCode; lastError: string },
  now: Date,
  workerId?: string,
  mayHaveWritten = false,
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
    const reopen = mayHaveWritten ? planReopen(tool, parsed, collection, now) : { write: null, reopened: false };
    return {
      kind: 'done',
      write: reopen.write,
      result: { recorded: false, reason: 'claim-lost', claimedBy: state?.claimedBy ?? null, errorCode: failure.errorCode, retryCount: retryCount - 1, reopened: reopen.reopened },
    };
  }
  const statuses = settledStatuses(tool);
  statuses[collection] = 'failed';
  const retryAt = nextRetryAt(now, retryCount, failure.errorCode, retryJitterKey(tool._id, collection));
  // A failed store write may still land: its lease stays (see fenceClaim), and the retry waits for it.
  const leaseEnd = state?.claimedUntil ?? null;
  const fenced = mayHaveWritten && leaseEnd !== null && leaseEnd.getTime() > now.getTime();
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
          [collectionPath(collection, 'nextRetryAt')]: fenced && retryAt !== null && retryAt < leaseEnd ? leaseEnd : retryAt,
          ...(fenced ? fenceClaim(collection) : clearClaim(collection)),
          [OVERALL_STATUS]: aggregateSyncStatus(Object.values(statuses)),
          [METADATA_UPDATED_AT]: now,
        },
      },
    },
    result: { recorded: true, errorCode: failure.errorCode, retryCount },
  };
}

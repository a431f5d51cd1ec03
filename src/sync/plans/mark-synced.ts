import { aggregateSyncStatus } from '../status-order.js';
import { parseSyncState, type StoredTool } from '../stored-tool.js';
import { collectionPath, METADATA_UPDATED_AT, OVERALL_STATUS } from '../sync-state.js';
import { type SyncCollectionName } from '../vocabulary.js';
import { type Decision } from './plan.js';
import { claimLostBy, claimUnchanged, clearClaim } from './claim.js';
import { planReopen } from './reopen.js';
import { settledStatuses } from './settled-statuses.js';
import { settleFirst } from './settle-first.js';
import { unchangedSince } from './settle.js';

export type MarkSyncedResult =
  | { synced: true; vectorVersion: number }
  | { synced: false; reason: 'content-changed'; currentContentHash: string }
  /**
   * The pair is not this worker's any more (its lease ended; another worker claimed or reported
   * it): nothing of this sync was recorded. `reopened`: the worker's write may have replaced a
   * later worker's vector, so the pair was put back in line (see planReopen).
   */
  | { synced: false; reason: 'claim-lost'; claimedBy: string | null; reopened: boolean }
  /** The tool is gone (deleted meanwhile): the point just written is owed a removal, recorded in its tombstone. */
  | { synced: false; reason: 'deleted' };

/**
 * The worker embedded the content whose hash it read: `synced`, only while the stored hash is
 * still that one and verified; otherwise the attempt is recorded and the caller told.
 */
export function planMarkSynced(
  tool: StoredTool,
  collection: SyncCollectionName,
  contentHash: string,
  now: Date,
  workerId?: string,
  embeddingModel: string | null = null,
): Decision<MarkSyncedResult> {
  const unsettled = settleFirst(tool, now);
  if (unsettled !== undefined) return unsettled;
  const parsed = parseSyncState(tool);
  const state = parsed.collections[collection];
  if (claimLostBy(state, workerId)) {
    // The worker has written its vector: it may have landed over a later worker's.
    const { write, reopened } = planReopen(tool, parsed, collection, now);
    return { kind: 'done', write, result: { synced: false, reason: 'claim-lost', claimedBy: state?.claimedBy ?? null, reopened } };
  }
  const current = state?.contentHash ?? '';
  // Either way the claim is done with: released, on the condition that it is still as read.
  const condition = { ...unchangedSince(tool._id, parsed), ...claimUnchanged(collection, state) };
  if (current !== contentHash) {
    return {
      kind: 'done',
      write: { filter: condition, update: { $set: { [collectionPath(collection, 'lastSyncAttemptAt')]: now, ...clearClaim(collection), [METADATA_UPDATED_AT]: now } } },
      result: { synced: false, reason: 'content-changed', currentContentHash: current },
    };
  }
  const statuses = settledStatuses(tool);
  statuses[collection] = 'synced';
  const vectorVersion = (state?.vectorVersion ?? 0) + 1;
  return {
    kind: 'done',
    write: {
      filter: { ...condition, [collectionPath(collection, 'vectorVersion')]: state?.vectorVersion ?? 0 },
      update: {
        $set: {
          [collectionPath(collection, 'status')]: 'synced',
          [collectionPath(collection, 'lastSyncedAt')]: now,
          [collectionPath(collection, 'lastSyncAttemptAt')]: now,
          [collectionPath(collection, 'lastError')]: null,
          [collectionPath(collection, 'errorCode')]: null,
          [collectionPath(collection, 'retryCount')]: 0,
          [collectionPath(collection, 'nextRetryAt')]: null,
          [collectionPath(collection, 'vectorVersion')]: vectorVersion,
          // The vector just made: by this model (null: the worker did not say).
          [collectionPath(collection, 'embeddingModel')]: embeddingModel,
          ...clearClaim(collection),
          [OVERALL_STATUS]: aggregateSyncStatus(Object.values(statuses)),
          [METADATA_UPDATED_AT]: now,
        },
      },
    },
    result: { synced: true, vectorVersion },
  };
}

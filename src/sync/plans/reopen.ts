import { aggregateSyncStatus } from '../status-order.js';
import { type ParsedSyncState, type StoredTool } from '../stored-tool.js';
import { collectionPath, METADATA_UPDATED_AT, OVERALL_STATUS } from '../sync-state.js';
import { type SyncCollectionName } from '../vocabulary.js';
import { claimUnchanged, fenceClaim } from './claim.js';
import { settledStatuses } from './settled-statuses.js';
import { type PlannedWrite } from './plan.js';
import { unchangedSince } from './settle.js';

/*
 * The fencing rule's second half. A worker writes to the vector store only while it holds the
 * pair's lease, but a write can still land after the lease ended (a call already sent when the
 * lease ran out). Such a write may have replaced the vector of a worker that held the pair later
 * and marked it synced, or of the one holding it now. So when a mark from a worker that wrote (or
 * may have) finds its claim lost, the pair is re-opened: `synced` becomes `stale`, and whoever
 * holds it now loses the claim but not the lease (its mark is refused in turn, and re-opens it again
 * if it wrote; nobody claims the pair before that lease ends, after that worker's write landed).
 * Every write that could have come late has landed before its writer's mark, so the last mark
 * that leaves the pair `synced` comes from a worker that held the lease throughout, after every
 * earlier write: the store then holds that worker's vector, of the current content.
 */

/**
 * The re-open of `collection` after a late write: `synced` becomes `stale`, a holder's claim goes
 * (its lease stays), and the attempt is recorded (so a delete knows the store may hold a point; see
 * collectionsWithVectors). `reopened`: the pair was put back in line (it was synced, or held).
 */
export function planReopen(tool: StoredTool, parsed: ParsedSyncState, collection: SyncCollectionName, now: Date): { write: PlannedWrite; reopened: boolean } {
  const state = parsed.collections[collection];
  const held = state?.claimedBy !== null && state?.claimedBy !== undefined;
  const synced = state?.status === 'synced';
  const set: Record<string, unknown> = { [collectionPath(collection, 'lastSyncAttemptAt')]: now, [METADATA_UPDATED_AT]: now };
  // The holder's claim goes, not its lease: its own write may be on its way (see fenceClaim).
  if (held) Object.assign(set, fenceClaim(collection));
  if (synced) {
    const statuses = settledStatuses(tool);
    statuses[collection] = 'stale';
    set[collectionPath(collection, 'status')] = 'stale';
    set[OVERALL_STATUS] = aggregateSyncStatus(Object.values(statuses));
  }
  return { write: { filter: { ...unchangedSince(tool._id, parsed), ...claimUnchanged(collection, state) }, update: { $set: set } }, reopened: held || synced };
}

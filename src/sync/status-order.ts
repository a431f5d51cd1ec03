import { SYNC_STATUSES, type SyncStatus } from './vocabulary.js';

/**
 * Statuses from best to worst: a missing vector (`pending`) is worse than an outdated one
 * (`stale`), and a failure is worst of all.
 */
export const SYNC_STATUS_ORDER = ['synced', 'stale', 'pending', 'failed'] as const satisfies readonly SyncStatus[];

const RANK = new Map<SyncStatus, number>(SYNC_STATUS_ORDER.map((status, rank) => [status, rank]));

function rankOf(status: SyncStatus): number {
  const rank = RANK.get(status);
  if (rank === undefined) throw new RangeError(`unknown sync status "${status}"; expected one of ${SYNC_STATUSES.join(', ')}`);
  return rank;
}

/** The overall status of a tool: the worst of its collection statuses. */
export function aggregateSyncStatus(statuses: Iterable<SyncStatus>): SyncStatus {
  let worst: SyncStatus | undefined;
  for (const status of statuses) {
    if (worst === undefined || rankOf(status) > rankOf(worst)) worst = status;
  }
  if (worst === undefined) throw new RangeError('aggregateSyncStatus needs at least one status');
  return worst;
}

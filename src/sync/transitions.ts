import { type SyncStatus } from './vocabulary.js';

/** What a transition needs to know of a collection's current state. */
export interface CollectionState {
  status: SyncStatus;
  lastSyncedAt: Date | null;
  retryCount: number;
}

/** `failed` goes back in line as `stale` if vectors exist from an earlier sync, else as `pending`. */
function backInLine(state: CollectionState): SyncStatus {
  return state.lastSyncedAt === null ? 'pending' : 'stale';
}

/**
 * The content feeding a collection changed: `synced` becomes `stale`; `failed` goes back in line
 * with fresh retries (new content deserves them); `pending` and `stale` stay as they are.
 */
export function afterContentChange(state: CollectionState): Pick<CollectionState, 'status' | 'retryCount'> {
  switch (state.status) {
    case 'synced':
      return { status: 'stale', retryCount: state.retryCount };
    case 'failed':
      return { status: backInLine(state), retryCount: 0 };
    case 'pending':
    case 'stale':
      return { status: state.status, retryCount: state.retryCount };
  }
}

/** An operator requeues a failed collection: back in line, retries reset. Others are untouched. */
export function afterRequeue(state: CollectionState): Pick<CollectionState, 'status' | 'retryCount'> | null {
  return state.status === 'failed' ? { status: backInLine(state), retryCount: 0 } : null;
}

import { afterContentChange, type CollectionState } from './transitions.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncStatus } from './vocabulary.js';

export interface StoredCollectionState extends CollectionState {
  contentHash: string;
}

export interface HashReconciliation {
  /** The collections whose stored hash no longer describes the content, and what they become. */
  changes: Partial<Record<SyncCollectionName, Pick<StoredCollectionState, 'status' | 'retryCount' | 'contentHash'>>>;
  /** The four statuses after the changes. */
  statuses: Record<SyncCollectionName, SyncStatus>;
}

/**
 * Compares each collection's stored hash with the hash of the stored content: a collection whose
 * hash differs goes through `afterContentChange` and takes the new hash. The rule behind a save's
 * after-check and behind `tool-sync rehash`.
 */
export function reconcileHashes(
  states: Record<SyncCollectionName, StoredCollectionState>,
  hashes: Record<SyncCollectionName, string>,
): HashReconciliation {
  const changes: HashReconciliation['changes'] = {};
  const statuses = {} as Record<SyncCollectionName, SyncStatus>;
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = states[name];
    statuses[name] = state.status;
    if (state.contentHash === hashes[name]) continue;
    const next = afterContentChange(state);
    changes[name] = { ...next, contentHash: hashes[name] };
    statuses[name] = next.status;
  }
  return { changes, statuses };
}

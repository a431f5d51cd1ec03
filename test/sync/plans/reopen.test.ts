import { Types } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { computeContentHashes } from '../../../src/sync/content-hash.js';
import { planMarkFailed } from '../../../src/sync/plans/mark-failed.js';
import { planMarkSynced } from '../../../src/sync/plans/mark-synced.js';
import { planReopen } from '../../../src/sync/plans/reopen.js';
import { parseSyncState, type StoredTool } from '../../../src/sync/stored-tool.js';
import { aggregateSyncStatus } from '../../../src/sync/status-order.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncStatus } from '../../../src/sync/vocabulary.js';
import { EDITOR_CONTENT } from '../../helpers/content.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const EARLIER = new Date('2026-01-01T00:00:00Z');
const LATER = new Date(NOW.getTime() + 30_000);
const HASHES = computeContentHashes(EDITOR_CONTENT);

/** A settled tool, every collection synced unless `states` says otherwise. */
function tool(states: Partial<Record<SyncCollectionName, Record<string, unknown>>> = {}): StoredTool {
  const collections = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, {
    status: 'synced', lastSyncedAt: EARLIER, lastSyncAttemptAt: EARLIER, lastError: null, errorCode: null, retryCount: 0, nextRetryAt: null,
    contentHash: HASHES[name], vectorVersion: 1, claimedBy: null, claimedUntil: null, embeddingModel: 'm', ...states[name],
  }]));
  const overallStatus = aggregateSyncStatus(Object.values(collections).map(({ status }) => status as SyncStatus));
  return {
    _id: new Types.ObjectId(), id: 'vscode', ...EDITOR_CONTENT,
    syncMetadata: { overallStatus, collections, lastModifiedFields: [], createdAt: EARLIER, updatedAt: EARLIER, pendingHashCheck: null },
  };
}

const set = (write: { update: Record<string, unknown> }): Record<string, unknown> => (write.update.$set ?? {}) as Record<string, unknown>;

describe('a late write re-opens the pair (the fencing rule)', () => {
  it('synced by a later worker: stale again, the overall status with it, conditioned on the state as read', () => {
    const stored = tool({ tools: { claimedBy: null } });
    const { write, reopened } = planReopen(stored, parseSyncState(stored), 'tools', NOW);
    expect(reopened).toBe(true);
    expect(set(write)).toEqual({
      'syncMetadata.collections.tools.status': 'stale',
      'syncMetadata.collections.tools.lastSyncAttemptAt': NOW,
      'syncMetadata.overallStatus': 'stale',
      'syncMetadata.updatedAt': NOW,
    });
    expect(write.filter).toMatchObject({ _id: stored._id, 'syncMetadata.collections.tools.status': 'synced', 'syncMetadata.collections.tools.claimedBy': { $eq: null } });
  });

  it('held by another worker now: that claim goes (its write may have come before the late one), its lease and the status stay', () => {
    const stored = tool({ usecases: { status: 'stale', claimedBy: 'B', claimedUntil: LATER } });
    const { write, reopened } = planReopen(stored, parseSyncState(stored), 'usecases', NOW);
    expect(reopened).toBe(true);
    // The lease stays: nobody claims the pair before B's own write (sent within it) has landed.
    expect(set(write)).toEqual({
      'syncMetadata.collections.usecases.claimedBy': null, 'syncMetadata.collections.usecases.lastSyncAttemptAt': NOW, 'syncMetadata.updatedAt': NOW,
    });
    expect(write.filter).toMatchObject({ 'syncMetadata.collections.usecases.claimedBy': { $eq: 'B' }, 'syncMetadata.collections.usecases.claimedUntil': { $eq: LATER } });
  });

  it('already waiting and held by no one: not re-opened (the next claim comes after the late write), only the attempt recorded', () => {
    for (const status of ['pending', 'stale', 'failed']) {
      const stored = tool({ interface: { status, lastSyncedAt: null, vectorVersion: 0, errorCode: status === 'failed' ? 'UNKNOWN' : null, nextRetryAt: status === 'failed' ? EARLIER : null } });
      const { write, reopened } = planReopen(stored, parseSyncState(stored), 'interface', NOW);
      expect(reopened).toBe(false);
      // A delete now owes the point a removal, though the collection was never synced.
      expect(set(write)).toEqual({ 'syncMetadata.collections.interface.lastSyncAttemptAt': NOW, 'syncMetadata.updatedAt': NOW });
    }
  });

  it("a refused sync mark always re-opens; a refused failure only when the failed call was the store's write", () => {
    const stored = tool({ tools: { status: 'stale', contentHash: HASHES.tools, claimedBy: 'B', claimedUntil: LATER } });
    const synced = planMarkSynced(stored, 'tools', HASHES.tools, NOW, 'A');
    expect(synced.kind === 'done' && synced.result).toEqual({ synced: false, reason: 'claim-lost', claimedBy: 'B', reopened: true });
    const failure = { errorCode: 'QDRANT_TIMEOUT', lastError: 'timed out' } as const;
    const afterWrite = planMarkFailed(stored, 'tools', failure, NOW, 'A', true);
    expect(afterWrite.kind === 'done' && afterWrite.write !== null && afterWrite.result).toMatchObject({ recorded: false, reason: 'claim-lost', reopened: true });
    const beforeWrite = planMarkFailed(stored, 'tools', failure, NOW, 'A', false);
    expect(beforeWrite.kind === 'done' && beforeWrite.write === null && beforeWrite.result).toMatchObject({ recorded: false, reason: 'claim-lost', reopened: false });
  });

  it('a failed store write (it may still land) keeps its lease: the claim goes, the lease stays, the retry waits for the lease', () => {
    const stored = tool({ tools: { status: 'stale', claimedBy: 'A', claimedUntil: LATER } });
    const failure = { errorCode: 'QDRANT_TIMEOUT', lastError: 'timed out' } as const;
    const fenced = planMarkFailed(stored, 'tools', failure, NOW, 'A', true);
    if (fenced.kind !== 'done' || fenced.write === null) throw new Error('a write was expected');
    const after = set(fenced.write);
    expect(after).toMatchObject({ 'syncMetadata.collections.tools.status': 'failed', 'syncMetadata.collections.tools.claimedBy': null });
    expect(after).not.toHaveProperty(['syncMetadata.collections.tools.claimedUntil']);
    expect((after['syncMetadata.collections.tools.nextRetryAt'] as Date).getTime()).toBeGreaterThanOrEqual(LATER.getTime());
    // A failure before any write releases the lease as before.
    const released = planMarkFailed(stored, 'tools', failure, NOW, 'A', false);
    expect(released.kind === 'done' && released.write !== null && set(released.write)).toMatchObject({ 'syncMetadata.collections.tools.claimedUntil': null });
  });
});

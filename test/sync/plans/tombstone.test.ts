import { Types } from 'mongoose';
import { describe, expect, it } from 'vitest';
import {
  collectionsWithVectors,
  deletionState,
  finishedFilter,
  isDeletionWork,
  planClaimDeletion,
  planMarkVectorDeleted,
  planMarkVectorDeleteFailed,
  planRecordTombstone,
  planReopenRemoval,
  planRequeueDeletions,
  tombstoneFor,
  tombstoneKey,
  type DeletionState,
  type Tombstone,
} from '../../../src/sync/plans/tombstone.js';
import { type StoredTool } from '../../../src/sync/stored-tool.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const EARLIER = new Date('2026-01-01T00:00:00Z');
const LATER = new Date(NOW.getTime() + 1000);

function tool(collections: Record<string, Record<string, unknown>>): StoredTool {
  return { _id: new Types.ObjectId(), id: 'vscode', syncMetadata: { overallStatus: 'pending', collections } };
}

const deletion = (overrides: Partial<DeletionState> = {}): DeletionState => ({
  status: 'pending', lastSyncAttemptAt: null, lastError: null, errorCode: null, retryCount: 0, nextRetryAt: null, claimedBy: null, claimedUntil: null, notBefore: null, ...overrides,
});

const WRITER = new Types.ObjectId();
function tombstone(collections: Tombstone['collections']): Tombstone {
  const toolObjectId = new Types.ObjectId();
  return { _id: tombstoneKey('tools', toolObjectId), toolObjectId, toolsCollection: 'tools', id: 'vscode', deletedAt: EARLIER, writtenBy: WRITER, collections };
}

describe('which collections a deleted tool has points in', () => {
  it('embedded once (a vector version or a last sync), written perhaps (an attempt, a claim live or ended), or none: no tombstone', () => {
    const mixed = tool({
      tools: { status: 'synced', vectorVersion: 2, lastSyncedAt: EARLIER },
      functionality: { status: 'stale', vectorVersion: 0, lastSyncedAt: EARLIER },
      usecases: { status: 'pending', vectorVersion: 0, lastSyncedAt: null, claimedBy: 'w', claimedUntil: LATER },
      interface: { status: 'pending', vectorVersion: 0, lastSyncedAt: null, claimedBy: null, claimedUntil: null },
    });
    expect(collectionsWithVectors(mixed, NOW)).toEqual(['tools', 'functionality', 'usecases']);
    const made = tombstoneFor(mixed, 'tools', NOW, WRITER);
    expect(made).toEqual({
      _id: `tools/${mixed._id.toHexString()}`, toolObjectId: mixed._id, toolsCollection: 'tools', id: 'vscode', deletedAt: NOW, writtenBy: WRITER,
      // In flight: removed only once its worker's lease has ended (its upsert may still come).
      collections: { tools: deletion(), functionality: deletion(), usecases: deletion({ notBefore: LATER }) },
    });
    // Never synced, yet perhaps written: a claim whose worker died after its write, a refused or re-opened write (an attempt).
    const perhaps = tool({
      tools: { status: 'pending', vectorVersion: 0, lastSyncedAt: null, claimedBy: 'dead', claimedUntil: EARLIER },
      usecases: { status: 'stale', vectorVersion: 0, lastSyncedAt: null, lastSyncAttemptAt: EARLIER },
    });
    expect(collectionsWithVectors(perhaps, NOW)).toEqual(['tools', 'usecases']);
    expect(tombstoneFor(perhaps, 'tools', NOW, WRITER)?.collections).toEqual({ tools: deletion(), usecases: deletion() });
    expect(tombstoneFor(tool({ tools: { status: 'pending', vectorVersion: 0, lastSyncedAt: null } }), 'tools', NOW, WRITER)).toBeNull();
    expect(tombstoneFor({ _id: new Types.ObjectId() }, 'tools', NOW, WRITER)).toBeNull();
  });

  it('none for a tool whose _id is not an ObjectId (the package never embeds one: it is quarantined)', () => {
    const synced = { status: 'synced', vectorVersion: 2, lastSyncedAt: EARLIER };
    for (const _id of [42, 'legacy-7', { _bsontype: 'Binary' }]) {
      expect(tombstoneFor({ ...tool({ tools: synced }), _id } as unknown as StoredTool, 'tools', NOW, WRITER)).toBeNull();
    }
  });
});

describe('removal plans', () => {
  it('claim pending and due removals not held by another live lease', () => {
    const stone = tombstone({
      tools: deletion(),
      functionality: deletion({ claimedBy: 'other', claimedUntil: LATER }),
      usecases: deletion({ status: 'failed', retryCount: 1, nextRetryAt: EARLIER, errorCode: 'UNKNOWN' }),
      interface: deletion({ status: 'failed', retryCount: 1, nextRetryAt: LATER, errorCode: 'UNKNOWN' }),
    });
    const decision = planClaimDeletion(stone, { workerId: 'w', leaseMs: 60_000, collections: ['tools', 'functionality', 'usecases', 'interface'], maxRetries: 5 }, NOW);
    if (decision.kind !== 'done' || decision.write === null) throw new Error('a claim was expected');
    expect(decision.result).toEqual(['tools', 'usecases']);
    const until = new Date(NOW.getTime() + 60_000);
    expect(decision.write.update.$set).toEqual({
      'collections.tools.claimedBy': 'w', 'collections.tools.claimedUntil': until,
      'collections.usecases.claimedBy': 'w', 'collections.usecases.claimedUntil': until, 'collections.usecases.nextRetryAt': until,
    });
    expect(decision.write.filter).toMatchObject({ _id: stone._id, 'collections.tools.claimedBy': { $eq: null }, 'collections.usecases.nextRetryAt': { $eq: EARLIER } });
  });

  it("never hand out a removal under a live lease, the worker's own included (it is in flight), nor before notBefore", () => {
    const request = { workerId: 'w', leaseMs: 60_000, collections: ['tools', 'functionality', 'usecases', 'interface'] as const, maxRetries: 5 };
    const stone = tombstone({
      tools: deletion({ claimedBy: 'w', claimedUntil: LATER }),
      functionality: deletion({ notBefore: LATER }),
      usecases: deletion({ notBefore: EARLIER }),
      interface: deletion({ claimedBy: 'w', claimedUntil: EARLIER }),
    });
    expect(isDeletionWork(deletionState(stone, 'tools'), 5, NOW)).toBe(false);
    expect(isDeletionWork(deletionState(stone, 'functionality'), 5, NOW)).toBe(false);
    const decision = planClaimDeletion(stone, request, NOW);
    expect(decision.kind === 'done' && decision.result).toEqual(['usecases', 'interface']);
  });

  it('re-open a removal after a late write: pending again whatever it was (done, failed or held), the tombstone written anew if gone', () => {
    const toolObjectId = new Types.ObjectId();
    const write = planReopenRemoval({ toolObjectId, toolsCollection: 'tools' }, 'usecases', NOW, WRITER);
    expect(write).toEqual({
      filter: { _id: `tools/${toolObjectId.toHexString()}` },
      update: {
        $set: { 'collections.usecases': deletion() },
        $setOnInsert: { toolObjectId, toolsCollection: 'tools', id: null, deletedAt: NOW, writtenBy: WRITER },
      },
      upsert: true,
    });
  });

  it('a delete merges its tombstone into one already there: removals owed from before (a restored _id deleted again) are never dropped', () => {
    const stone = tombstone({ tools: deletion() });
    const write = planRecordTombstone(stone);
    expect(write).toEqual({
      filter: { _id: stone._id },
      update: { $set: { toolObjectId: stone.toolObjectId, toolsCollection: 'tools', id: 'vscode', deletedAt: EARLIER, writtenBy: WRITER, 'collections.tools': deletion() } },
      upsert: true,
    });
  });

  it('a removal marked done by a worker that no longer holds it (re-opened meanwhile) stays to be done', () => {
    const reopened = tombstone({ tools: deletion() });
    expect(planMarkVectorDeleted(reopened, 'tools', NOW, 'w')).toEqual({ kind: 'done', write: null, result: { done: false, reason: 'claim-lost', claimedBy: null } });
    const doneByOther = tombstone({ tools: deletion({ status: 'synced' }) });
    expect(planMarkVectorDeleted(doneByOther, 'tools', NOW, 'w')).toEqual({ kind: 'done', write: null, result: { done: false, reason: 'claim-lost', claimedBy: null } });
  });

  it('mark done, refuse a lost claim, record a failure with its backoff, requeue it, and know when the tombstone is finished', () => {
    const stone = tombstone({ tools: deletion({ claimedBy: 'w', claimedUntil: LATER }), usecases: deletion({ status: 'synced' }) });
    expect(planMarkVectorDeleted(stone, 'tools', NOW, 'other')).toEqual({ kind: 'done', write: null, result: { done: false, reason: 'claim-lost', claimedBy: 'w' } });
    const done = planMarkVectorDeleted(stone, 'tools', NOW, 'w');
    expect(done.kind === 'done' && done.write?.update.$set).toMatchObject({ 'collections.tools.status': 'synced', 'collections.tools.claimedBy': null });
    expect(planMarkVectorDeleted(stone, 'usecases', NOW)).toEqual({ kind: 'done', write: null, result: { done: true } });

    const failed = planMarkVectorDeleteFailed(stone, 'tools', { errorCode: 'QDRANT_TIMEOUT', lastError: 'timed out' }, NOW, 'w');
    if (failed.kind !== 'done' || failed.write === null) throw new Error('a failure was expected');
    expect(failed.result).toEqual({ recorded: true, errorCode: 'QDRANT_TIMEOUT', retryCount: 1 });
    const due = failed.write.update.$set as Record<string, unknown>;
    expect((due['collections.tools.nextRetryAt'] as Date).getTime()).toBeGreaterThan(NOW.getTime());

    const failedStone = tombstone({ tools: deletion({ status: 'failed', retryCount: 3, errorCode: 'QDRANT_TIMEOUT', nextRetryAt: LATER }) });
    expect(planRequeueDeletions(failedStone, ['tools'], ['UNKNOWN'])).toEqual({ kind: 'done', write: null, result: 0 });
    const requeued = planRequeueDeletions(failedStone, ['tools'], undefined);
    expect(requeued.kind === 'done' && requeued.write?.update.$set).toEqual({ 'collections.tools.status': 'pending', 'collections.tools.retryCount': 0, 'collections.tools.nextRetryAt': null });

    expect(finishedFilter(stone)).toBeNull();
    const finished = tombstone({ tools: deletion({ status: 'synced' }), usecases: deletion({ status: 'synced' }) });
    expect(finishedFilter(finished)).toEqual({ _id: finished._id, 'collections.tools.status': 'synced', 'collections.usecases.status': 'synced' });
  });
});

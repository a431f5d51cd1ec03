import { describe, expect, it } from 'vitest';
import {
  aggregateSyncStatus,
  LAST_ERROR_MAX_LENGTH,
  SYNC_COLLECTION_NAMES,
  SyncArgumentError,
  ToolModel,
  ToolNotFoundError,
  type ITool,
} from '../../src/index.js';
import mongoose from 'mongoose';
import { useTestDatabase } from '../helpers/database.js';
import { specBackfillShape } from '../helpers/legacy.js';
import { createSyncedTool } from '../helpers/sync.js';
import { insertRaw, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

async function reload(tool: ITool): Promise<ITool> {
  return ToolModel.findById(tool._id).orFail();
}

function expectConsistent(tool: ITool): void {
  const statuses = SYNC_COLLECTION_NAMES.map((name) => tool.syncMetadata.collections[name].status);
  expect(tool.syncMetadata.overallStatus).toBe(aggregateSyncStatus(statuses));
}

describe('markCollectionSynced', () => {
  it('marks the collection synced when the stored hash is the embedded one', async () => {
    const tool = await ToolModel.create(toolInput());
    const before = tool.syncMetadata.updatedAt;
    const toolUpdatedAt = tool.updatedAt;
    const result = await ToolModel.markCollectionSynced(tool._id.toHexString(), 'functionality', {
      contentHash: tool.syncMetadata.collections.functionality.contentHash,
    });
    expect(result).toEqual({ synced: true, vectorVersion: 1 });
    const after = await reload(tool);
    const state = after.syncMetadata.collections.functionality;
    expect(state.status).toBe('synced');
    expect(state.lastSyncedAt).toBeInstanceOf(Date);
    expect(state.lastSyncAttemptAt?.getTime()).toBe(state.lastSyncedAt?.getTime());
    expect(state.lastError).toBeNull();
    expect(state.errorCode).toBeNull();
    expect(state.retryCount).toBe(0);
    expect(state.vectorVersion).toBe(1);
    expect(after.syncMetadata.collections.tools.status).toBe('pending');
    expect(after.syncMetadata.overallStatus).toBe('pending');
    expect(after.syncMetadata.updatedAt.getTime()).toBeGreaterThanOrEqual(before.getTime());
    expect(after.updatedAt).toEqual(toolUpdatedAt);
  });

  it('gives overall synced once all four are synced, and clears a previous failure', async () => {
    const tool = await ToolModel.create(toolInput());
    await ToolModel.markCollectionFailed(tool._id, 'tools', new Error('boom'), 'embedding');
    const synced = await createSyncedTool();
    expect(synced.syncMetadata.overallStatus).toBe('synced');
    await ToolModel.markCollectionSynced(tool._id, 'tools', { contentHash: tool.syncMetadata.collections.tools.contentHash });
    const after = await reload(tool);
    expect(after.syncMetadata.collections.tools).toMatchObject({ status: 'synced', lastError: null, errorCode: null, retryCount: 0 });
  });

  it('does not mark synced when the content changed meanwhile: records the attempt and says so', async () => {
    const tool = await ToolModel.create(toolInput());
    const embeddedHash = tool.syncMetadata.collections.usecases.contentHash;
    tool.useCases = ['something new'];
    await tool.save();
    const current = (await reload(tool)).syncMetadata.collections.usecases.contentHash;
    expect(current).not.toBe(embeddedHash);
    const result = await ToolModel.markCollectionSynced(tool._id, 'usecases', { contentHash: embeddedHash });
    expect(result).toEqual({ synced: false, reason: 'content-changed', currentContentHash: current });
    const after = await reload(tool);
    expect(after.syncMetadata.collections.usecases.status).toBe('pending');
    expect(after.syncMetadata.collections.usecases.lastSyncAttemptAt).toBeInstanceOf(Date);
    expect(after.syncMetadata.collections.usecases.vectorVersion).toBe(0);
  });
});

describe('markCollectionFailed', () => {
  it('records the failure: failed, classified, truncated, one more retry', async () => {
    const tool = await ToolModel.create(toolInput());
    const error = Object.assign(new Error('Too Many Requests ' + 'x'.repeat(50_000)), { status: 429 });
    const first = await ToolModel.markCollectionFailed(tool._id, 'tools', error, 'embedding');
    expect(first).toEqual({ recorded: true, errorCode: 'EMBEDDING_RATE_LIMIT', retryCount: 1 });
    const second = await ToolModel.markCollectionFailed(tool._id, 'tools', new DOMException('t', 'TimeoutError'), 'qdrant');
    expect(second).toEqual({ recorded: true, errorCode: 'QDRANT_TIMEOUT', retryCount: 2 });
    const after = await reload(tool);
    const state = after.syncMetadata.collections.tools;
    expect(state.status).toBe('failed');
    expect(state.lastSyncAttemptAt).toBeInstanceOf(Date);
    expect(state.errorCode).toBe('QDRANT_TIMEOUT');
    expect(state.retryCount).toBe(2);
    expect(after.syncMetadata.overallStatus).toBe('failed');
    await ToolModel.markCollectionFailed(tool._id, 'interface', error, 'embedding');
    expect((await reload(tool)).syncMetadata.collections.interface.lastError).toHaveLength(LAST_ERROR_MAX_LENGTH);
  });
});

describe('requeueFailed', () => {
  it('puts failed collections back in line, stale if ever synced, else pending, and counts them', async () => {
    const everSynced = await createSyncedTool();
    const neverSynced = await ToolModel.create(toolInput());
    await ToolModel.markCollectionFailed(everSynced._id, 'tools', Object.assign(new Error('x'), { status: 503 }), 'qdrant');
    await ToolModel.markCollectionFailed(neverSynced._id, 'tools', new Error('y'), 'embedding');
    await ToolModel.markCollectionFailed(neverSynced._id, 'usecases', new Error('z'), 'validation');
    const count = await ToolModel.requeueFailed({ toolIds: [everSynced._id, neverSynced._id.toHexString()], collections: ['tools'] });
    expect(count).toBe(2);
    const a = await reload(everSynced);
    const b = await reload(neverSynced);
    expect(a.syncMetadata.collections.tools).toMatchObject({ status: 'stale', retryCount: 0 });
    expect(b.syncMetadata.collections.tools).toMatchObject({ status: 'pending', retryCount: 0 });
    expect(b.syncMetadata.collections.usecases.status).toBe('failed');
    expectConsistent(a);
    expectConsistent(b);
    expect(await ToolModel.requeueFailed({ toolIds: [neverSynced._id], errorCodes: ['QDRANT_UNAVAILABLE'] })).toBe(0);
    expect(await ToolModel.requeueFailed({ toolIds: [neverSynced._id], errorCodes: ['VALIDATION_ERROR'] })).toBe(1);
    expect((await reload(neverSynced)).syncMetadata.overallStatus).toBe('pending');
  });

  it("requeues a tool with the spec's partial metadata (settled first), never a SyncConflictError", async () => {
    const id = new mongoose.Types.ObjectId();
    await insertRaw({ _id: id, ...toolInput(), syncMetadata: specBackfillShape() });
    expect(await ToolModel.requeueFailed({ toolIds: [id] })).toBe(1);
    const after = await ToolModel.findById(id).orFail();
    expect(after.syncMetadata.collections.usecases).toMatchObject({ status: 'pending', retryCount: 0 });
    expect(after.syncMetadata.collections.functionality.status).toBe('synced');
    expectConsistent(after);
  });
});

describe('bad arguments and unknown tools', () => {
  it('a mark for a tool that is gone says so and never upserts a ghost; a store write for it is owed a removal', async () => {
    const count = await ToolModel.countDocuments();
    const ghost = new mongoose.Types.ObjectId();
    expect(await ToolModel.markCollectionSynced(ghost, 'tools', { contentHash: '0123456789abcdef' })).toEqual({ synced: false, reason: 'deleted' });
    expect(await ToolModel.markCollectionFailed(ghost, 'usecases', new Error('x'), 'qdrant')).toMatchObject({ recorded: false, reason: 'deleted' });
    expect(await ToolModel.markCollectionFailed(ghost, 'interface', new Error('x'), 'embedding')).toMatchObject({ recorded: false, reason: 'deleted' });
    expect(await ToolModel.countDocuments()).toBe(count);
    // The write (or the failed write that may have landed) is owed a removal; the embedding failure wrote nothing.
    const [removal] = await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 });
    expect(removal).toMatchObject({ toolObjectId: ghost, collections: ['tools', 'usecases'] });
    await expect(ToolModel.settleSyncState(ghost)).rejects.toThrow(ToolNotFoundError);
  });

  it('rejects unknown collections, stages and ids that are not ids, naming them', async () => {
    const tool = await ToolModel.create(toolInput());
    await expect(ToolModel.markCollectionSynced(tool._id, 'vectors' as 'tools', { contentHash: '0123456789abcdef' })).rejects.toThrow(/collection: expected one of tools, functionality, usecases, interface, got "vectors"/);
    await expect(ToolModel.markCollectionFailed(tool._id, 'tools', new Error('x'), 'network' as 'qdrant')).rejects.toThrow(SyncArgumentError);
    await expect(ToolModel.markCollectionSynced({ $ne: null } as unknown as string, 'tools', { contentHash: '0123456789abcdef' })).rejects.toThrow(/toolId: .*got \{"\$ne":null\}/);
    await expect(ToolModel.markCollectionSynced(tool._id, 'tools', { contentHash: { $ne: '' } as unknown as string })).rejects.toThrow(/contentHash/);
    await expect(ToolModel.requeueFailed({ collections: ['tools', 'nope' as 'tools'] })).rejects.toThrow(/collections\[1\]/);
  });

  it('completes a legacy document before transitioning it', async () => {
    await insertRaw({ id: 'legacy-transition', name: 'Legacy', description: 'd', category: 'c' });
    const legacy = await ToolModel.findOne({ id: 'legacy-transition' }).orFail();
    await ToolModel.markCollectionFailed(legacy._id, 'interface', new Error('x'), 'embedding');
    const after = await reload(legacy);
    expect(after.syncMetadata.collections.interface.status).toBe('failed');
    expect(after.syncMetadata.collections.tools.contentHash).toMatch(/^[0-9a-f]{16}$/);
    expectConsistent(after);
  });
});

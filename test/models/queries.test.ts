import type mongoose from 'mongoose';
import { beforeEach, describe, expect, it } from 'vitest';
import { retryDelayMs, SyncArgumentError, ToolModel } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';
import { insertRaw, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

beforeEach(async () => {
  await ToolModel.deleteMany({});
});

async function setAttempt(id: mongoose.Types.ObjectId, collection: string, at: Date): Promise<void> {
  await ToolModel.collection.updateOne({ _id: id }, { $set: { [`syncMetadata.collections.${collection}.lastSyncAttemptAt`]: at } });
}

describe('findNeedingSync', () => {
  it('returns tools with a pending or stale collection, oldest metadata change first', async () => {
    const synced = await createSyncedTool();
    const first = await ToolModel.create(toolInput({ name: 'First' }));
    const second = await createSyncedTool({ name: 'Second' });
    second.useCases = ['changed'];
    await second.save();
    const found = await ToolModel.findNeedingSync({ limit: 10 });
    expect(found.map((tool) => tool.name)).toEqual(['First', 'Second']);
    expect(found.map((tool) => String(tool._id))).not.toContain(String(synced._id));
    expect(await ToolModel.findNeedingSync({ limit: 1 })).toHaveLength(1);
    expect((await ToolModel.findNeedingSync({ limit: 10, collections: ['usecases'] })).map((t) => t.name)).toEqual(['First', 'Second']);
    expect((await ToolModel.findNeedingSync({ limit: 10, collections: ['tools'] })).map((t) => t.name)).toEqual(['First']);
    expect(first.syncMetadata.overallStatus).toBe('pending');
  });

  it('finds a waiting collection of a tool whose overall status is failed, and legacy tools', async () => {
    const tool = await ToolModel.create(toolInput({ name: 'Mixed' }));
    await ToolModel.markCollectionSynced(tool._id, 'functionality', { contentHash: tool.syncMetadata.collections.functionality.contentHash });
    await ToolModel.markCollectionFailed(tool._id, 'tools', new Error('bad'), 'validation');
    await insertRaw({ id: 'legacy-needing-sync', name: 'Legacy', description: 'd', category: 'c' });
    const found = await ToolModel.findNeedingSync({ limit: 10 });
    expect(found.map((t) => t.name).sort()).toEqual(['Legacy', 'Mixed']);
    const legacy = found.find((t) => t.name === 'Legacy');
    expect(legacy?.syncMetadata.collections.tools.contentHash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('validates its arguments', async () => {
    for (const limit of [0, 10_001, 1.5, '10', { $gt: 0 }]) {
      await expect(ToolModel.findNeedingSync({ limit: limit as number })).rejects.toThrow(SyncArgumentError);
    }
    await expect(ToolModel.findNeedingSync({ limit: 5, collections: ['tools', 'vectors' as 'tools'] })).rejects.toThrow(/collections\[1\]: .*"vectors"/);
    await expect(ToolModel.findNeedingSync({ collections: { $ne: null } as unknown as ['tools'] })).rejects.toThrow(SyncArgumentError);
  });
});

describe('findRetryable', () => {
  it('returns failed collections under the retry limit whose backoff has elapsed', async () => {
    const now = new Date('2026-06-01T12:00:00Z');
    const tool = await ToolModel.create(toolInput({ name: 'Retry me' }));
    await ToolModel.markCollectionFailed(tool._id, 'tools', Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'qdrant');
    await ToolModel.markCollectionFailed(tool._id, 'interface', Object.assign(new Error('x'), { status: 429 }), 'embedding');
    const toolsDelay = retryDelayMs(1, 'QDRANT_UNAVAILABLE', `${String(tool._id)}:tools`);
    const interfaceDelay = retryDelayMs(1, 'EMBEDDING_RATE_LIMIT', `${String(tool._id)}:interface`);
    expect(interfaceDelay).toBeGreaterThan(toolsDelay);
    await setAttempt(tool._id, 'tools', new Date(now.getTime() - toolsDelay - 1));
    await setAttempt(tool._id, 'interface', new Date(now.getTime() - toolsDelay - 1));

    const due = await ToolModel.findRetryable({ now });
    expect(due.map((entry) => [entry.tool.name, entry.collections])).toEqual([['Retry me', ['tools']]]);
    await setAttempt(tool._id, 'interface', new Date(now.getTime() - interfaceDelay));
    expect((await ToolModel.findRetryable({ now }))[0]?.collections).toEqual(['tools', 'interface']);
    expect(await ToolModel.findRetryable({ now: new Date(now.getTime() - 60 * 60 * 1000) })).toEqual([]);
  });

  it('stops at the retry limit and never retries a validation error', async () => {
    const now = new Date(Date.now() + 24 * 60 * 60 * 1000);
    const tool = await ToolModel.create(toolInput());
    for (let i = 0; i < 3; i += 1) await ToolModel.markCollectionFailed(tool._id, 'tools', new Error('x'), 'qdrant');
    await ToolModel.markCollectionFailed(tool._id, 'usecases', new Error('x'), 'validation');
    expect((await ToolModel.findRetryable({ now, maxRetries: 3 }))).toEqual([]);
    expect((await ToolModel.findRetryable({ now, maxRetries: 4 }))[0]?.collections).toEqual(['tools']);
    await expect(ToolModel.findRetryable({ maxRetries: -1 })).rejects.toThrow(/maxRetries/);
    await expect(ToolModel.findRetryable({ now: 'yesterday' as unknown as Date })).rejects.toThrow(/now: expected a valid Date/);
  });
});

describe('getSyncStats', () => {
  it('counts by overall status, by collection and status, failures by code, legacy as pending', async () => {
    const now = new Date(Date.now() + 60_000);
    await createSyncedTool();
    const failing = await ToolModel.create(toolInput());
    await ToolModel.markCollectionFailed(failing._id, 'tools', Object.assign(new Error('x'), { status: 429 }), 'embedding');
    await ToolModel.markCollectionFailed(failing._id, 'usecases', new Error('x'), 'validation');
    await insertRaw({ id: 'legacy-stats', name: 'Legacy', description: 'd', category: 'c' });

    const stats = await ToolModel.getSyncStats({ now });
    expect(stats.total).toBe(3);
    expect(stats.legacyWithoutMetadata).toBe(1);
    expect(stats.byOverallStatus).toEqual({ synced: 1, pending: 1, failed: 1, stale: 0 });
    expect(stats.byCollection.tools).toEqual({ synced: 1, pending: 1, failed: 1, stale: 0 });
    expect(stats.byCollection.functionality).toEqual({ synced: 1, pending: 2, failed: 0, stale: 0 });
    expect(stats.failuresByErrorCode).toMatchObject({ EMBEDDING_RATE_LIMIT: 1, VALIDATION_ERROR: 1, UNKNOWN: 0 });
    expect(stats.oldestPendingAgeMs).toBeGreaterThan(0);
    expect(stats.oldestPendingAgeMs).toBeLessThan(10 * 60_000);
  });
});

import { beforeEach, describe, expect, it } from 'vitest';
import { retryDelayMs, SyncArgumentError, ToolModel } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';
import { insertRaw, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

beforeEach(async () => {
  await ToolModel.deleteMany({});
});


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
  it('returns failed collections under the retry limit whose stored retry time has come, earliest first', async () => {
    const tool = await ToolModel.create(toolInput({ name: 'Retry me' }));
    const before = Date.now();
    await ToolModel.markCollectionFailed(tool._id, 'tools', Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'qdrant');
    await ToolModel.markCollectionFailed(tool._id, 'interface', Object.assign(new Error('x'), { status: 429 }), 'embedding');
    const stored = await ToolModel.findById(tool._id).orFail();
    const toolsDue = stored.syncMetadata.collections.tools.nextRetryAt;
    const interfaceDue = stored.syncMetadata.collections.interface.nextRetryAt;
    if (toolsDue === null || interfaceDue === null) throw new Error('no retry time stored');
    // The backoff of a first failure, with its jitter; four times longer after a rate limit.
    const toolsDelay = retryDelayMs(1, 'QDRANT_UNAVAILABLE', `${String(tool._id)}:tools`);
    expect(toolsDue.getTime() - before).toBeGreaterThanOrEqual(toolsDelay - 1000);
    expect(toolsDue.getTime() - before).toBeLessThanOrEqual(toolsDelay + 5000);
    expect(interfaceDue.getTime()).toBeGreaterThan(toolsDue.getTime());

    expect(await ToolModel.findRetryable({ now: new Date(toolsDue.getTime() - 1) })).toEqual([]);
    const due = await ToolModel.findRetryable({ now: toolsDue });
    expect(due.map((entry) => [entry.tool.name, entry.collections])).toEqual([['Retry me', ['tools']]]);
    expect((await ToolModel.findRetryable({ now: interfaceDue }))[0]?.collections).toEqual(['tools', 'interface']);
  });

  it('finds a failed collection stored before retry times were, when the backoff after its last attempt has ended', async () => {
    const tool = await ToolModel.create(toolInput());
    await ToolModel.markCollectionFailed(tool._id, 'tools', new Error('x'), 'qdrant');
    const attempt = new Date('2026-06-01T12:00:00Z');
    await ToolModel.collection.updateOne({ _id: tool._id }, {
      $set: { 'syncMetadata.collections.tools.lastSyncAttemptAt': attempt },
      $unset: { 'syncMetadata.collections.tools.nextRetryAt': '' },
    });
    const delay = retryDelayMs(1, 'UNKNOWN', `${String(tool._id)}:tools`);
    expect(await ToolModel.findRetryable({ now: new Date(attempt.getTime() + delay - 1) })).toEqual([]);
    expect((await ToolModel.findRetryable({ now: new Date(attempt.getTime() + delay) }))[0]?.collections).toEqual(['tools']);
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

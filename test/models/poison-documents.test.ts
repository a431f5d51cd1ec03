import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { computeContentHashes, SYNC_COLLECTION_NAMES, ToolModel } from '../../src/index.js';
import { QUARANTINE_MESSAGE_PREFIX } from '../../src/sync/plans/quarantine.js';
import { useTestDatabase } from '../helpers/database.js';
import { specBackfillShape } from '../helpers/legacy.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

interface StoredState { status: string; errorCode: string | null; lastError: string | null; contentHash: string; retryCount: number }
interface Stored { syncMetadata: { overallStatus: string; collections: Record<string, StoredState | undefined> } }

/** The README's partial metadata with one value the package never writes. */
function poisonedShape(collection: string, key: string, value: unknown): Record<string, unknown> {
  const shape = specBackfillShape(new Date('2000-01-01T00:00:00Z'));
  (shape.collections as Record<string, Record<string, unknown>>)[collection] = { status: 'pending', retryCount: 0, vectorVersion: 0, [key]: value };
  return shape;
}

async function insertPoisoned(metadata: unknown, overrides: Record<string, unknown> = {}): Promise<mongoose.Types.ObjectId> {
  const _id = new mongoose.Types.ObjectId();
  await insertRaw({ _id, ...toolInput(overrides), syncMetadata: metadata });
  return _id;
}

async function stored(id: mongoose.Types.ObjectId): Promise<Stored> {
  return (await rawTool({ _id: id })) as unknown as Stored;
}

describe('a tool whose stored sync metadata cannot be used never stops the queue', () => {
  it('findNeedingSync skips it for this call and quarantines it: the next call reaches the tools behind it', async () => {
    // Oldest first: the poisoned tools are at the front of the queue, as many as the limit.
    const poisoned = [
      await insertPoisoned(poisonedShape('tools', 'retryCount', -2), { description: 'x'.repeat(2500) }),
      await insertPoisoned(poisonedShape('usecases', 'status', 'done')),
      await insertPoisoned('synced'),
    ];
    const good = await ToolModel.create(toolInput());
    const first = await ToolModel.findNeedingSync({ limit: 3 });
    expect(first.map((tool) => String(tool._id))).not.toContain(String(poisoned[0]));
    const second = await ToolModel.findNeedingSync({ limit: 3 });
    expect(second.map((tool) => String(tool._id))).toContain(String(good._id));
    for (const id of poisoned) expect(second.map((tool) => String(tool._id))).not.toContain(String(id));

    const [negative, notAStatus, notAnObject] = await Promise.all(poisoned.map(stored));
    for (const tool of [negative, notAStatus, notAnObject]) {
      expect(tool?.syncMetadata.overallStatus).toBe('failed');
      for (const name of SYNC_COLLECTION_NAMES) {
        expect(tool?.syncMetadata.collections[name]?.status).toBe('failed');
        expect(tool?.syncMetadata.collections[name]?.errorCode).toBe('VALIDATION_ERROR');
      }
    }
    // The message names the path and the value.
    expect(negative?.syncMetadata.collections.tools?.lastError).toBe(`${QUARANTINE_MESSAGE_PREFIX}syncMetadata.collections.tools.retryCount is -2`);
    expect(notAStatus?.syncMetadata.collections.interface?.lastError).toBe(`${QUARANTINE_MESSAGE_PREFIX}syncMetadata.collections.usecases.status is "done"`);
    expect(notAnObject?.syncMetadata.collections.tools?.lastError).toBe(`${QUARANTINE_MESSAGE_PREFIX}syncMetadata is "synced", not an object`);
    // Counted by the stats, as failures of validation.
    const stats = await ToolModel.getSyncStats();
    expect(stats.failuresByErrorCode.VALIDATION_ERROR).toBe(3 * SYNC_COLLECTION_NAMES.length);
  });

  it('markCollectionFailed records the problem instead of throwing', async () => {
    const id = await insertPoisoned(poisonedShape('tools', 'retryCount', -2));
    await expect(ToolModel.markCollectionFailed(id, 'tools', new Error('Embedding API said no'), 'embedding')).resolves.toEqual({ recorded: true, errorCode: 'VALIDATION_ERROR', retryCount: 0 });
    const tool = await stored(id);
    expect(tool.syncMetadata.collections.tools?.status).toBe('failed');
    expect(tool.syncMetadata.collections.tools?.lastError).toContain('syncMetadata.collections.tools.retryCount is -2');
  });

  it('a quarantined tool is settled metadata with real hashes, and a content edit puts it back in line', async () => {
    const id = await insertPoisoned(poisonedShape('tools', 'retryCount', -2));
    await ToolModel.findNeedingSync();
    const hashes = computeContentHashes((await rawTool({ _id: id })) ?? {});
    for (const name of SYNC_COLLECTION_NAMES) expect((await stored(id)).syncMetadata.collections[name]?.contentHash).toBe(hashes[name]);
    expect(await ToolModel.settleSyncState(id)).toBe(false);

    await ToolModel.updateOne({ _id: id }, { $set: { name: 'Renamed, now valid' } });
    const after = await stored(id);
    for (const name of SYNC_COLLECTION_NAMES) {
      expect(after.syncMetadata.collections[name]?.status).toBe('pending');
      expect(after.syncMetadata.collections[name]?.retryCount).toBe(0);
    }
    expect((await ToolModel.findNeedingSync()).map((tool) => String(tool._id))).toContain(String(id));
  });
});

describe('requeueFailed over a poisoned tool', () => {
  it('quarantines it, requeues it, and goes on with the other tools', async () => {
    const poisoned = await insertPoisoned({ ...poisonedShape('tools', 'retryCount', -2), overallStatus: 'failed', collections: { tools: { status: 'failed', retryCount: -2, vectorVersion: 0 } } });
    const other = await ToolModel.create(toolInput());
    await ToolModel.markCollectionFailed(other._id, 'usecases', new Error('timed out'), 'embedding');
    await expect(ToolModel.requeueFailed({ toolIds: [poisoned, other._id] })).resolves.toBe(SYNC_COLLECTION_NAMES.length + 1);
    expect((await stored(poisoned)).syncMetadata.collections.tools?.status).toBe('pending');
    expect((await stored(other._id)).syncMetadata.collections.usecases?.status).toBe('pending');
  });
});

describe('findRetryable', () => {
  it('finds failed collections recorded without an attempt time (the spec\'s partial shape): due now', async () => {
    const id = await insertPoisoned({ ...specBackfillShape(), overallStatus: 'failed' });
    await ToolModel.settleSyncState(id);
    const found = await ToolModel.findRetryable({ limit: 1000 });
    const mine = found.find(({ tool }) => String(tool._id) === String(id));
    expect(mine?.collections).toEqual(['usecases']);
  });
});

describe('findRetryable over poisoned tools', () => {
  it('skips them for this call and quarantines them: they leave the retry queue, the tools behind them are reached', async () => {
    const due = new Date(Date.now() - 60_000);
    const poisoned = [];
    for (let i = 0; i < 3; i += 1) {
      // Due for a retry, with a retry count the package never writes.
      const shape = { ...specBackfillShape(), overallStatus: 'failed', collections: { tools: { status: 'failed', retryCount: -1, errorCode: 'UNKNOWN', nextRetryAt: new Date(due.getTime() - 1000 * (i + 1)), vectorVersion: 0 } } };
      poisoned.push(await insertPoisoned(shape));
    }
    const good = await ToolModel.create(toolInput());
    await ToolModel.markCollectionFailed(good._id, 'tools', new Error('timed out'), 'embedding');
    const later = new Date(Date.now() + 24 * 60 * 60 * 1000);
    const first = await ToolModel.findRetryable({ now: later, limit: 3 });
    for (const id of poisoned) expect(first.map(({ tool }) => String(tool._id))).not.toContain(String(id));
    const second = await ToolModel.findRetryable({ now: later, limit: 3 });
    expect(second.map(({ tool }) => String(tool._id))).toContain(String(good._id));
    for (const id of poisoned) {
      const tool = await stored(id);
      expect(tool.syncMetadata.collections.tools?.errorCode).toBe('VALIDATION_ERROR');
      expect(tool.syncMetadata.collections.tools?.lastError).toContain('retryCount is -1');
    }
  });
});

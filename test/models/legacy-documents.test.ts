import { describe, expect, it } from 'vitest';
import { computeContentHashes, SYNC_COLLECTION_NAMES, ToolModel } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { specBackfillShape as specShapeAt } from '../helpers/legacy.js';
import { insertRaw, rawTool } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

const legacy = {
  id: 'legacy-tool',
  name: 'Legacy Tool',
  description: 'Written before sync metadata existed.',
  category: 'npm-package',
  tags: ['old'],
  functionality: ['does old things'],
  useCases: ['keep things running'],
  interface: ['cli'],
};

const specBackfillShape = specShapeAt();

interface StoredMeta { syncMetadata: { overallStatus: string; createdAt: unknown; updatedAt: unknown; collections: Record<string, Record<string, unknown>> } }

function expectCompleteStoredMetadata(stored: unknown, statuses: Record<string, [string, number, number]>): void {
  const meta = (stored as StoredMeta).syncMetadata;
  const hashes = computeContentHashes(legacy);
  expect(meta.createdAt).toBeInstanceOf(Date);
  expect(meta.updatedAt).toBeInstanceOf(Date);
  for (const name of SYNC_COLLECTION_NAMES) {
    const [status, retryCount, vectorVersion] = statuses[name] ?? ['pending', 0, 0];
    const state = meta.collections[name];
    // No retry time is stored where nothing failed, and no claim where none was made: their absence is null.
    const absentIsNull = { nextRetryAt: state?.nextRetryAt ?? null, claimedBy: state?.claimedBy ?? null, claimedUntil: state?.claimedUntil ?? null, embeddingModel: state?.embeddingModel ?? null };
    expect({ ...state, ...absentIsNull }).toEqual({
      status,
      lastSyncedAt: null,
      lastSyncAttemptAt: null,
      lastError: null,
      errorCode: null,
      retryCount,
      // A failure recorded without an attempt time is due for its retry now.
      nextRetryAt: status === 'failed' ? (expect.any(Date) as unknown) : null,
      contentHash: hashes[name],
      vectorVersion,
      claimedBy: null,
      claimedUntil: null,
      embeddingModel: null,
    });
  }
}

describe('documents written before this package', () => {
  it('load without syncMetadata, with defaults filled in on read, and save complete metadata', async () => {
    await insertRaw({ ...legacy });
    const doc = await ToolModel.findOne({ id: legacy.id }).orFail();
    expect(doc.syncMetadata.overallStatus).toBe('pending');
    for (const name of SYNC_COLLECTION_NAMES) {
      expect(doc.syncMetadata.collections[name].status).toBe('pending');
      expect(doc.syncMetadata.collections[name].retryCount).toBe(0);
    }
    expect((await rawTool({ id: legacy.id }))?.syncMetadata).toBeUndefined();

    await doc.save();
    expectCompleteStoredMetadata(await rawTool({ id: legacy.id }), {});
  });

  it('load with the spec backfill snippet\'s partial shape, keep its statuses and counters, and save complete metadata', async () => {
    await insertRaw({ ...legacy, id: 'partial-tool', syncMetadata: specBackfillShape });
    const doc = await ToolModel.findOne({ id: 'partial-tool' }).orFail();
    expect(doc.syncMetadata.collections.usecases.status).toBe('failed');
    expect(doc.syncMetadata.collections.usecases.lastError).toBeNull();
    expect(doc.syncMetadata.collections.functionality.lastSyncedAt).toBeNull();
    expect(doc.syncMetadata.collections.functionality.vectorVersion).toBe(3);

    await doc.save();
    const stored = await rawTool({ id: 'partial-tool' });
    expectCompleteStoredMetadata(stored, { functionality: ['synced', 0, 3], usecases: ['failed', 2, 1] });
    expect((stored as unknown as StoredMeta).syncMetadata.createdAt).toEqual(specBackfillShape.createdAt);
  });

  it('are found by queries on business fields alongside new documents', async () => {
    await insertRaw({ ...legacy, id: 'legacy-query', category: 'query-test' });
    await ToolModel.create({ ...legacy, id: 'new-query', category: 'query-test' });
    const found = await ToolModel.find({ category: 'query-test' }).sort({ id: 1 });
    expect(found.map((doc) => doc.id)).toEqual(['legacy-query', 'new-query']);
    expect(found.every((doc) => doc.syncMetadata.collections.tools.status === 'pending')).toBe(true);
  });
});

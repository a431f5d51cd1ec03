import mongoose from 'mongoose';
import { beforeEach, describe, expect, it } from 'vitest';
import { computeContentHashes, SYNC_COLLECTION_NAMES, ToolModel } from '../../src/index.js';
import * as pkg from '../../src/index.js';
import { backfill } from '../../src/migrations/backfill.js';
import { CHECKPOINT_COLLECTION } from '../../src/migrations/batch-migration.js';
import { rehash } from '../../src/migrations/rehash.js';
import { settle } from '../../src/migrations/settle.js';
import { useTestDatabase } from '../helpers/database.js';
import { specBackfillShape } from '../helpers/legacy.js';
import { createSyncedTool } from '../helpers/sync.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

const options = { batchSize: 2, dryRun: false };
interface StoredMeta { syncMetadata: { pendingHashCheck?: unknown; collections: Record<string, { status: string; contentHash: string }> } }
const meta = async (id: unknown): Promise<StoredMeta['syncMetadata']> => ((await rawTool({ _id: id })) as unknown as StoredMeta).syncMetadata;

/** What a writer that stopped between its write and its settle leaves behind. */
async function interruptedEdit(id: mongoose.Types.ObjectId, name: string): Promise<void> {
  await ToolModel.collection.updateOne({ _id: id }, { $set: { name, 'syncMetadata.pendingHashCheck': new mongoose.Types.ObjectId() } });
}

beforeEach(async () => {
  await ToolModel.collection.deleteMany({});
  await mongoose.connection.db?.collection(CHECKPOINT_COLLECTION).deleteMany({});
});

describe('backfill(model, options)', () => {
  it('completes legacy and partial metadata, settles interrupted writes, reports invalid metadata, and a second run changes nothing', async () => {
    const legacyId = new mongoose.Types.ObjectId();
    const partialId = new mongoose.Types.ObjectId();
    const invalidId = new mongoose.Types.ObjectId();
    await insertRaw({ _id: legacyId, ...toolInput() });
    await insertRaw({ _id: partialId, ...toolInput(), syncMetadata: specBackfillShape() });
    const invalid = toolInput();
    await insertRaw({ _id: invalidId, ...invalid, syncMetadata: { overallStatus: 'done' } });
    const synced = await createSyncedTool();
    await interruptedEdit(synced._id, 'Renamed while nobody settled it');

    const summary = await backfill(ToolModel, options);
    expect(summary.outcomes).toEqual({ updated: 1, repaired: 2 });
    expect(summary.failed).toEqual([{ _id: invalidId.toHexString(), id: invalid.id, reason: 'syncMetadata.overallStatus is "done"' }]);
    const settled = await ToolModel.findById(synced._id).orFail();
    expect(settled.syncMetadata.pendingHashCheck).toBeNull();
    expect(SYNC_COLLECTION_NAMES.map((name) => settled.syncMetadata.collections[name].status)).toEqual(['stale', 'stale', 'stale', 'stale']);
    expect((await meta(partialId)).collections.functionality?.status).toBe('synced');
    expect((await meta(legacyId)).collections.tools?.contentHash).toBe(computeContentHashes((await rawTool({ _id: legacyId })) ?? {}).tools);

    const again = await backfill(ToolModel, options);
    expect(again.outcomes).toEqual({ 'already complete': 3 });
    expect(again.failed).toHaveLength(1);
  });

  it('with dryRun counts what it would write and writes nothing', async () => {
    await insertRaw({ ...toolInput() });
    const summary = await backfill(ToolModel, { ...options, dryRun: true });
    expect(summary.outcomes).toEqual({ updated: 1 });
    expect((await ToolModel.collection.findOne({}))?.syncMetadata).toBeUndefined();
  });
});

describe('settle(model, options)', () => {
  it('reads only the tools with a pending hash check and settles them', async () => {
    const tools = [await createSyncedTool(), await createSyncedTool(), await createSyncedTool()];
    const [first] = tools;
    if (first === undefined) throw new Error('no tool');
    await interruptedEdit(first._id, 'Interrupted');
    const summary = await settle(ToolModel, options);
    expect(summary.scanned).toBe(1);
    expect(summary.outcomes).toEqual({ settled: 1 });
    const after = await meta(first._id);
    expect(after.pendingHashCheck).toBeNull();
    expect(after.collections.usecases?.status).toBe('stale');
    expect((await settle(ToolModel, options)).scanned).toBe(0);
  });
});

describe('rehash(model, options)', () => {
  it('flags collections whose hash no longer describes the content, and leaves unsettled tools to settle', async () => {
    const edited = await createSyncedTool();
    const interrupted = await createSyncedTool();
    await ToolModel.collection.updateOne({ _id: edited._id }, { $set: { useCases: ['edited around the model'] } });
    await interruptedEdit(interrupted._id, 'Interrupted');
    const summary = await rehash(ToolModel, options);
    expect(summary.outcomes).toEqual({ flagged: 1, 'needs backfill first': 1 });
    const after = await meta(edited._id);
    expect(after.collections.usecases?.status).toBe('stale');
    expect(after.collections.tools?.status).toBe('synced');
    expect((await meta(interrupted._id)).pendingHashCheck).not.toBeNull();
  });
});

describe('migrations from code', () => {
  it('are exported, report progress after every batch, and stop on an AbortSignal; the next run resumes', async () => {
    for (let i = 0; i < 5; i += 1) await insertRaw({ ...toolInput() });
    const controller = new AbortController();
    const seen: number[] = [];
    const stopped = await pkg.backfill(ToolModel, {
      batchSize: 2,
      signal: controller.signal,
      onProgress: (summary) => {
        seen.push(summary.scanned);
        controller.abort();
      },
    });
    expect(stopped).toMatchObject({ aborted: true, scanned: 2, outcomes: { updated: 2 } });
    expect(seen).toEqual([2]);
    const resumed = await pkg.backfill(ToolModel, { batchSize: 2 });
    expect(resumed.resumedAfter).not.toBeNull();
    expect(resumed).toMatchObject({ aborted: false, scanned: 3, outcomes: { updated: 3 } });
    expect(await ToolModel.countDocuments({ 'syncMetadata.overallStatus': 'pending' })).toBe(5);
  });

  it('checkIndexes compares, and with apply creates what is missing (never drops)', async () => {
    await ToolModel.createIndexes();
    await ToolModel.collection.dropIndex('sync_pending_hash_check_idx');
    const found = await pkg.checkIndexes(ToolModel);
    expect(found.missing.map((index) => index.name)).toEqual(['sync_pending_hash_check_idx']);
    expect(found.created).toEqual([]);
    const applied = await pkg.checkIndexes(ToolModel, { apply: true });
    expect(applied.created).toEqual(['sync_pending_hash_check_idx']);
    expect((await pkg.checkIndexes(ToolModel)).missing).toEqual([]);
  });
});

import mongoose from 'mongoose';
import { beforeEach, describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/cli/status-report.js';
import { runSyncWorker, ToolModel } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';
import { clearTombstones, recordingStore, storeWorker } from '../helpers/worker.js';

/*
 * Hostile review of issue 17's "any `_id` type" and "a failed collection with no retry time is due
 * now": `_id`s of every type a legacy collection may hold, next to ordinary tools, through every
 * reader a worker and an operator use; failures stored by another writer in every shape.
 */

useTestDatabase(import.meta.url);

beforeEach(async () => {
  await ToolModel.collection.deleteMany({});
  await clearTombstones();
});

const UUID = new mongoose.mongo.UUID('0b6b1a3e-7c1d-4c1e-9f3a-3b0b0f7a9c11');
/** `_id`s of types the keyset paging and the quarantine name, and some they do not. */
const oddIds = (): unknown[] => [
  'legacy-a', 42, 4.5, UUID, { legacy: 1 }, true, new Date(0), new mongoose.mongo.Long(7), new mongoose.mongo.Binary(Buffer.from('ab')),
];

/** A tool stored with full, valid metadata (as the package would write it), under `_id`. */
async function withMetadata(_id: unknown): Promise<void> {
  const donor = await ToolModel.create(toolInput());
  const stored = await rawTool({ _id: donor._id });
  await ToolModel.collection.deleteOne({ _id: donor._id });
  await insertRaw({ ...stored, _id });
}

describe('attack: tools with non-ObjectId _ids next to ordinary ones', () => {
  it('claims, the worker, stats, status and deleteMany go on; the odd ones are quarantined by _id', { timeout: 60_000 }, async () => {
    const ids = oddIds();
    for (const [index, _id] of ids.entries()) {
      if (index % 2 === 0) await withMetadata(_id);
      else await insertRaw({ _id, ...toolInput() });
    }
    const ordinary = await ToolModel.create(toolInput());
    const store = recordingStore();
    const summary = await runSyncWorker(storeWorker(store, { model: ToolModel, workerId: 'W' }));
    expect(summary).toMatchObject({ synced: 4, errors: 0 });
    // (storeDisagreements reads tools through Mongoose, which cannot cast these _ids: checked for the ObjectId tool only.)
    const synced = (await ToolModel.findById(ordinary._id).orFail()).syncMetadata.collections;
    for (const name of ['tools', 'functionality', 'usecases', 'interface'] as const) expect(store.point(ordinary._id, name)?.contentHash).toBe(synced[name].contentHash);
    const stats = await ToolModel.getSyncStats();
    expect(() => formatStatus(stats)).not.toThrow();
    for (const _id of ids) {
      const stored = await rawTool({ _id });
      const collections = (stored?.syncMetadata as { collections?: Record<string, { lastError?: unknown }> } | undefined)?.collections;
      expect.soft(String(collections?.tools?.lastError), String(_id)).toMatch(/is not an ObjectId/);
    }
    const deleted = await ToolModel.deleteMany({});
    expect(deleted.deletedCount).toBe(ids.length + 1);
    expect(await rawTool({ _id: ordinary._id })).toBeNull();
  });
});

describe('attack: failed collections stored by another writer', () => {
  const shapes: [string, Record<string, unknown>][] = [
    ['null retry time, an outage', { errorCode: 'QDRANT_UNAVAILABLE', nextRetryAt: null }],
    ['null retry time, no error code', { errorCode: null, nextRetryAt: null }],
    ['no retry time field at all', { errorCode: 'UNKNOWN', nextRetryAt: undefined }],
  ];
  for (const [what, fields] of shapes) {
    it(`${what}: due now, claimed and synced`, { timeout: 30_000 }, async () => {
      const tool = await ToolModel.create(toolInput());
      const set: Record<string, unknown> = { 'syncMetadata.collections.tools.status': 'failed', 'syncMetadata.collections.tools.retryCount': 1, 'syncMetadata.overallStatus': 'failed' };
      const unset: Record<string, ''> = {};
      for (const [key, value] of Object.entries(fields)) {
        if (value === undefined) unset[`syncMetadata.collections.tools.${key}`] = '';
        else set[`syncMetadata.collections.tools.${key}`] = value;
      }
      await ToolModel.collection.updateOne({ _id: tool._id }, { $set: set, ...(Object.keys(unset).length > 0 ? { $unset: unset } : {}) });
      formatStatus(await ToolModel.getSyncStats());
      const store = recordingStore();
      const summary = await runSyncWorker(storeWorker(store, { model: ToolModel, workerId: 'W', collections: ['tools'] }));
      expect(summary).toMatchObject({ synced: 1 });
      const state = (await rawTool({ _id: tool._id }))?.syncMetadata as { collections: Record<string, unknown> };
      expect(state.collections.tools, JSON.stringify(state.collections.tools)).toMatchObject({ status: 'synced' });
    });
  }

  it('null retry time and an error code outside the vocabulary: quarantined, the code named (not silently stuck)', { timeout: 30_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    await ToolModel.collection.updateOne({ _id: tool._id }, { $set: {
      'syncMetadata.collections.tools.status': 'failed', 'syncMetadata.collections.tools.errorCode': 'SOMETHING_ELSE', 'syncMetadata.collections.tools.nextRetryAt': null,
    } });
    await runSyncWorker(storeWorker(recordingStore(), { model: ToolModel, workerId: 'W', collections: ['tools'] }));
    const state = (await rawTool({ _id: tool._id }))?.syncMetadata as { collections: Record<string, { lastError?: unknown }> };
    expect(String(state.collections.tools?.lastError)).toContain('SOMETHING_ELSE');
  });
});

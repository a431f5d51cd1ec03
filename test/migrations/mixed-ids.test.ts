import mongoose from 'mongoose';
import { beforeEach, describe, expect, it } from 'vitest';
import { ToolModel } from '../../src/index.js';
import { backfill } from '../../src/migrations/backfill.js';
import { CHECKPOINT_COLLECTION } from '../../src/migrations/batch-migration.js';
import { settleMatching } from '../../src/models/conditional-write.js';
import { idsAfter } from '../../src/models/keyset.js';
import { useTestDatabase } from '../helpers/database.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';

/*
 * A collection whose legacy tools have `_id`s of several types: the server orders them by type
 * first, and `$gt` compares only within a type, so paging by `_id` must cross the types.
 */

useTestDatabase(import.meta.url);

const UUID = new mongoose.mongo.UUID('0b6b1a3e-7c1d-4c1e-9f3a-3b0b0f7a9c11');
const mixedIds = (): unknown[] => [7, 42.5, 'legacy-a', 'legacy-b', UUID, new mongoose.Types.ObjectId(), new mongoose.Types.ObjectId()];

beforeEach(async () => {
  await ToolModel.collection.deleteMany({});
  await mongoose.connection.db?.collection(CHECKPOINT_COLLECTION).deleteMany({});
});

describe('paging by _id across _id types', () => {
  it('idsAfter visits every document once, one at a time, in the server\'s order', async () => {
    const ids = mixedIds();
    for (const _id of ids) await insertRaw({ _id, ...toolInput() });
    const seen: unknown[] = [];
    let page = await ToolModel.collection.find({}, { sort: { _id: 1 }, limit: 1 }).toArray();
    while (page.length > 0) {
      const last = page[0]?._id;
      seen.push(last);
      page = await ToolModel.collection.find(idsAfter(last), { sort: { _id: 1 }, limit: 1 }).toArray();
    }
    expect(seen.map(String)).toEqual(ids.map(String));
  });

  it('backfill in batches of one reaches every tool; the ones it cannot key are reported by _id, the others backfilled', async () => {
    const ids = mixedIds();
    for (const _id of ids) await insertRaw({ _id, ...toolInput() });
    const summary = await backfill(ToolModel, { batchSize: 1 });
    expect(summary.scanned).toBe(ids.length);
    expect(summary.failed.map(({ reason }) => reason)).toEqual(ids.slice(0, 5).map(() => expect.stringMatching(/^_id .* is not an ObjectId/) as string));
    for (const _id of ids.slice(5)) expect(((await rawTool({ _id }))?.syncMetadata as { overallStatus?: string } | undefined)?.overallStatus).toBe('pending');
  });

  it('a settle after a write pages across _id types too', async () => {
    const ids = mixedIds().slice(4);
    for (const _id of ids) await insertRaw({ _id, ...toolInput(), syncMetadata: null });
    const summary = await settleMatching(ToolModel.collection, {}, { batchSize: 1, bulkSize: () => Promise.resolve(10) });
    expect(summary.invalid.map(({ id }) => id)).toEqual([String(UUID)]);
    expect(summary.outcomes).toEqual({ settled: 2 });
  });
});

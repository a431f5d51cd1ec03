import mongoose from 'mongoose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { computeContentHashes, defaultCollectionSyncStatus, defaultSyncMetadata, SETTLE_FAILED_EVENT, SYNC_COLLECTION_NAMES, ToolModel } from '../../src/index.js';
import { backfill, backfillPlan } from '../../src/migrations/backfill.js';
import { CHECKPOINT_COLLECTION, runBatchMigration } from '../../src/migrations/batch-migration.js';
import { bulkSizeOf } from '../../src/models/change-tracking/settle-after-write.js';
import { applyIdempotentPlans, settlePlan, type IdempotentPlan, WritesRefusedError } from '../../src/models/conditional-write.js';
import { type StoredTool } from '../../src/sync/stored-tool.js';
import { skipReason } from '../helpers/capabilities.js';
import { type Outcome, outcomeOf } from '../helpers/commands.js';
import { engine, useTestDatabase } from '../helpers/database.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';
import { nearLimitLegacyTool, nearLimitUnsupported } from './near-limit.js';

useTestDatabase(import.meta.url);

const checkpoints = (): mongoose.mongo.Collection => {
  const db = mongoose.connection.db;
  if (db === undefined) throw new Error('not connected');
  return db.collection(CHECKPOINT_COLLECTION);
};

/** Legacy tools (no sync metadata) inserted in this order, so `_id` order is this order. */
async function insertLegacy(ids: string[]): Promise<Map<string, mongoose.Types.ObjectId>> {
  const inserted = new Map<string, mongoose.Types.ObjectId>();
  for (const id of ids) {
    const _id = new mongoose.Types.ObjectId();
    await insertRaw({ _id, ...toolInput({ id }) });
    inserted.set(id, _id);
  }
  return inserted;
}

const metadataOf = async (id: string): Promise<{ overallStatus?: unknown } | undefined> =>
  (await rawTool({ id }))?.syncMetadata as { overallStatus?: unknown } | undefined;

/** A plan whose write for the tool `id` the server refuses: it creates a field inside a string (MongoDB and FerretDB: code 28). */
function refusedFor(id: string, plan: (tool: StoredTool, now: Date) => IdempotentPlan) {
  return (tool: StoredTool, now: Date): IdempotentPlan => {
    const decided = plan(tool, now);
    if (decided.kind !== 'write' || tool.id !== id) return decided;
    const set = decided.write.update.$set as Record<string, unknown>;
    return { ...decided, write: { filter: decided.write.filter, update: { $set: { ...set, 'name.first': 'unwritable' } } } };
  };
}

let nearLimitSkip: string | undefined;
beforeAll(async () => {
  nearLimitSkip = await nearLimitUnsupported();
}, 120_000);

beforeEach(async () => {
  await ToolModel.collection.deleteMany({});
  await checkpoints().deleteMany({});
});

describe('a migration skips what it cannot write', () => {
  it('backfill: a legacy tool near 16 MB is listed with _id, id and reason; the tools around it, and the next batch, get metadata', { timeout: 180_000 }, async (context) => {
    if (nearLimitSkip !== undefined) {
      skipReason(nearLimitSkip, engine());
      context.skip();
    }
    await insertLegacy(['before-1']);
    const big = nearLimitLegacyTool('near-limit-tool');
    await insertRaw(big);
    await insertLegacy(['after-1', 'after-2', 'after-3']);

    // Batches of 3: [before-1, near-limit-tool, after-1], [after-2, after-3].
    const summary = await backfill(ToolModel, { batchSize: 3 });
    expect(summary.scanned).toBe(5);
    expect(summary.outcomes).toEqual({ updated: 4 });
    expect(summary.aborted).toBe(false);
    expect(summary.failed).toHaveLength(1);
    expect(summary.failed[0]).toMatchObject({ _id: big._id.toHexString(), id: 'near-limit-tool' });
    // Refused by the driver (too large to send) or by the server, in its own words: what counts is that it is listed, and left as it was.
    expect(summary.failed[0]?.reason).toMatch(/^the (driver refused to send|server refused) the write: /);
    for (const id of ['before-1', 'after-1', 'after-2', 'after-3']) expect((await metadataOf(id))?.overallStatus, id).toBe('pending');
    // Left as it was; the run finished, so no checkpoint is kept.
    expect(await rawTool({ _id: big._id, syncMetadata: { $exists: true } })).toBeNull();
    expect(await checkpoints().countDocuments()).toBe(0);

    const again = await backfill(ToolModel, { batchSize: 3 });
    expect(again.outcomes).toEqual({ 'already complete': 4 });
    expect(again.failed.map(({ _id, id }) => ({ _id, id }))).toEqual([{ _id: big._id.toHexString(), id: 'near-limit-tool' }]);
  });

  it('any write the server refuses: that document is listed with its reason, the others of its bulk and the next batch are written', async () => {
    // The refused write sits mid-bulk: FerretDB 1.x names statement 0 whichever failed, and stops there.
    const ids = await insertLegacy(['first', 'second', 'server-refuses', 'fourth', 'fifth', 'sixth', 'seventh']);
    const summary = await runBatchMigration(ToolModel, {
      name: 'refusal-test', plan: refusedFor('server-refuses', backfillPlan), batchSize: 5, dryRun: false,
    });
    expect(summary.scanned).toBe(7);
    expect(summary.outcomes).toEqual({ updated: 6 });
    // Nobody else wrote: a refusal is not reported as a concurrent change.
    expect(summary.replanned).toBe(0);
    expect(summary.failed).toEqual([
      { _id: ids.get('server-refuses')?.toHexString(), id: 'server-refuses', reason: expect.stringMatching(/^the server refused the write: .*\(code 28\)$/) as unknown },
    ]);
    for (const id of ['first', 'second', 'fourth', 'fifth', 'sixth', 'seventh']) expect((await metadataOf(id))?.overallStatus, id).toBe('pending');
    const refused = await rawTool({ id: 'server-refuses' });
    expect(refused?.syncMetadata).toBeUndefined();
    expect(refused?.name).toBe('Example Tool');
  });
});

describe('applyIdempotentPlans (the settle after a write, and the readers)', () => {
  const group = async (ids: string[]): Promise<StoredTool[]> => {
    await insertLegacy(ids);
    return ToolModel.collection.find({ id: { $in: ids } }, { sort: { _id: 1 } }).toArray();
  };

  it('writes the rest of the group, then throws one WritesRefusedError naming the refused tool', async () => {
    const tools = await group(['settle-a', 'settle-refused', 'settle-b']);
    const refusedId = String(tools[1]?._id);
    const settled: string[] = [];
    const run = applyIdempotentPlans(ToolModel.collection, tools, refusedFor('settle-refused', settlePlan), {
      bulkSize: bulkSizeOf(ToolModel), onSettled: (tool) => { settled.push(String(tool.id)); },
    });
    const error = await run.then(() => undefined, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(WritesRefusedError);
    expect((error as WritesRefusedError).refused).toEqual([{ id: refusedId, reason: expect.stringMatching(/\(code 28\)$/) as unknown }]);
    expect((error as Error).message).toContain(refusedId);
    expect(settled.sort()).toEqual(['settle-a', 'settle-b']);
    expect((await metadataOf('settle-a'))?.overallStatus).toBe('pending');
    expect((await metadataOf('settle-b'))?.overallStatus).toBe('pending');
    expect(await metadataOf('settle-refused')).toBeUndefined();
  });

  it('with recordRefused, records the refusal in the summary and throws nothing', async () => {
    const tools = await group(['record-a', 'record-refused']);
    const summary = await applyIdempotentPlans(ToolModel.collection, tools, refusedFor('record-refused', settlePlan), {
      bulkSize: bulkSizeOf(ToolModel), recordRefused: true,
    });
    expect(summary.outcomes).toEqual({ settled: 1 });
    expect(summary.refused).toEqual([{ id: String(tools[1]?._id), reason: expect.stringMatching(/\(code 28\)$/) as unknown }]);
    expect(summary.replanned).toBe(0);
  });
});

describe("the settle after a user's write", () => {
  it('a settle write that cannot be sent never throws at the user: the write lands and SETTLE_FAILED_EVENT names the tool', { timeout: 180_000 }, async (context) => {
    if (nearLimitSkip !== undefined) {
      skipReason(nearLimitSkip, engine());
      context.skip();
    }
    const big = nearLimitLegacyTool('near-limit-saved');
    await insertRaw(big);
    const events: unknown[] = [];
    const listener = (event: { error: unknown }): void => { events.push(event.error); };
    let saved: Outcome = { ok: false, error: 'not saved' };
    ToolModel.events.on(SETTLE_FAILED_EVENT, listener);
    try {
      const doc = await ToolModel.findById(big._id).orFail();
      // No content change, so no token: the settle that completes its metadata is conditioned on
      // its content, and that statement is too large to send.
      doc.url = 'https://example.org/moved-near-the-limit';
      // The stored longDescription is over the model's maximum: validation would refuse the save before the write.
      saved = await outcomeOf(() => doc.save({ validateBeforeSave: false }));
    } finally {
      ToolModel.events.off(SETTLE_FAILED_EVENT, listener);
    }
    const after = await rawTool({ _id: big._id });
    if (!saved.ok) {
      // An engine may refuse the save itself (its marks take the tool past the limit there, as on FerretDB 2):
      // then nothing changed, and there is nothing to settle.
      expect(saved.error).toBeInstanceOf(mongoose.mongo.MongoServerError);
      expect(after?.url).toBe(big.url);
      expect(after?.syncMetadata).toBeUndefined();
      expect(events).toEqual([]);
      return;
    }
    expect(after?.url).toBe('https://example.org/moved-near-the-limit');
    expect(events).toHaveLength(1);
    expect(events[0]).toBeInstanceOf(WritesRefusedError);
    expect((events[0] as WritesRefusedError).refused.map(({ id }) => id)).toEqual([big._id.toHexString()]);
  });

  it('a save settled from memory whose condition is too large to send is settled from a read instead: no event, settled', { timeout: 180_000 }, async (context) => {
    if (nearLimitSkip !== undefined) {
      skipReason(nearLimitSkip, engine());
      context.skip();
    }
    const big = nearLimitLegacyTool('near-limit-settled');
    // Complete, settled metadata, so that the save is planned from the document in memory.
    const hashes = computeContentHashes(big);
    const collections = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, Object.assign(defaultCollectionSyncStatus(), { contentHash: hashes[name] })]));
    await insertRaw({ ...big, syncMetadata: Object.assign(defaultSyncMetadata(), { collections }) });
    const before = Buffer.from(mongoose.mongo.BSON.serialize(await rawTool({ _id: big._id }) ?? {}));
    const events: unknown[] = [];
    const listener = (event: { error: unknown }): void => { events.push(event.error); };
    let saved: Outcome = { ok: false, error: 'not saved' };
    ToolModel.events.on(SETTLE_FAILED_EVENT, listener);
    try {
      const doc = await ToolModel.findById(big._id).orFail();
      doc.name = 'Renamed near the limit';
      saved = await outcomeOf(() => doc.save({ validateBeforeSave: false }));
    } finally {
      ToolModel.events.off(SETTLE_FAILED_EVENT, listener);
    }
    expect(events).toEqual([]);
    if (!saved.ok) {
      // An engine may refuse the save itself (its update takes the tool past the limit there, as on FerretDB 2):
      // then the stored tool is byte for byte as it was.
      expect(saved.error).toBeInstanceOf(mongoose.mongo.MongoServerError);
      expect(Buffer.from(mongoose.mongo.BSON.serialize(await rawTool({ _id: big._id }) ?? {})).equals(before)).toBe(true);
      return;
    }
    const stored = (await rawTool({ _id: big._id })) as StoredTool & { syncMetadata: { pendingHashCheck: unknown; collections: Record<string, { contentHash: string }> } };
    expect(stored.name).toBe('Renamed near the limit');
    expect(stored.syncMetadata.pendingHashCheck).toBeNull();
    expect(stored.syncMetadata.collections.tools?.contentHash).toBe(computeContentHashes(stored).tools);
  });
});

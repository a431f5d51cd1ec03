import mongoose from 'mongoose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createToolModel, ToolModel, type SyncCollectionName } from '../../src/index.js';
import { TOMBSTONE_COLLECTION } from '../../src/models/tombstones.js';
import { embeddedTool, tombstoneOf, tombstones } from '../helpers/tombstones.js';
import { useTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';

/*
 * From a hostile review of claims, tombstones, embedding models and the worker: every test here but
 * the last describe block failed against the code as reviewed (each name states the promise), and
 * stays as a regression test.
 */

useTestDatabase(import.meta.url);


async function collectionState(id: mongoose.Types.ObjectId, name: SyncCollectionName): Promise<Record<string, unknown>> {
  const stored = await rawTool({ _id: id });
  return (stored?.syncMetadata as { collections: Record<string, Record<string, unknown>> } | undefined)?.collections[name] ?? {};
}

/** A tombstone no version of the package writes: its `tools` removal state is an array. */
async function insertPoisonedTombstone(): Promise<mongoose.Types.ObjectId> {
  const toolObjectId = new mongoose.Types.ObjectId();
  const _id = `tools/${toolObjectId.toHexString()}` as unknown as mongoose.Types.ObjectId;
  await tombstones().insertOne({ _id, toolObjectId, toolsCollection: 'tools', id: 'poison', deletedAt: new Date(0), collections: { tools: [{ status: 'pending' }] } });
  return toolObjectId;
}

beforeEach(async () => {
  await ToolModel.deleteMany({});
  await tombstones().deleteMany({});
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a delete whose filter Mongoose casts still leaves a tombstone before the delete', () => {
  // The hooks read the filter as given (Query#getFilter), but Mongoose casts it before sending the delete.
  const paths: [string, (id: mongoose.Types.ObjectId) => Promise<unknown>][] = [
    ['findByIdAndDelete(hex string) leaves a tombstone', (id) => ToolModel.findByIdAndDelete(id.toHexString())],
    ['deleteOne({ _id: hex string }) leaves a tombstone', (id) => ToolModel.deleteOne({ _id: id.toHexString() })],
    ['deleteMany({ _id: { $in: [hex strings] } }) leaves a tombstone', (id) => ToolModel.deleteMany({ _id: { $in: [id.toHexString()] } })],
    ['deleteMany({ createdAt: { $lt: ISO date string } }) leaves a tombstone', () => ToolModel.deleteMany({ createdAt: { $lt: new Date(Date.now() + 60_000).toISOString() } })],
    ['deleteOne with strictQuery (an unknown filter field dropped by Mongoose) leaves a tombstone', (id) => ToolModel.deleteOne({ _id: id, notAField: 'x' }).setOptions({ strictQuery: true })],
    ['bulkWrite deleteOne { _id: hex string } leaves a tombstone', (id) => ToolModel.bulkWrite([{ deleteOne: { filter: { _id: id.toHexString() } } }])],
  ];
  for (const [name, remove] of paths) {
    it(name, async () => {
      const id = await embeddedTool(['tools']);
      await remove(id);
      expect(await ToolModel.exists({ _id: id })).toBeNull();
      expect(await tombstoneOf(id)).not.toBeNull();
    });
  }
});

describe('tombstones under concurrency and in bulks', () => {
  it("a worker's claimVectorDeletions between a delete's tombstone write and the delete does not void the tombstone", async () => {
    const id = await embeddedTool(['tools']);
    type BulkWrite = (this: mongoose.mongo.Collection, ...args: Parameters<mongoose.mongo.Collection['bulkWrite']>) => ReturnType<mongoose.mongo.Collection['bulkWrite']>;
    const original = Reflect.get<object, 'bulkWrite'>(mongoose.mongo.Collection.prototype, 'bulkWrite') as BulkWrite;
    let polled = false;
    // The delete's tombstones are written with one bulkWrite; right after it, a worker polls (as a fleet does every second).
    vi.spyOn(mongoose.mongo.Collection.prototype, 'bulkWrite').mockImplementation(async function afterTombstones(this: mongoose.mongo.Collection, ...args: Parameters<mongoose.mongo.Collection['bulkWrite']>) {
      const result = await original.apply(this, args);
      if (this.collectionName === TOMBSTONE_COLLECTION && !polled) {
        polled = true;
        await ToolModel.claimVectorDeletions({ workerId: 'poller', limit: 10 });
      }
      return result;
    });
    await ToolModel.deleteOne({ _id: id });
    expect(polled).toBe(true);
    expect(await ToolModel.exists({ _id: id })).toBeNull();
    expect(await tombstoneOf(id)).not.toBeNull();
  });

  it("deleting a copy of a tool (same _id) from another tools collection keeps the first collection's pending tombstone", async () => {
    const other = createToolModel(mongoose.connection, { modelName: 'ReviewAttackCopy', collection: 'tools_review_copy' });
    const id = await embeddedTool(['tools']);
    const stored = await rawTool({ _id: id });
    if (stored === null) throw new Error('no tool');
    await other.collection.insertOne(stored);
    await ToolModel.deleteOne({ _id: id });
    await other.deleteOne({ _id: id });
    const claimed = await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 });
    expect(claimed.map(({ toolObjectId }) => String(toolObjectId))).toContain(String(id));
  });
});

describe('a mark by a worker whose lease ended and whose work another worker claimed writes nothing', () => {
  /** `slow` claimed the tool's first pair with a lease already over; `fast` claimed it after and synced it with model m2. */
  async function takenOverAndSynced(): Promise<{ id: mongoose.Types.ObjectId; collection: SyncCollectionName; contentHash: string }> {
    const tool = await ToolModel.create(toolInput());
    const [slow] = await ToolModel.claimSyncWork({ workerId: 'slow', limit: 1, leaseMs: 1_000, now: new Date(Date.now() - 10 * 60_000) });
    const pair = slow?.collections[0];
    if (pair === undefined) throw new Error('no claim');
    const [fast] = await ToolModel.claimSyncWork({ workerId: 'fast', limit: 1, leaseMs: 60_000 });
    expect(fast?.collections[0]?.collection).toBe(pair.collection);
    expect(await ToolModel.markCollectionSynced(tool._id, pair.collection, { contentHash: pair.contentHash, workerId: 'fast', embeddingModel: 'm2' }))
      .toEqual({ synced: true, vectorVersion: 1 });
    return { id: tool._id, collection: pair.collection, contentHash: pair.contentHash };
  }

  it('markCollectionFailed by the worker whose lease was taken over does not turn the synced collection failed', async () => {
    const { id, collection } = await takenOverAndSynced();
    const late = await ToolModel.markCollectionFailed(id, collection, new Error('socket hang up'), 'embedding', { workerId: 'slow' });
    expect(late.recorded).toBe(false);
    expect(await collectionState(id, collection)).toMatchObject({ status: 'synced', embeddingModel: 'm2', retryCount: 0 });
  });

  it("markCollectionSynced by the worker whose lease was taken over does not overwrite the other worker's vector version and model", async () => {
    const { id, collection, contentHash } = await takenOverAndSynced();
    const late = await ToolModel.markCollectionSynced(id, collection, { contentHash, workerId: 'slow', embeddingModel: 'm1' });
    expect(late).toMatchObject({ synced: false, reason: 'claim-lost', reopened: true });
    // Nothing of slow's sync is recorded; its write may be the one in the store now, so the pair is re-embedded (the fencing rule).
    expect(await collectionState(id, collection)).toMatchObject({ status: 'stale', embeddingModel: 'm2', vectorVersion: 1 });
  });
});

describe('one poisoned tombstone never stops other work', () => {
  it("claimVectorDeletions skips a tombstone with unusable removal state and claims the others' removals", async () => {
    const good = await embeddedTool(['tools']);
    await ToolModel.deleteOne({ _id: good });
    await insertPoisonedTombstone();
    const claimed = await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 });
    expect(claimed.map(({ toolObjectId }) => String(toolObjectId))).toContain(String(good));
  });
});

describe('a claimed removal can be completed', () => {
  it('claimVectorDeletions never hands out a removal that markVectorDeleted then refuses (a tombstone whose _id is not an ObjectId)', async () => {
    await tombstones().insertOne({ _id: 'x' as unknown as mongoose.Types.ObjectId, toolsCollection: 'tools', id: 'gone', deletedAt: new Date(0), collections: { tools: { status: 'pending' } } });
    const claimed = await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 });
    for (const { toolObjectId, collections } of claimed) {
      for (const collection of collections) await ToolModel.markVectorDeleted(toolObjectId, collection, { workerId: 'w' });
    }
    expect(await tombstones().countDocuments({ _id: 'x' as unknown as mongoose.Types.ObjectId, 'collections.tools.claimedBy': 'w' })).toBe(0);
  });
});

describe('promises that hold (kept as pins)', () => {
  it('getSyncStats answers over garbage tombstones and still counts the well-formed pending removal', async () => {
    const good = await embeddedTool(['tools']);
    await ToolModel.deleteOne({ _id: good });
    await insertPoisonedTombstone();
    await tombstones().insertMany([
      { _id: new mongoose.Types.ObjectId(), toolsCollection: 'tools', collections: 'nope' },
      { _id: new mongoose.Types.ObjectId(), toolsCollection: 'tools', collections: { tools: { status: 7 }, usecases: null } },
      { _id: new mongoose.Types.ObjectId(), toolsCollection: ['tools'], collections: { tools: { status: 'failed' } } },
    ]);
    const stats = await ToolModel.getSyncStats();
    expect(stats.deletions.tools.pending).toBeGreaterThanOrEqual(1);
  });

  it('extendClaims and releaseClaims refuse operator objects, naming the argument, and write nothing', async () => {
    await ToolModel.create(toolInput());
    await ToolModel.claimSyncWork({ workerId: 'w', limit: 4 });
    const calls: [() => Promise<unknown>, string][] = [
      [() => ToolModel.extendClaims('w', [{ toolId: { $ne: null }, collection: 'tools' }] as never), 'claims[0].toolId'],
      [() => ToolModel.extendClaims('w', [{ toolId: new mongoose.Types.ObjectId(), collection: { $ne: null } }] as never), 'claims[0].collection'],
      [() => ToolModel.extendClaims({ $ne: null } as never, []), 'workerId'],
      [() => ToolModel.releaseClaims('w', { toolIds: [{ $ne: null }] } as never), 'toolIds[0]'],
      [() => ToolModel.releaseClaims({ $exists: true } as never), 'workerId'],
    ];
    for (const [call, argument] of calls) {
      const error = await call().catch((thrown: unknown) => thrown);
      expect((error as Error).name, argument).toBe('SyncArgumentError');
      expect((error as Error).message).toContain(argument);
    }
    expect((await ToolModel.getSyncStats()).inFlight.tools).toBe(1);
  });
});

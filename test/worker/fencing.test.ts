import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { runSyncWorker, ToolModel, type SyncWorkerEvent, type ToolModelType } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';
import { gate, heldUpsert, recordingStore, removalsOwed, sleep, storeDisagreements, storeWorker, useWorkerModels } from '../helpers/worker.js';

/*
 * The fencing rule, raced on purpose: gates inside embed and upsert hold a worker at the moment
 * the race needs, so each interleaving happens every run. The vector store is a recording test
 * double; the database is the real server (one connection of pool size 1, shared by the workers).
 */

const models = useWorkerModels(useTestDatabase(import.meta.url));
const sharedModel = models.shared;

/** `model`, whose lease renewals the database refuses (a worker cut off from it while its call runs). */
function renewalsFail(model: ToolModelType): ToolModelType {
  return new Proxy(model, {
    get(target, key, receiver) {
      if (key === 'extendClaims') return () => Promise.reject(new mongoose.mongo.MongoNetworkError('connection reset'));
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
}

const inTwoSeconds = (): Date => new Date(Date.now() + 2_000);

describe('a worker that no longer holds its pair never writes to the store', () => {
  it("renewals fail, the content changes and another worker syncs it; the first one's embedding returns late and is never stored", { timeout: 20_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await sharedModel();
    const store = recordingStore();
    const embedding = gate();
    const release = gate();
    const events: SyncWorkerEvent[] = [];
    let aborted = false;
    const slow = runSyncWorker(storeWorker(store, {
      model: renewalsFail(model), workerId: 'A', leaseMs: 1_000, collections: ['functionality'], concurrency: 1,
      embed: async (_tool, _collection, { signal }) => {
        signal.addEventListener('abort', () => { aborted = true; });
        embedding.open();
        await release.promise;
        return [0];
      },
      onEvent: (event) => { events.push(event); },
    }));
    await embedding.promise;
    await ToolModel.updateOne({ _id: tool._id }, { $push: { functionality: 'a new capability' } });
    // A's lease has ended in the database by B's clock: B claims the pair, embeds the new content and marks it.
    const fast = await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['functionality'], clock: inTwoSeconds }));
    expect(fast).toMatchObject({ synced: 1, claimLost: 0 });
    // A finds out by its own clock: the lease ran out with no renewal, and its embedding is aborted.
    while (!events.some((event) => event.type === 'claim-lost')) await sleep(20);
    expect(aborted).toBe(true);
    release.open();
    const summary = await slow;
    expect(summary).toMatchObject({ synced: 0, failed: 0, claimLost: 1 });
    // Its failed renewals, reported as errors.
    expect(summary.errors).toBeGreaterThan(0);
    expect(events.find((event) => event.type === 'claim-lost')).toMatchObject({ during: 'lease-end', collection: 'functionality' });
    expect(store.log.filter((line) => line.endsWith('by A'))).toEqual([]);
    expect(await storeDisagreements(store)).toEqual([]);
    const stored = await ToolModel.findById(tool._id).orFail();
    expect(stored.syncMetadata.collections.functionality.status).toBe('synced');
    expect(store.point(tool._id, 'functionality')?.contentHash).toBe(stored.syncMetadata.collections.functionality.contentHash);
  });

  it('a write that lands after the lease ended re-opens the pair, and the next worker leaves the store right', { timeout: 20_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await sharedModel();
    const store = recordingStore();
    // A store call sent in time that lands late: A's write comes after B's.
    const late = heldUpsert(store);
    const slow = runSyncWorker(storeWorker(store, { model: renewalsFail(model), workerId: 'A', leaseMs: 1_000, collections: ['usecases'], concurrency: 1, upsert: late.upsert }));
    await late.writing;
    await ToolModel.updateOne({ _id: tool._id }, { $push: { useCases: 'a new use' } });
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['usecases'], clock: inTwoSeconds }))).toMatchObject({ synced: 1 });
    const [bWrite] = store.log;
    late.land();
    // A's mark finds its claim lost and re-opens the pair; A (still running) or C embeds it again.
    expect(await slow).toMatchObject({ claimLost: 1, reopened: 1 });
    await runSyncWorker(storeWorker(store, { model, workerId: 'C', collections: ['usecases'] }));
    const current = (await ToolModel.findById(tool._id).orFail()).syncMetadata.collections.usecases;
    expect(current.status).toBe('synced');
    // B's write, then A's late one of the old content, then the re-embedding of the current content.
    expect(store.log).toHaveLength(3);
    expect(store.log[0]).toBe(bWrite);
    expect(store.log[1]).toMatch(/ by A$/);
    expect(store.log[1]).not.toContain(current.contentHash);
    expect(store.log[2]).toContain(current.contentHash);
    expect(await storeDisagreements(store)).toEqual([]);
  });
});

describe('a store write is sent only with enough of the lease left for it to land (maxWriteMs)', () => {
  it('renewals failing, an embedding that ends with less than maxWriteMs of the lease left is never written; the next claim does it', { timeout: 20_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await sharedModel();
    const store = recordingStore();
    const events: SyncWorkerEvent[] = [];
    // Lease 1 s (counted on for 0.9 s), writes need 0.5 s: an embedding of 0.6 s leaves too little.
    const summary = await runSyncWorker(storeWorker(store, {
      model: renewalsFail(model), workerId: 'A', leaseMs: 1_000, maxWriteMs: 500, collections: ['interface'], concurrency: 1,
      embed: async () => { await sleep(600); return [0]; },
      onEvent: (event) => { events.push(event); },
    }));
    expect(summary).toMatchObject({ synced: 0, claimLost: 1 });
    expect(events.find((event) => event.type === 'claim-lost')).toMatchObject({ during: 'lease-end' });
    expect(store.log).toEqual([]);
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['interface'], clock: inTwoSeconds }))).toMatchObject({ synced: 1 });
    expect(await storeDisagreements(store)).toEqual([]);
    expect(store.point(tool._id, 'interface')?.writtenBy).toBe('B');
  });

  it('refuses a maxWriteMs the lease cannot hold (two thirds of it, less the margin), naming both', async () => {
    const model = await sharedModel();
    await expect(runSyncWorker(storeWorker(recordingStore(), { model, leaseMs: 3_000, maxWriteMs: 1_800 }))).rejects.toThrow(/maxWriteMs \(with leaseMs 3000\): expected an integer from 1 to 1700, got 1800/);
  });
});

describe('a tool deleted while it is being embedded leaves no point behind', () => {
  it('the removal waits for the embedding lease; the late upsert lands, its mark owes the removal, and it is done after the write', { timeout: 20_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await sharedModel();
    const store = recordingStore();
    const late = heldUpsert(store);
    const embedding = runSyncWorker(storeWorker(store, { model, workerId: 'A', collections: ['tools'], concurrency: 1, upsert: late.upsert }));
    await late.writing;
    await ToolModel.deleteOne({ _id: tool._id });
    // A holds a live lease on `tools`: its upsert may still come, so nobody removes the point yet.
    expect(await model.claimVectorDeletions({ workerId: 'R' })).toEqual([]);
    expect(await removalsOwed()).toBe(1);
    late.land();
    // A's mark finds the tool gone: the removal may go now, after the write (A itself, still running, or R takes it).
    const summaries = [await embedding, await runSyncWorker(storeWorker(store, { model, workerId: 'R' }))];
    expect(summaries[0]).toMatchObject({ synced: 0, deletedMeanwhile: 1 });
    expect(summaries.reduce((sum, { removed }) => sum + removed, 0)).toBe(1);
    expect(store.log.map((line) => line.split(' ')[0])).toEqual(['upsert', 'remove']);
    expect(store.points.size).toBe(0);
    expect(await removalsOwed()).toBe(0);
  });

  it('a removal done before a late upsert lands is owed again: the upsert\'s mark writes the tombstone anew', { timeout: 20_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await sharedModel();
    const store = recordingStore();
    const late = heldUpsert(store);
    const embedding = runSyncWorker(storeWorker(store, { model: renewalsFail(model), workerId: 'A', leaseMs: 1_000, collections: ['tools'], concurrency: 1, upsert: late.upsert }));
    await late.writing;
    await ToolModel.deleteOne({ _id: tool._id });
    // By R's clock A's lease has ended: R removes (nothing is there yet) and the tombstone goes.
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'R', clock: inTwoSeconds }))).toMatchObject({ removed: 1 });
    expect(await removalsOwed()).toBe(0);
    late.land();
    const first = await embedding;
    const summaries = [first, await runSyncWorker(storeWorker(store, { model, workerId: 'R2' }))];
    expect(summaries[0]).toMatchObject({ deletedMeanwhile: 1 });
    // Removed once before the write landed, and once after it (by A, still running, or R2).
    expect(summaries.reduce((sum, { removed }) => sum + removed, 0)).toBe(1);
    expect(store.log.map((line) => line.split(' ')[0])).toEqual(['remove', 'upsert', 'remove']);
    expect(await removalsOwed()).toBe(0);
    expect(store.points.size).toBe(0);
    expect(await storeDisagreements(store)).toEqual([]);
  });

  it('deleted before the upsert: the renewal finds the claim gone, nothing is written, and the removal (after the lease) removes nothing', { timeout: 20_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await sharedModel();
    const store = recordingStore();
    const embeddingStarted = gate();
    const release = gate();
    const events: SyncWorkerEvent[] = [];
    const embedding = runSyncWorker(storeWorker(store, {
      model, workerId: 'A', leaseMs: 1_000, collections: ['interface'], concurrency: 1,
      embed: async () => {
        embeddingStarted.open();
        await release.promise;
        return [0];
      },
      onEvent: (event) => { events.push(event); },
    }));
    await embeddingStarted.promise;
    await ToolModel.deleteOne({ _id: tool._id });
    while (!events.some((event) => event.type === 'claim-lost')) await sleep(20);
    release.open();
    expect(await embedding).toMatchObject({ synced: 0, claimLost: 1 });
    expect(events.find((event) => event.type === 'claim-lost')).toMatchObject({ during: 'renewal' });
    expect(store.log).toEqual([]);
    const tombstone = await ToolModel.db.collection('tool_sync_tombstones').findOne({ toolObjectId: tool._id });
    expect(tombstone?.collections).toMatchObject({ interface: { status: 'pending', notBefore: expect.any(Date) as Date } });
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'R', clock: inTwoSeconds }))).toMatchObject({ removed: 1 });
    expect(await removalsOwed()).toBe(0);
    expect(await rawTool({ _id: tool._id })).toBeNull();
  });
});

import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import {
  computeContentHashes, runSyncWorker, SYNC_COLLECTION_NAMES, ToolModel, type SyncWorkerEvent, type ToolModelType,
} from '../../src/index.js';
import { formatStatus } from '../../src/cli/status-report.js';
import { useTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';
import { gate, heldUpsert, recordingStore, removalsOwed, sleep, storeDisagreements, storeWorker, useWorkerModels } from '../helpers/worker.js';

/*
 * From a hostile review of the fencing change (issue 17): the promise "`synced` means the right
 * vector is in the store" raced at the points where the convergence argument assumes something (a
 * mark after every write reaches the database; a store write that failed may still land; a claim is
 * the trace of a write; an `_id` may come back). Racing workers share one connection of pool size 1
 * (FerretDB 1.x is not atomic over several).
 */

const models = useWorkerModels(useTestDatabase(import.meta.url));

type Method = 'extendClaims' | 'markBatch';

/** `model`, whose methods the database refuses (a network blip), each as many times as given. */
function refusing(model: ToolModelType, times: Partial<Record<Method, number>>): ToolModelType {
  const left = new Map<PropertyKey, number>(Object.entries(times));
  return new Proxy(model, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (!left.has(key) || typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        const remaining = left.get(key) ?? 0;
        if (remaining <= 0) return Reflect.apply(value, target, args) as unknown;
        left.set(key, remaining - 1);
        return Promise.reject(new mongoose.mongo.MongoNetworkError('connection reset'));
      };
    },
  });
}

const inTwoSeconds = (): Date => new Date(Date.now() + 2_000);
const farAhead = (): Date => new Date(Date.now() + 7 * 24 * 3_600_000);

describe('a late write is followed by a mark that reaches the database (marks are retried)', () => {
  it('lost lease, late upsert of the old content, then ONE refused mark: the retried mark re-opens the pair and the store ends right', { timeout: 30_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await models.shared();
    const store = recordingStore();
    const late = heldUpsert(store);
    const events: SyncWorkerEvent[] = [];
    // A: renewals fail (cut off from the database), its store call is held, its first mark is refused (a blip).
    const a = runSyncWorker(storeWorker(store, {
      model: refusing(model, { extendClaims: Number.POSITIVE_INFINITY, markBatch: 1 }), workerId: 'A', leaseMs: 1_000,
      collections: ['usecases'], concurrency: 1, upsert: late.upsert, onEvent: (event) => { events.push(event); },
    }));
    await late.writing;
    await ToolModel.updateOne({ _id: tool._id }, { $push: { useCases: 'a new use' } });
    // B (A's lease over by B's clock, which runs ahead) embeds the new content and marks it synced.
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['usecases'], clock: inTwoSeconds }))).toMatchObject({ synced: 1 });
    late.land();
    const summary = await a;
    expect(events.some((event) => event.type === 'error' && event.phase === 'mark')).toBe(false);
    expect(summary).toMatchObject({ reopened: 1, claimLost: 1 });
    await runSyncWorker(storeWorker(store, { model, workerId: 'C', collections: ['usecases'], clock: inTwoSeconds }));
    expect((await ToolModel.findById(tool._id).orFail()).syncMetadata.collections.usecases.status).toBe('synced');
    expect(await storeDisagreements(store)).toEqual([]);
  });

  it('deleted while a slow upsert is on its way; the removal (after notBefore) comes first; the late mark, refused once, owes the removal again', { timeout: 30_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await models.shared();
    const store = recordingStore();
    const late = heldUpsert(store);
    // A's renewals work; its mark meets a blip. Its store write is slower than its lease (beyond maxWriteMs: outside the contract).
    const a = runSyncWorker(storeWorker(store, {
      model: refusing(model, { markBatch: 1 }), workerId: 'A', leaseMs: 1_000, collections: ['tools'], concurrency: 1, upsert: late.upsert,
    }));
    await late.writing;
    await ToolModel.deleteOne({ _id: tool._id });
    // notBefore is A's claimedUntil at the delete (≤ 1 s): wait it out in real time, then R removes (nothing there yet).
    await sleep(1_300);
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'R' }))).toMatchObject({ removed: 1 });
    late.land();
    expect(await a).toMatchObject({ errors: 0, deletedMeanwhile: 1 });
    await runSyncWorker(storeWorker(store, { model, workerId: 'R2' }));
    expect(await removalsOwed()).toBe(0);
    expect([...store.points.keys()]).toEqual([]);
  });

  it('a worker stopped mid-work gives back only the pairs it did not write: a written pair whose mark never landed keeps its claim, and a delete owes its removal', { timeout: 30_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await models.shared();
    const store = recordingStore();
    const stop = new AbortController();
    const functionalityStarted = gate();
    const events: SyncWorkerEvent[] = [];
    const a = runSyncWorker(storeWorker(store, {
      // Every attempt of the mark is refused (the database is away longer than the retries).
      model: refusing(model, { markBatch: 3 }), workerId: 'A', collections: ['tools', 'functionality'], concurrency: 2,
      signal: stop.signal, stopWhenIdle: false,
      onEvent: (event) => { events.push(event); },
      embed: (_tool, collection, { signal }) => {
        if (collection === 'tools') return Promise.resolve([0]);
        functionalityStarted.open();
        return new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(new Error('aborted')); }); });
      },
    }));
    await functionalityStarted.promise;
    while (!events.some((event) => event.type === 'error' && event.phase === 'mark')) await sleep(20);
    expect(store.point(tool._id, 'tools')).toBeDefined();
    stop.abort();
    expect(await a).toMatchObject({ released: 1 });
    const collections = ((await rawTool({ _id: tool._id }))?.syncMetadata as { collections: Record<string, Record<string, unknown>> }).collections;
    expect(collections.tools?.claimedBy).toBe('A');
    expect(collections.functionality?.claimedBy).toBeNull();
    await ToolModel.deleteOne({ _id: tool._id });
    await runSyncWorker(storeWorker(store, { model, workerId: 'R', clock: farAhead }));
    expect([...store.points.keys()]).toEqual([]);
  });
});

describe('a store write that failed (client timeout) can still land: its lease stays', () => {
  it('upsert times out client-side; nobody claims the pair until the lease ends, so the late landing comes before the retry', { timeout: 30_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await models.shared();
    const store = recordingStore();
    let applyLate: (() => void) | undefined;
    const a = await runSyncWorker(storeWorker(store, {
      model, workerId: 'A', collections: ['interface'], concurrency: 1, leaseMs: 1_000,
      upsert: (t, collection, vector, context) => {
        applyLate = () => { store.upsert(t, collection, vector, context); };
        return Promise.reject(Object.assign(new Error('Request timed out'), { code: 'ETIMEDOUT' }));
      },
    }));
    expect(a).toMatchObject({ failed: 1 });
    const fenced = ((await rawTool({ _id: tool._id }))?.syncMetadata as { collections: Record<string, Record<string, unknown>> }).collections.interface;
    expect(fenced).toMatchObject({ status: 'failed', claimedBy: null });
    expect(fenced?.claimedUntil).toBeInstanceOf(Date);
    await ToolModel.updateOne({ _id: tool._id }, { $push: { interface: 'api' } });
    // Back in line by the content change, but fenced by A's lease: nobody writes before the late write lands.
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['interface'] }))).toMatchObject({ claimed: 0 });
    applyLate?.();
    await sleep(Math.max(0, (fenced?.claimedUntil as Date).getTime() - Date.now()) + 50);
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['interface'] }))).toMatchObject({ synced: 1 });
    expect(await storeDisagreements(store)).toEqual([]);
  });
});

describe('an _id that comes back (a restore) while its removal is in flight', () => {
  it('deleted, re-inserted with the same _id (a restore) while the removal is in flight: the removal\'s mark re-opens the restored tool, which ends synced with its point', { timeout: 30_000 }, async () => {
    const input = toolInput();
    const tool = await ToolModel.create(input);
    const model = await models.shared();
    const store = recordingStore();
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'S', collections: ['tools'] }))).toMatchObject({ synced: 1 });
    await ToolModel.deleteOne({ _id: tool._id });
    const removing = gate();
    const landRemoval = gate();
    const r = runSyncWorker(storeWorker(store, {
      model, workerId: 'R', collections: ['tools'], concurrency: 1,
      remove: async (deleted, collection) => { removing.open(); await landRemoval.promise; store.remove(deleted, collection); },
    }));
    await removing.promise;
    await ToolModel.create({ ...input, _id: tool._id });
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['tools'] }))).toMatchObject({ synced: 1 });
    landRemoval.open();
    await r;
    expect((await ToolModel.findById(tool._id).orFail()).syncMetadata.collections.tools.status).toBe('synced');
    expect(await storeDisagreements(store)).toEqual([]);
  });

  it('deleted, re-inserted with the same _id, embedded in one collection, deleted again before workers ran: the second tombstone is merged into the first', { timeout: 30_000 }, async () => {
    const input = toolInput();
    const tool = await ToolModel.create(input);
    const model = await models.shared();
    const store = recordingStore();
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'S', collections: ['tools', 'usecases'] }))).toMatchObject({ synced: 2 });
    // Removal workers are down for a while (or busy): the first tombstone waits.
    await ToolModel.deleteOne({ _id: tool._id });
    await ToolModel.create({ ...input, _id: tool._id });
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'T', collections: ['tools'] }))).toMatchObject({ synced: 1 });
    await ToolModel.deleteOne({ _id: tool._id });
    await runSyncWorker(storeWorker(store, { model, workerId: 'R' }));
    expect(await removalsOwed()).toBe(0);
    expect([...store.points.keys()]).toEqual([]);
  });
});

describe('races the fencing rule survives', () => {
  it('clock skew: B\'s clock runs ahead of A\'s lease; A (its renewals failing, its own deadline not reached) writes the old content after B synced: re-opened, and C leaves the store right', { timeout: 30_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await models.shared();
    const store = recordingStore();
    const embedding = gate();
    const release = gate();
    const a = runSyncWorker(storeWorker(store, {
      model: refusing(model, { extendClaims: Number.POSITIVE_INFINITY }), workerId: 'A', leaseMs: 5_000, collections: ['functionality'], concurrency: 1,
      embed: async () => { embedding.open(); await release.promise; return [0]; },
    }));
    await embedding.promise;
    await ToolModel.updateOne({ _id: tool._id }, { $push: { functionality: 'another capability' } });
    // B's clock is 6 s ahead: A's claim (5 s) looks over to B.
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['functionality'], clock: () => new Date(Date.now() + 6_000) }))).toMatchObject({ synced: 1 });
    release.open();
    expect(await a).toMatchObject({ claimLost: 1, reopened: 1 });
    // B's write, then A's late one (A, still running, may embed the re-opened pair again itself).
    expect(store.log.map((line) => line.split(' by ')[1]).slice(0, 2)).toEqual(['B', 'A']);
    await runSyncWorker(storeWorker(store, { model, workerId: 'C', collections: ['functionality'] }));
    expect((await ToolModel.findById(tool._id).orFail()).syncMetadata.collections.functionality.status).toBe('synced');
    expect(await storeDisagreements(store)).toEqual([]);
  });

  it('stopped mid-write after losing the lease: the write finishes, its mark re-opens, C leaves the store right', { timeout: 30_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await models.shared();
    const store = recordingStore();
    const late = heldUpsert(store);
    const stop = new AbortController();
    const a = runSyncWorker(storeWorker(store, {
      model: refusing(model, { extendClaims: Number.POSITIVE_INFINITY }), workerId: 'A', leaseMs: 1_000, collections: ['interface'], concurrency: 1,
      upsert: late.upsert, signal: stop.signal, stopWhenIdle: false,
    }));
    await late.writing;
    await ToolModel.updateOne({ _id: tool._id }, { $push: { interface: 'api' } });
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['interface'], clock: inTwoSeconds }))).toMatchObject({ synced: 1 });
    stop.abort();
    await sleep(50);
    late.land();
    expect(await a).toMatchObject({ reopened: 1 });
    await runSyncWorker(storeWorker(store, { model, workerId: 'C', collections: ['interface'] }));
    expect(await storeDisagreements(store)).toEqual([]);
  });

  it('lost lease, the late upsert FAILS (may have landed) and markFailed is refused once: the retried mark re-opens the pair', { timeout: 30_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await models.shared();
    const store = recordingStore();
    const writing = gate();
    const landing = gate();
    const a = runSyncWorker(storeWorker(store, {
      model: refusing(model, { extendClaims: Number.POSITIVE_INFINITY, markBatch: 1 }), workerId: 'A', leaseMs: 1_000, collections: ['tools'], concurrency: 1,
      // The store applied the write, but the reply was lost.
      upsert: async (t, collection, vector, context) => {
        writing.open();
        await landing.promise;
        store.upsert(t, collection, vector, context);
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      },
    }));
    await writing.promise;
    await ToolModel.updateOne({ _id: tool._id }, { $set: { name: 'Renamed Tool' } });
    expect(await runSyncWorker(storeWorker(store, { model, workerId: 'B', collections: ['tools'], clock: inTwoSeconds }))).toMatchObject({ synced: 1 });
    landing.open();
    await a;
    await runSyncWorker(storeWorker(store, { model, workerId: 'C', collections: ['tools'], clock: farAhead }));
    expect(await storeDisagreements(store)).toEqual([]);
  });

  /** Simulation workers (clock an hour ahead) whose embedding takes 1.3 s, a lease of 1.5 s; stopped after 4 s. */
  async function simulation(workerIds: string[]): Promise<{ synced: number; claimed: number; embeddings: number }> {
    await ToolModel.create(toolInput());
    const model = await models.shared();
    const store = recordingStore();
    let embeddings = 0;
    const options = {
      model, leaseMs: 1_500, collections: ['tools' as const], concurrency: 1, pollIntervalMs: 50, stopWhenIdle: false,
      clock: (): Date => new Date(Date.now() + 3_600_000), signal: AbortSignal.timeout(4_000),
      embed: async (_t: unknown, _c: unknown, { signal }: { signal: AbortSignal }): Promise<number[]> => {
        embeddings += 1;
        await sleep(1_300);
        if (signal.aborted) throw new Error('aborted');
        return [0];
      },
    };
    const summaries = await Promise.all(workerIds.map((workerId) => runSyncWorker(storeWorker(store, { ...options, workerId }))));
    return { synced: summaries.reduce((sum, s) => sum + s.synced, 0), claimed: summaries.reduce((sum, s) => sum + s.claimed, 0), embeddings };
  }

  it('the clock option, control: one simulation worker syncs the pair once', { timeout: 30_000 }, async () => {
    expect(await simulation(['S1'])).toEqual({ synced: 1, claimed: 1, embeddings: 1 });
  });

  it('the clock option: two simulation workers; renewals on the simulated clock keep the lease, so the pair is embedded once', { timeout: 30_000 }, async () => {
    // 4 s are time for three 1.3 s embeddings. README: "each tool × collection is embedded once per content version".
    expect(await simulation(['S1', 'S2'])).toEqual({ synced: 1, claimed: 1, embeddings: 1 });
  });
});

describe('regressions: the write path still settles hashes; stats and status still answer', () => {
  it('every content write path leaves the hash of the content it stored, stale where it changed; getSyncStats and the status report do not throw', { timeout: 60_000 }, async () => {
    const model = await models.shared();
    const store = recordingStore();
    const writes: [string, (id: unknown) => Promise<unknown>][] = [
      ['updateOne $set', (id) => ToolModel.updateOne({ _id: id }, { $set: { description: 'Changed by updateOne.' } })],
      ['updateMany $push', (id) => ToolModel.updateMany({ _id: id }, { $push: { functionality: 'pushed' } })],
      ['findOneAndUpdate', (id) => ToolModel.findOneAndUpdate({ _id: id }, { $addToSet: { useCases: 'added' } }, { returnDocument: 'after' })],
      ['save', async (id) => { const doc = await ToolModel.findById(id).orFail(); doc.interface = ['api']; return doc.save(); }],
      ['replaceOne', async (id) => { const doc = await ToolModel.findById(id).lean().orFail(); return ToolModel.replaceOne({ _id: id }, { ...toolInput({ id: doc.id }), name: 'Replaced' }); }],
      ['bulkWrite updateOne', (id) => ToolModel.bulkWrite([{ updateOne: { filter: { _id: id }, update: { $pull: { tags: 'demo' } } } }])],
    ];
    for (const [what, write] of writes) {
      const tool = await ToolModel.create(toolInput());
      await runSyncWorker(storeWorker(store, { model, workerId: `S-${what}` }));
      const before = (await ToolModel.findById(tool._id).orFail()).syncMetadata.collections;
      await write(tool._id);
      const after = await ToolModel.findById(tool._id).orFail();
      const expected = computeContentHashes(after.toObject());
      for (const name of SYNC_COLLECTION_NAMES) {
        const state = after.syncMetadata.collections[name];
        expect.soft(state.contentHash, `${what} ${name}`).toBe(expected[name]);
        expect.soft(state.status, `${what} ${name}`).toBe(state.contentHash === before[name].contentHash ? 'synced' : 'stale');
      }
    }
    await ToolModel.deleteOne({});
    await model.db.collection('tools').updateOne({}, { $set: { 'syncMetadata.collections.tools.claimedBy': 'X', 'syncMetadata.collections.tools.claimedUntil': new Date(Date.now() + 60_000) } });
    const stats = await ToolModel.getSyncStats();
    expect(typeof formatStatus(stats)).toBe('string');
  });
});

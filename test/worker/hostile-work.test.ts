import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { runSyncWorker, ToolModel } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';
import { gate, recordingStore, removalsOwed, sleep, storeWorker, useWorkerModels } from '../helpers/worker.js';

/* What the hostile review found the worker doing with odd tools and odd callers. */

const sharedModel = useWorkerModels(useTestDatabase(import.meta.url)).shared;

/** A Proxy every one of whose traps throws: `instanceof` on it throws too. */
function trapsThrow(): object {
  const fail = (): never => { throw new Error('trap'); };
  return new Proxy({}, { get: fail, has: fail, ownKeys: fail, getPrototypeOf: fail, getOwnPropertyDescriptor: fail, apply: fail });
}

const BASE = { embeddingModel: 'e1', pollIntervalMs: 20, pauseBaseMs: 0, stopWhenIdle: true } as const;

describe('whatever embed or remove throws, the worker goes on', () => {
  it('a Proxy thrown by embed is recorded as a failure; the pair is released, and no renewal outlives the worker', { timeout: 20_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    const model = await sharedModel();
    let renewals = 0;
    const counting = new Proxy(model, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (key !== 'extendClaims' || typeof value !== 'function') return value;
        return (...args: unknown[]): unknown => { renewals += 1; return Reflect.apply(value, receiver, args); };
      },
    });
    const store = recordingStore();
    const summary = await runSyncWorker(storeWorker(store, {
      model: counting, leaseMs: 1_000, collections: ['tools'],
      // Long enough for renewals (every third of the lease) to run while it works.
      // A caller's code may throw anything (eslint asks for Errors; a hostile Proxy is the point here).
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      embed: async () => { await sleep(800); throw trapsThrow(); },
    }));
    expect(summary).toMatchObject({ failed: 1, errors: 0 });
    const state = ((await rawTool({ _id: tool._id }))?.syncMetadata as { collections: Record<string, Record<string, unknown>> }).collections.tools;
    expect(state).toMatchObject({ status: 'failed', errorCode: 'UNKNOWN', claimedBy: null, claimedUntil: null, retryCount: 1 });
    expect(String(state?.lastError)).toContain('proxy');
    const after = renewals;
    await sleep(1_200);
    expect(renewals).toBe(after);
  });

  it('a Proxy thrown by remove is recorded as a failed removal, once; no hot loop of re-claims', { timeout: 20_000 }, async () => {
    const tool = await ToolModel.create(toolInput());
    await ToolModel.markCollectionSynced(tool._id, 'usecases', { contentHash: tool.syncMetadata.collections.usecases.contentHash });
    await ToolModel.deleteOne({ _id: tool._id });
    const model = await sharedModel();
    let calls = 0;
    const stop = new AbortController();
    const running = runSyncWorker({
      ...BASE, stopWhenIdle: false, model, signal: stop.signal,
      embed: () => Promise.resolve([0]), upsert: () => Promise.resolve(),
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      remove: () => { calls += 1; return Promise.reject(trapsThrow()); },
    });
    await sleep(1_500);
    stop.abort();
    const summary = await running;
    expect(calls).toBe(1);
    expect(summary).toMatchObject({ removeFailed: 1, removed: 0, errors: 0 });
    expect((await ToolModel.getSyncStats()).deletions.usecases).toEqual({ pending: 0, failed: 1 });
  });
});

describe('a worker never takes back its own work in flight', () => {
  it('each removal runs once and is counted once, however long remove() takes', { timeout: 20_000 }, async () => {
    const tools = await Promise.all(Array.from({ length: 3 }, () => ToolModel.create(toolInput())));
    for (const tool of tools) {
      for (const name of ['tools', 'interface'] as const) {
        await ToolModel.markCollectionSynced(tool._id, name, { contentHash: tool.syncMetadata.collections[name].contentHash });
      }
    }
    await ToolModel.deleteMany({ _id: { $in: tools.map(({ _id }) => _id) } });
    const model = await sharedModel();
    const calls = new Map<string, number>();
    const slow = gate();
    const running = runSyncWorker({
      ...BASE, model, concurrency: 4, pollIntervalMs: 5,
      embed: () => Promise.resolve([0]), upsert: () => Promise.resolve(),
      remove: async (deleted, collection) => {
        const key = `${deleted.pointId}/${collection}`;
        calls.set(key, (calls.get(key) ?? 0) + 1);
        // The worker polls many times while these are in flight.
        await slow.promise;
      },
    });
    await sleep(300);
    slow.open();
    const summary = await running;
    expect(calls.size).toBe(6);
    expect([...calls.values()].every((count) => count === 1)).toBe(true);
    expect(summary.removed).toBe(6);
    expect(await removalsOwed()).toBe(0);
  });
});

describe('tools whose _id is not an ObjectId', () => {
  const legacyIds: unknown[] = [42, 'legacy-tool-7', new mongoose.mongo.UUID('0b6b1a3e-7c1d-4c1e-9f3a-3b0b0f7a9c11')];

  it('are quarantined with a message naming the _id; the worker syncs every other tool; stats and deletes work', { timeout: 30_000 }, async () => {
    // At the head of every queue: legacy documents without metadata, and ones with it.
    for (const [index, _id] of legacyIds.entries()) await insertRaw({ _id, ...toolInput(), ...(index === 0 ? {} : { syncMetadata: null }) });
    const good = await ToolModel.create(toolInput());
    const model = await sharedModel();
    const store = recordingStore();
    const summary = await runSyncWorker(storeWorker(store, { model }));
    expect(summary).toMatchObject({ synced: 4, errors: 0 });
    expect(store.point(good._id, 'tools')).toBeDefined();
    for (const _id of legacyIds) {
      const stored = await rawTool({ _id });
      const state = (stored?.syncMetadata as { collections: Record<string, Record<string, unknown>> } | undefined)?.collections.tools;
      expect(state, String(_id)).toMatchObject({ status: 'failed', errorCode: 'VALIDATION_ERROR' });
      expect(String(state?.lastError)).toMatch(/_id .* is not an ObjectId/);
    }
    const stats = await ToolModel.getSyncStats();
    expect(stats).toMatchObject({ total: 4, quarantined: 3 });
    expect(stats.byCollection.tools).toMatchObject({ synced: 1, failed: 3 });
    // A delete that matches them deletes them all, the ordinary tool with them.
    const deleted = await ToolModel.deleteMany({});
    expect(deleted.deletedCount).toBe(4);
    expect(await removalsOwed()).toBe(4);
  });

  it('findNeedingSync, findRetryable and claimSyncWork never throw on them', async () => {
    for (const _id of legacyIds) await insertRaw({ _id, ...toolInput() });
    await expect(ToolModel.findNeedingSync({ limit: 10 })).resolves.toEqual([]);
    await expect(ToolModel.findRetryable({ limit: 10 })).resolves.toEqual([]);
    await expect(ToolModel.claimSyncWork({ workerId: 'w', limit: 10 })).resolves.toEqual([]);
    expect((await ToolModel.getSyncStats()).quarantined).toBe(3);
  });
});

describe('a failed collection without a retry time', () => {
  it('(another writer stored it null) is due now: claimed and synced', async () => {
    const tool = await ToolModel.create(toolInput());
    await ToolModel.collection.updateOne({ _id: tool._id }, { $set: {
      'syncMetadata.collections.interface.status': 'failed',
      'syncMetadata.collections.interface.errorCode': 'QDRANT_UNAVAILABLE',
      'syncMetadata.collections.interface.retryCount': 1,
      'syncMetadata.collections.interface.nextRetryAt': null,
      'syncMetadata.collections.interface.lastSyncAttemptAt': new Date(),
      'syncMetadata.overallStatus': 'failed',
    } });
    const [claim] = await ToolModel.claimSyncWork({ workerId: 'w', collections: ['interface'] });
    expect(claim?.collections).toEqual([expect.objectContaining({ collection: 'interface', status: 'failed' })]);
  });
});

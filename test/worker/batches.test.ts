import mongoose from 'mongoose';
import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  createRateBudget, createToolModel, runSyncWorker, SYNC_COLLECTION_NAMES, SyncArgumentError, ToolModel,
  type SyncCollectionName, type SyncWorkerEvent, type SyncWorkerOptions, type ToolModelType,
} from '../../src/index.js';
import { conditionalUpdatesAtomic } from '../helpers/capabilities.js';
import { useTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';
import {
  batchEmbedder, batchStoreWorker, clearTombstones, gate, recordingStore, sleep, storeDisagreements, storeWorker, useWorkerModels,
} from '../helpers/worker.js';

/*
 * The worker in batches, against the server, with recording doubles of the embedding API and
 * the vector store: a refused input never fails its neighbours, a rate limit fails and pauses the
 * batch, pairs taken over are never written, several workers embed each pair once, and the
 * database commands per pair.
 */

const database = useTestDatabase(import.meta.url);
const models = useWorkerModels(database);

let monitored: mongoose.Connection[] = [];
afterEach(async () => {
  await Promise.all(monitored.map((connection) => connection.close()));
  monitored = [];
});

/** A model on a connection of pool size 1 whose commands are counted. */
async function countedModel(): Promise<{ model: ToolModelType; commands: string[] }> {
  const connection = await mongoose.createConnection(inject('mongoUri'), { dbName: database.name, maxPoolSize: 1, monitorCommands: true }).asPromise();
  monitored.push(connection);
  const commands: string[] = [];
  connection.getClient().on('commandStarted', (event) => { commands.push(event.commandName); });
  return { model: createToolModel(connection), commands };
}

async function seedTools(count: number, overrides: (index: number) => Record<string, unknown> = () => ({})): Promise<mongoose.Types.ObjectId[]> {
  const tools = Array.from({ length: count }, (_, index) => new ToolModel(toolInput(overrides(index))));
  await ToolModel.insertMany(tools);
  return tools.map(({ _id }) => _id);
}

const stateOf = async (id: mongoose.Types.ObjectId, name: SyncCollectionName): Promise<Record<string, unknown>> =>
  ((await rawTool({ _id: id }))?.syncMetadata as { collections: Record<string, Record<string, unknown>> }).collections[name] ?? {};

const refusal = (): Error => Object.assign(new Error('400 Bad Request: invalid input'), { status: 400 });

/** Every tool × collection × content hash stored now: what a complete sync embeds once each. */
async function storedPairs(): Promise<string[]> {
  return (await ToolModel.find()).flatMap((tool) => SYNC_COLLECTION_NAMES.map((name) => `${String(tool._id)}:${name}:${tool.syncMetadata.collections[name].contentHash}`)).sort();
}

describe('an input the API refuses never fails its neighbours', () => {
  it('an item error in the answer: that pair alone is recorded as VALIDATION_ERROR, the others sync from the same request', async () => {
    const ids = await seedTools(8, (index) => (index === 5 ? { name: 'BAD input' } : {}));
    const embedder = batchEmbedder({ answer: (items) => items.map(({ text }) => (text.includes('BAD') ? refusal() : [0.5])) });
    const store = recordingStore();
    const { options } = batchStoreWorker(store, { model: await models.shared(), collections: ['tools'], batchSize: 8, concurrency: 1, embedBatch: embedder.embedBatch });
    const summary = await runSyncWorker(options);
    expect(summary).toMatchObject({ synced: 7, failed: 1, errors: 0 });
    expect(embedder.requests.map(({ keys }) => keys.length)).toEqual([8]);
    const bad = ids[5];
    if (bad === undefined) throw new Error('no tool');
    expect(await stateOf(bad, 'tools')).toMatchObject({ status: 'failed', errorCode: 'VALIDATION_ERROR', nextRetryAt: null });
    for (const id of ids.filter((_, index) => index !== 5)) expect(await stateOf(id, 'tools')).toMatchObject({ status: 'synced' });
    expect(await storeDisagreements(store)).toEqual([]);
  });

  it('a whole-batch 400 that names no item: the batch is split until the bad input is alone (7 requests for 8 inputs)', async () => {
    const ids = await seedTools(8, (index) => (index === 2 ? { name: 'BAD input' } : {}));
    const embedder = batchEmbedder({
      answer: (items) => {
        if (items.some(({ text }) => text.includes('BAD'))) throw refusal();
        return items.map(() => [0.5]);
      },
    });
    const store = recordingStore();
    const failures: SyncWorkerEvent[] = [];
    const { options } = batchStoreWorker(store, {
      model: await models.shared(), collections: ['tools'], batchSize: 8, concurrency: 1, embedBatch: embedder.embedBatch,
      onEvent: (event) => { if (event.type === 'failed' || event.type === 'paused') failures.push(event); },
    });
    const summary = await runSyncWorker(options);
    expect(summary).toMatchObject({ synced: 7, failed: 1, pauses: 0 });
    // 8; the half with the bad input (4), its halves (2, 2), the bad quarter's (1, 1); the other half (4).
    expect(embedder.requests.map(({ keys }) => keys.length)).toEqual([8, 4, 2, 2, 1, 1, 4]);
    expect([...embedder.embedded.values()]).toEqual(Array.from({ length: 7 }, () => 1));
    const bad = ids[2];
    if (bad === undefined) throw new Error('no tool');
    expect(failures).toEqual([expect.objectContaining({ type: 'failed', toolId: bad, stage: 'embedding', errorCode: 'VALIDATION_ERROR', retryCount: 1 })]);
    const state = await stateOf(bad, 'tools');
    expect(state).toMatchObject({ status: 'failed', errorCode: 'VALIDATION_ERROR', nextRetryAt: null });
    expect(String(state.lastError)).toContain('refused this input');
    expect(store.points.size).toBe(7);
  });
});

describe('a rate limit or an outage fails the batch as a whole', () => {
  it('a 429 for the whole batch: every pair failed with EMBEDDING_RATE_LIMIT, embeddings paused for its Retry-After, then retried', { timeout: 15_000 }, async () => {
    const ids = await seedTools(6);
    const embedder = batchEmbedder({
      answer: (items, request) => {
        if (request === 0) throw Object.assign(new Error('429 Too Many Requests'), { status: 429, headers: new Headers({ 'retry-after-ms': '300' }) });
        return items.map(() => [0.5]);
      },
    });
    let offsetMs = 0;
    const events: SyncWorkerEvent[] = [];
    const store = recordingStore();
    const { options } = batchStoreWorker(store, {
      model: await models.shared(), collections: ['usecases'], batchSize: 6, concurrency: 2, embedBatch: embedder.embedBatch,
      // Once paused, a clock past the first backoff: the failed pairs are due again.
      clock: () => new Date(Date.now() + offsetMs),
      onEvent: (event) => {
        if (event.type === 'paused') offsetMs = 2 * 60 * 60 * 1000;
        if (event.type === 'paused' || event.type === 'failed') events.push(event);
      },
    });
    const summary = await runSyncWorker(options);
    expect(summary).toMatchObject({ failed: 6, synced: 6, pauses: 1 });
    const paused = events.find((event) => event.type === 'paused');
    expect(paused).toMatchObject({ stage: 'embedding', errorCode: 'EMBEDDING_RATE_LIMIT', pauseMs: 300 });
    expect(events.filter((event) => event.type === 'failed')).toHaveLength(6);
    expect(events.every((event) => event.type === 'paused' || (event.type === 'failed' && event.errorCode === 'EMBEDDING_RATE_LIMIT'))).toBe(true);
    // The retry waited for the pause; every pair was sent twice, once in each request.
    const [first, second] = embedder.requests;
    expect(embedder.requests).toHaveLength(2);
    expect(second?.at).toBeGreaterThanOrEqual((paused?.type === 'paused' ? paused.until.getTime() : Number.NaN) - 1);
    expect(second?.keys.sort()).toEqual(first?.keys.sort());
    for (const id of ids) expect(await stateOf(id, 'usecases')).toMatchObject({ status: 'synced', retryCount: 0 });
  });

  it('an unavailable store fails the batch at the qdrant stage and pauses writes', async () => {
    const ids = await seedTools(3);
    let refuse = true;
    const store = recordingStore();
    const events: SyncWorkerEvent[] = [];
    const { options } = batchStoreWorker(store, { model: await models.shared(), collections: ['interface'], batchSize: 4, pauseBaseMs: 50, onEvent: (event) => { events.push(event); } });
    const summary = await runSyncWorker({
      ...options,
      upsertBatch: async (collection, items, context) => {
        if (refuse) {
          refuse = false;
          throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6333'), { code: 'ECONNREFUSED' });
        }
        await options.upsertBatch?.(collection, items, context);
      },
    });
    expect(summary).toMatchObject({ failed: 3, pauses: 1 });
    const failed = events.flatMap((event) => (event.type === 'failed' ? [[event.stage, event.errorCode]] : []));
    expect(failed).toEqual(Array.from({ length: 3 }, () => ['qdrant', 'QDRANT_UNAVAILABLE']));
    expect(events.find((event) => event.type === 'paused')).toMatchObject({ stage: 'qdrant', errorCode: 'QDRANT_UNAVAILABLE' });
    for (const id of ids) expect(await stateOf(id, 'interface')).toMatchObject({ status: 'failed', errorCode: 'QDRANT_UNAVAILABLE', claimedBy: null });
  });
});

describe('pairs of a batch that another worker took over', () => {
  it('are claim-lost at the renewal and never written; the rest of the batch is written and marked', { timeout: 15_000 }, async () => {
    const ids = await seedTools(4);
    const started = gate();
    const release = gate();
    let aborted = false;
    const events: SyncWorkerEvent[] = [];
    const store = recordingStore();
    const { options, storeRequests } = batchStoreWorker(store, {
      model: await models.shared(), workerId: 'A', collections: ['interface'], batchSize: 4, leaseMs: 1_500,
      embedBatch: async (items, { signal }) => {
        signal.addEventListener('abort', () => { aborted = true; });
        started.open();
        await release.promise;
        return items.map(() => [0.5]);
      },
      onEvent: (event) => { if (event.type === 'claim-lost') events.push(event); },
    });
    const running = runSyncWorker(options);
    await started.promise;
    // Another worker holds two of them now (their lease ended by its clock).
    const taken = ids.slice(0, 2);
    await ToolModel.collection.updateMany({ _id: { $in: taken } }, { $set: {
      'syncMetadata.collections.interface.claimedBy': 'B', 'syncMetadata.collections.interface.claimedUntil': new Date(Date.now() + 60_000),
    } });
    while (events.length < 2) await sleep(20);
    release.open();
    const summary = await running;
    expect(summary).toMatchObject({ synced: 2, claimLost: 2, reopened: 0 });
    expect(events.map((event) => event.type === 'claim-lost' && event.during)).toEqual(['renewal', 'renewal']);
    expect(aborted).toBe(false);
    expect(storeRequests.map(({ keys }) => keys.length)).toEqual([2]);
    for (const id of taken) {
      expect(store.point(id, 'interface')).toBeUndefined();
      expect(await stateOf(id, 'interface')).toMatchObject({ status: 'pending', claimedBy: 'B' });
    }
    for (const id of ids.slice(2)) expect(await stateOf(id, 'interface')).toMatchObject({ status: 'synced', claimedBy: null });
  });

  it('a batch write that lands after a takeover re-opens those pairs, and the next worker leaves the store right', { timeout: 20_000 }, async () => {
    await seedTools(2);
    const model = await models.shared();
    const renewalsFail = new Proxy(model, {
      get(target, key, receiver) {
        if (key === 'extendClaims') return () => Promise.reject(new mongoose.mongo.MongoNetworkError('connection reset'));
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const store = recordingStore();
    const writing = gate();
    const landing = gate();
    const { options } = batchStoreWorker(store, { model: renewalsFail, workerId: 'A', collections: ['tools'], batchSize: 2, leaseMs: 1_000 });
    const slow = runSyncWorker({
      ...options,
      upsertBatch: async (collection, items, context) => {
        writing.open();
        await landing.promise;
        await options.upsertBatch?.(collection, items, context);
      },
    });
    await writing.promise;
    // A's lease has ended by B's clock: B embeds both pairs and marks them.
    const inTwoSeconds = (): Date => new Date(Date.now() + 2_000);
    expect(await runSyncWorker(batchStoreWorker(store, { model, workerId: 'B', collections: ['tools'], clock: inTwoSeconds }).options)).toMatchObject({ synced: 2 });
    landing.open();
    // A (still running) or C embeds them again.
    expect(await slow).toMatchObject({ claimLost: 2, reopened: 2 });
    await runSyncWorker(storeWorker(store, { model, workerId: 'C', collections: ['tools'] }));
    expect(await storeDisagreements(store)).toEqual([]);
    expect((await ToolModel.getSyncStats()).byCollection.tools).toMatchObject({ synced: 2 });
  });
});

describe('several batched workers', () => {
  it.each([2, 4])('%i workers embed every tool × collection exactly once per content version, in batches', { timeout: 30_000 }, async (count) => {
    await seedTools(20);
    const shared = await models.shared();
    const expected = await storedPairs();
    const embedder = batchEmbedder({ delayMs: () => Math.floor(Math.random() * 5) });
    const store = recordingStore();
    // Atomic engines: a connection each; FerretDB 1.x: one connection the server serves a command at a time (see run-sync-worker.test.ts).
    const atomic = (await conditionalUpdatesAtomic(inject('mongoUri'), database.name)).atomic;
    const workers = atomic ? await models.several(count) : Array.from({ length: count }, () => shared);
    const summaries = await Promise.all(workers.map((model, index) => runSyncWorker(batchStoreWorker(store, {
      model, workerId: `worker-${index + 1}`, batchSize: 8, concurrency: 2, embedBatch: embedder.embedBatch,
    }).options)));
    expect([...embedder.embedded.keys()].sort()).toEqual(expected);
    expect([...embedder.embedded.values()].every((times) => times === 1)).toBe(true);
    expect(summaries.reduce((sum, summary) => sum + summary.synced, 0)).toBe(80);
    expect(summaries.every((summary) => summary.errors === 0 && summary.claimLost === 0 && summary.stoppedBy === 'idle')).toBe(true);
    expect(embedder.requests.every(({ keys }) => keys.length <= 8)).toBe(true);
    expect(embedder.requests.length).toBeLessThan(80 / 2);
    expect(await storeDisagreements(store)).toEqual([]);
  });
});

describe('database commands', () => {
  it('a worker in batches of 16 sends at most a quarter of the commands per pair of one pair at a time (claims, renewals and marks in bulk)', { timeout: 30_000 }, async () => {
    const runs: Record<string, { commands: string[]; pairs: number }> = {};
    for (const [name, extra] of [['batches', { batchSize: 16 }], ['per pair', { embedBatch: undefined, embed: () => Promise.resolve([0.5]) }]] as const) {
      await ToolModel.deleteMany({});
      await clearTombstones();
      await seedTools(20);
      const { model, commands } = await countedModel();
      // Polled less often than the other tests here: the end of a run (claims finding nothing while the last batches finish) is not what is measured.
      const { options } = batchStoreWorker(recordingStore(), { model, concurrency: 4, pollIntervalMs: 200, ...extra });
      const summary = await runSyncWorker(options);
      expect(summary.synced).toBe(80);
      runs[name] = { commands, pairs: summary.synced };
    }
    const perPair = (name: string): number => (runs[name]?.commands.length ?? Number.NaN) / (runs[name]?.pairs ?? 1);
    const counted = (name: string): string => [...new Set(runs[name]?.commands)].map((command) => `${command} ${runs[name]?.commands.filter((one) => one === command).length ?? 0}`).join(', ');
    console.log(`[figure] 20 tools, concurrency 4: batches of 16 ${perPair('batches').toFixed(3)} database commands per pair (${counted('batches')}); `
      + `one pair at a time ${perPair('per pair').toFixed(3)} (${counted('per pair')})`);
    // The claims, marks and lease renewals of a batch are one command each (or one per 25 statements), whatever its size.
    // (At this size most of the batches' commands are the run's end: claims finding nothing while the last batches finish; see the bench for a run's steady state.)
    expect(perPair('batches')).toBeLessThanOrEqual(perPair('per pair') / 4);
    expect(perPair('batches')).toBeLessThanOrEqual(1);
  });
});

describe('removals in batches', () => {
  it("removes deleted tools' points with one store request per collection and batch, and marks them in bulk", async () => {
    const ids = await seedTools(5);
    const store = recordingStore();
    const model = await models.shared();
    await runSyncWorker(batchStoreWorker(store, { model }).options);
    await ToolModel.deleteMany({ _id: { $in: ids } });
    const { options, storeRequests } = batchStoreWorker(store, { model, batchSize: 8 });
    expect(await runSyncWorker(options)).toMatchObject({ removed: 20, removeFailed: 0 });
    expect(storeRequests.map(({ collection, keys }) => [collection, keys.length])).toEqual(SYNC_COLLECTION_NAMES.map((name) => [name, 5]));
    expect(store.points.size).toBe(0);
  });
});

describe('call events', () => {
  type CallEvent = Extract<SyncWorkerEvent, { type: 'call' }>;
  const calls = (events: SyncWorkerEvent[]): string[] => events.filter((event): event is CallEvent => event.type === 'call')
    .map(({ stage, collection, items, outcome }) => `${stage} ${collection} ${items} ${outcome}`).sort();

  it('one per request of the batch callbacks, with its items, stage and outcome, and a duration', async () => {
    const ids = await seedTools(5);
    const store = recordingStore();
    const model = await models.shared();
    const events: SyncWorkerEvent[] = [];
    const down = Object.assign(new Error('503 Service Unavailable'), { status: 503 });
    let failedOnce = false;
    const embedder = batchEmbedder({ answer: (items) => {
      if (!failedOnce) {
        failedOnce = true;
        throw down;
      }
      return items.map(() => [0.5]);
    } });
    const synced = await runSyncWorker(batchStoreWorker(store, {
      model, collections: ['tools'], batchSize: 4, concurrency: 1, maxRetries: 1, embedBatch: embedder.embedBatch, onEvent: (event) => { events.push(event); },
    }).options);
    expect(synced).toMatchObject({ synced: 1, failed: 4 });
    expect(calls(events)).toEqual(['embed tools 1 ok', 'embed tools 4 error', 'upsert tools 1 ok']);
    const timed = events.filter((event): event is CallEvent => event.type === 'call');
    expect(timed.every(({ durationMs, workerId }) => Number.isFinite(durationMs) && durationMs >= 0 && workerId === synced.workerId)).toBe(true);
    await ToolModel.deleteMany({ _id: { $in: ids } });
    events.length = 0;
    expect(await runSyncWorker(batchStoreWorker(store, { model, batchSize: 8, onEvent: (event) => { events.push(event); } }).options)).toMatchObject({ removed: 5 });
    expect(calls(events)).toEqual(['remove tools 5 ok']);
  });

  it('one per call of the per-pair callbacks', async () => {
    await seedTools(3);
    const store = recordingStore();
    const events: SyncWorkerEvent[] = [];
    const summary = await runSyncWorker(storeWorker(store, {
      model: await models.shared(), collections: ['usecases'], concurrency: 2,
      upsert: () => Promise.reject(Object.assign(new Error('400 Bad Request: wrong vector size'), { status: 400 })),
      onEvent: (event) => { events.push(event); },
    }));
    expect(summary).toMatchObject({ failed: 3 });
    expect(calls(events)).toEqual([...Array.from({ length: 3 }, () => 'embed usecases 1 ok'), ...Array.from({ length: 3 }, () => 'upsert usecases 1 error')]);
  });
});

describe('the rate budget', () => {
  it('two workers sharing one budget stay under its requests and tokens per minute (counted in the double), within one request', { timeout: 20_000 }, async () => {
    await seedTools(10);
    const shared = await models.shared();
    // 20 requests and 2,000 tokens a second; 200 tokens a request of 4: the tokens bind (one request each 100 ms).
    const budget = createRateBudget({ requestsPerMinute: 1_200, tokensPerMinute: 120_000, countTokens: () => 50 });
    const embedder = batchEmbedder();
    const store = recordingStore();
    await Promise.all(['A', 'B'].map((workerId) => runSyncWorker(batchStoreWorker(store, {
      model: shared, workerId, batchSize: 4, concurrency: 2, embedBatch: embedder.embedBatch, rateLimits: { embedding: budget },
    }).options)));
    const sent = embedder.requests.map(({ at, keys }) => ({ at, tokens: keys.length * 50 }));
    expect(sent.reduce((sum, { tokens }) => sum + tokens, 0)).toBe(40 * 50);
    for (const windowMs of [500, 1_000]) {
      for (const { at } of sent) {
        const inside = sent.filter((other) => other.at >= at && other.at < at + windowMs);
        // The per-minute limits over this window, plus the one request the pacing allows beyond them.
        expect(inside.length).toBeLessThanOrEqual((1_200 * windowMs) / 60_000 + 1);
        expect(inside.reduce((sum, one) => sum + one.tokens, 0)).toBeLessThanOrEqual((120_000 * windowMs) / 60_000 + 200);
      }
    }
    // Paced, not sent at once: the requests before the last took their tokens' share of the minute (less the event loop's jitter).
    const span = (sent[sent.length - 1]?.at ?? 0) - (sent[0]?.at ?? 0);
    expect(span).toBeGreaterThanOrEqual(((40 * 50 - 200) * 60_000) / 120_000 - 30);
    expect(await storeDisagreements(store)).toEqual([]);
  });

  it('a batch whose tokens exceed the tokens per minute is split to fit; an input over it alone is a VALIDATION_ERROR', { timeout: 20_000 }, async () => {
    const ids = await seedTools(4, (index) => (index === 1 ? { description: 'HUGE input' } : {}));
    const embedder = batchEmbedder();
    const store = recordingStore();
    const { options } = batchStoreWorker(store, {
      model: await models.shared(), collections: ['tools'], batchSize: 4, embedBatch: embedder.embedBatch,
      rateLimits: { embedding: { tokensPerMinute: 1_000, countTokens: (text) => (text.includes('HUGE') ? 2_000 : 10) } },
    });
    expect(await runSyncWorker(options)).toMatchObject({ synced: 3, failed: 1 });
    // [a, HUGE] is over the budget: a alone, HUGE refused; [c, d] fits.
    expect(embedder.requests.map(({ keys }) => keys.length)).toEqual([1, 2]);
    const huge = ids[1];
    if (huge === undefined) throw new Error('no tool');
    const state = await stateOf(huge, 'tools');
    expect(state).toMatchObject({ status: 'failed', errorCode: 'VALIDATION_ERROR' });
    expect(String(state.lastError)).toContain('tokensPerMinute');
  });
});

describe('the store budget', () => {
  it('paces store writes (and removals) to its requests per minute', { timeout: 15_000 }, async () => {
    await seedTools(12);
    const store = recordingStore();
    const { options, storeRequests } = batchStoreWorker(store, {
      model: await models.shared(), collections: ['interface'], batchSize: 4, concurrency: 3, rateLimits: { store: { requestsPerMinute: 600 } },
    });
    expect(await runSyncWorker(options)).toMatchObject({ synced: 12 });
    expect(storeRequests).toHaveLength(3);
    // One request each 100 ms at most: three take at least 200 ms (less the event loop's jitter).
    expect((storeRequests[2]?.at ?? 0) - (storeRequests[0]?.at ?? 0)).toBeGreaterThanOrEqual(200 - 30);
  });
});

describe('options', () => {
  it('refuses both or neither of a per-pair and a batch callback, and batches with the per-pair embed', async () => {
    const model = await models.shared();
    const base = batchStoreWorker(recordingStore(), { model }).options;
    const refused = async (options: Record<string, unknown>): Promise<unknown> => runSyncWorker(options as unknown as SyncWorkerOptions).catch((error: unknown) => error);
    expect(await refused({ ...base, embed: () => Promise.resolve([0]) })).toBeInstanceOf(SyncArgumentError);
    expect(String(await refused({ ...base, embedBatch: undefined }))).toMatch(/embed/);
    expect(String(await refused({ ...base, embedBatch: undefined, embed: () => Promise.resolve([0]), batchSize: 8 }))).toMatch(/batchSize.*embedBatch/);
    expect(String(await refused({ ...base, batchSize: 0 }))).toMatch(/batchSize/);
    expect(String(await refused({ ...base, rateLimits: { embedding: { requestsPerMinute: -1 } } }))).toMatch(/rateLimits\.embedding\.requestsPerMinute/);
    expect(String(await refused({ ...base, rateLimits: { store: { tokensPerMinute: 5 } } }))).toMatch(/rateLimits\.store\.tokensPerMinute/);
    expect(String(await refused({ ...base, rateLimits: { embeding: {} } }))).toMatch(/rateLimits\.embeding/);
    expect(await ToolModel.countDocuments()).toBe(0);
  });
});

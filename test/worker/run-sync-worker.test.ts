import mongoose from 'mongoose';
import { afterEach, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import {
  createToolModel, runSyncWorker, SyncArgumentError, SYNC_COLLECTION_NAMES, TOMBSTONE_COLLECTION, ToolModel,
  type ITool, type SyncCallContext, type SyncCollectionName, type SyncWorkerEvent, type SyncWorkerOptions, type ToolModelType,
} from '../../src/index.js';
import { conditionalUpdatesAtomic, type Atomicity } from '../helpers/capabilities.js';
import { engine, useTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';

const database = useTestDatabase(import.meta.url);

let atomicity: Atomicity = { atomic: false, evidence: 'not probed' };
let connections: mongoose.Connection[] = [];

beforeAll(async () => {
  atomicity = await conditionalUpdatesAtomic(inject('mongoUri'), database.name);
  if (!atomicity.atomic) {
    console.log(
      `[skip reason] ${engine()} ${inject('dbEngineVersion')}: concurrent conditional updates of one document are not atomic (${atomicity.evidence}), ` +
        'so workers on separate connections could both win one claim. The multi-connection variant of these tests needs MongoDB (set MONGODB_URI); ' +
        'here the workers share one connection with maxPoolSize 1, so the server sees one command at a time (their claims, calls and marks still interleave).',
    );
  }
});

afterEach(async () => {
  await Promise.all(connections.map((connection) => connection.close()));
  connections = [];
});

beforeEach(async () => {
  await ToolModel.deleteMany({});
  // Each test starts with no removals owed (the deletes above leave tombstones for the tools that had points).
  await ToolModel.db.collection(TOMBSTONE_COLLECTION).deleteMany({});
});

/**
 * A Tool model for each of `count` workers: a connection each where the server's single-document
 * updates are atomic; otherwise one connection of pool size 1, shared (see the [skip reason] line).
 */
async function workerModels(count: number): Promise<ToolModelType[]> {
  const open = (options: mongoose.ConnectOptions = {}): Promise<mongoose.Connection> =>
    mongoose.createConnection(inject('mongoUri'), { dbName: database.name, ...options }).asPromise();
  if (atomicity.atomic) {
    const own = await Promise.all(Array.from({ length: count }, () => open()));
    connections.push(...own);
    return own.map((connection) => createToolModel(connection));
  }
  const shared = await open({ maxPoolSize: 1 });
  connections.push(shared);
  return Array.from({ length: count }, () => createToolModel(shared));
}

async function workerModel(): Promise<ToolModelType> {
  const [model] = await workerModels(1);
  if (model === undefined) throw new Error('no model');
  return model;
}

async function seedTools(count: number): Promise<mongoose.Types.ObjectId[]> {
  const tools = Array.from({ length: count }, () => new ToolModel(toolInput()));
  await ToolModel.insertMany(tools);
  return tools.map((tool) => tool._id);
}

/** The options every worker here shares: the embedding model it records, and a vector store's removal (no deletions here but below). */
const CALLER = { embeddingModel: 'simulated-embedder-1', remove: (): Promise<void> => Promise.resolve() };

/** `model`, whose first call of `method` the database "refuses" (a reset connection). */
function refusingFirst(model: ToolModelType, method: 'claimSyncWork' | 'claimVectorDeletions'): ToolModelType {
  let refused = false;
  return new Proxy(model, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (key !== method || typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        if (refused) return Reflect.apply(value, receiver, args);
        refused = true;
        return Promise.reject(new mongoose.mongo.MongoNetworkError('connection reset'));
      };
    },
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise to resolve from outside. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open: (value: T) => void = () => undefined;
  const promise = new Promise<T>((resolve) => { open = resolve; });
  return { promise, open };
}

const pairKey = (tool: ITool, collection: SyncCollectionName, contentHash: string): string => `${String(tool._id)}:${collection}:${contentHash}`;

/** Every tool × collection × content hash stored now: what a complete sync embeds once each. */
async function storedPairs(): Promise<string[]> {
  const tools = await ToolModel.find();
  return tools.flatMap((tool) => SYNC_COLLECTION_NAMES.map((name) => pairKey(tool, name, tool.syncMetadata.collections[name].contentHash))).sort();
}

/**
 * The caller's embedding API and Qdrant, simulated: counts embed calls per tool × collection × hash
 * and the calls in progress, with a short random delay so that concurrent workers interleave.
 */
function simulatedTarget(delayMs: () => number = () => Math.floor(Math.random() * 4)) {
  const embedded = new Map<string, number>();
  let active = 0;
  let mostActive = 0;
  const embed = async (tool: ITool, collection: SyncCollectionName, { contentHash }: SyncCallContext): Promise<number[]> => {
    const key = pairKey(tool, collection, contentHash);
    embedded.set(key, (embedded.get(key) ?? 0) + 1);
    active += 1;
    mostActive = Math.max(mostActive, active);
    await sleep(delayMs());
    return [0.1, 0.2, 0.3];
  };
  const upsert = async (): Promise<void> => {
    await sleep(delayMs());
    active -= 1;
  };
  return { embed, upsert, embedded, mostActive: () => mostActive };
}

function statusOf(tool: Record<string, unknown> | null, name: SyncCollectionName): Record<string, unknown> {
  const collections = (tool?.syncMetadata as { collections?: Record<string, Record<string, unknown>> } | undefined)?.collections;
  return collections?.[name] ?? {};
}

async function expectAllSynced(tools: number): Promise<void> {
  const stats = await ToolModel.getSyncStats();
  for (const name of SYNC_COLLECTION_NAMES) expect(stats.byCollection[name], name).toMatchObject({ synced: tools, pending: 0, stale: 0, failed: 0 });
  expect(stats.inFlight).toEqual({ tools: 0, functionality: 0, usecases: 0, interface: 0 });
}

describe('several workers over the same tools', () => {
  it.each([2, 4])('%i workers embed every tool × collection exactly once per content version, and all end synced', { timeout: 60_000 }, async (count) => {
    await seedTools(12);
    const expected = await storedPairs();
    const target = simulatedTarget();
    const models = await workerModels(count);
    const summaries = await Promise.all(models.map((model, i) => runSyncWorker({ ...CALLER,
      model, embed: target.embed, upsert: target.upsert, workerId: `worker-${i + 1}`, concurrency: 16, stopWhenIdle: true, pollIntervalMs: 20,
    })));

    expect([...target.embedded.keys()].sort()).toEqual(expected);
    expect([...target.embedded.values()].every((calls) => calls === 1)).toBe(true);
    expect(summaries.reduce((sum, summary) => sum + summary.synced, 0)).toBe(48);
    expect(summaries.reduce((sum, summary) => sum + summary.claimed, 0)).toBe(48);
    expect(summaries.every((summary) => summary.stoppedBy === 'idle' && summary.errors === 0 && summary.claimLost === 0)).toBe(true);
    // The work was shared, not done by one worker while the others waited.
    expect(summaries.filter((summary) => summary.synced > 0).length).toBeGreaterThanOrEqual(2);
    await expectAllSynced(12);
    // Each collection marked synced once: its vector version went from 0 to 1.
    const versions = (await ToolModel.find()).flatMap((tool) => SYNC_COLLECTION_NAMES.map((name) => tool.syncMetadata.collections[name].vectorVersion));
    expect(new Set(versions)).toEqual(new Set([1]));
  });

  it('a worker killed mid-lease loses no work: once its lease ends, another worker syncs what it held', { timeout: 60_000 }, async () => {
    await seedTools(6);
    const expected = await storedPairs();
    const model = await workerModel();
    // The killed worker: it claims, and never embeds, marks, renews or releases.
    const held = await model.claimSyncWork({ workerId: 'killed', limit: 6, leaseMs: 3_000 });
    const heldPairs = new Set(held.flatMap(({ tool, collections }) => collections.map(({ collection, contentHash }) => pairKey(tool, collection, contentHash))));
    const leaseEnds = Math.max(...held.flatMap(({ collections }) => collections.map(({ claimedUntil }) => claimedUntil.getTime())));
    expect(heldPairs.size).toBe(6);

    const embeddedAt = new Map<string, number>();
    const target = simulatedTarget(() => 0);
    const embed: SyncWorkerOptions['embed'] = (tool, collection, context) => {
      embeddedAt.set(pairKey(tool, collection, context.contentHash), Date.now());
      return target.embed(tool, collection, context);
    };
    const options = { ...CALLER, model, embed, upsert: target.upsert, stopWhenIdle: true, pollIntervalMs: 20 };
    const before = await runSyncWorker({ ...CALLER, ...options, workerId: 'survivor-1' });
    await sleep(Math.max(0, leaseEnds - Date.now()) + 50);
    const after = await runSyncWorker({ ...CALLER, ...options, workerId: 'survivor-2' });

    expect(before.synced + after.synced).toBe(24);
    expect([...target.embedded.keys()].sort()).toEqual(expected);
    expect([...target.embedded.values()].every((calls) => calls === 1)).toBe(true);
    // What the killed worker held was left alone until its lease ended.
    for (const key of heldPairs) expect(embeddedAt.get(key), key).toBeGreaterThanOrEqual(leaseEnds);
    await expectAllSynced(6);
  });
});

describe('runSyncWorker', () => {
  it('never has more than `concurrency` pairs in work, and claims no more than it can start', async () => {
    await seedTools(4);
    const target = simulatedTarget(() => 15);
    const claims: number[] = [];
    const summary = await runSyncWorker({ ...CALLER,
      model: await workerModel(), embed: target.embed, upsert: target.upsert, concurrency: 3, stopWhenIdle: true, pollIntervalMs: 20,
      onEvent: (event) => { if (event.type === 'claimed') claims.push(event.pairs.length); },
    });
    expect(summary.synced).toBe(16);
    expect(target.mostActive()).toBe(3);
    expect(Math.max(...claims)).toBeLessThanOrEqual(3);
    // Refilled in batches (at least half the slots), not pair by pair, while work waits.
    expect(claims.slice(0, -1).every((pairs) => pairs >= 2)).toBe(true);
    expect(claims.reduce((sum, pairs) => sum + pairs, 0)).toBe(16);
  });

  it('records the embedding model it was given with each vector', async () => {
    const [id] = await seedTools(1);
    const target = simulatedTarget(() => 0);
    const options = { ...CALLER, model: await workerModel(), embed: target.embed, upsert: target.upsert, stopWhenIdle: true, collections: ['tools' as const] };
    await runSyncWorker({ ...CALLER, ...options, embeddingModel: 'text-embedding-3-small' });
    expect(statusOf(await rawTool({ _id: id }), 'tools')).toMatchObject({ status: 'synced', embeddingModel: 'text-embedding-3-small' });
    // The model changes: flagged, re-embedded, recorded.
    expect(await ToolModel.flagEmbeddingModelChange('tools', 'text-embedding-3-large')).toBe(1);
    await runSyncWorker({ ...options, embeddingModel: 'text-embedding-3-large' });
    expect(statusOf(await rawTool({ _id: id }), 'tools')).toMatchObject({ status: 'synced', embeddingModel: 'text-embedding-3-large', vectorVersion: 2 });
  });

  it('pauses new embeddings for as long as a rate limit\'s Retry-After asks, and records the failure', async () => {
    const [firstTool] = await seedTools(2);
    const log: { kind: 'start' | 'claimed' | 'paused'; at: number }[] = [];
    const target = simulatedTarget(() => 2);
    let limited = false;
    const pauses: SyncWorkerEvent[] = [];
    const summary = await runSyncWorker({ ...CALLER,
      model: await workerModel(),
      embed: async (tool, collection, context) => {
        log.push({ kind: 'start', at: Date.now() });
        if (!limited && String(tool._id) === String(firstTool) && collection === 'tools') {
          limited = true;
          throw Object.assign(new Error('429 Too Many Requests'), { status: 429, headers: new Headers({ 'retry-after-ms': '300' }) });
        }
        return target.embed(tool, collection, context);
      },
      upsert: target.upsert,
      concurrency: 2,
      stopWhenIdle: true,
      pollIntervalMs: 20,
      onEvent: (event) => {
        if (event.type === 'claimed') log.push({ kind: 'claimed', at: Date.now() });
        if (event.type !== 'paused') return;
        pauses.push(event);
        log.push({ kind: 'paused', at: event.until.getTime() });
      },
    });

    expect(pauses).toEqual([expect.objectContaining({ stage: 'embedding', errorCode: 'EMBEDDING_RATE_LIMIT', pauseMs: 300, retryAfterMs: 300 })]);
    // Every embedding and claim begun once the worker knew of the rate limit waited for the pause to end.
    const pausedAt = log.findIndex((entry) => entry.kind === 'paused');
    const until = log[pausedAt]?.at ?? Number.NaN;
    const after = log.slice(pausedAt + 1);
    expect(after.filter((entry) => entry.kind === 'start').length).toBeGreaterThan(0);
    expect(after.filter((entry) => entry.kind === 'claimed').length).toBeGreaterThan(0);
    for (const entry of after) expect(entry.at, entry.kind).toBeGreaterThanOrEqual(until);
    expect(summary).toMatchObject({ synced: 7, failed: 1, pauses: 1 });
    expect(statusOf(await rawTool({ _id: firstTool }), 'tools')).toMatchObject({ status: 'failed', errorCode: 'EMBEDDING_RATE_LIMIT', retryCount: 1, claimedBy: null });
  });

  it('pauses new upserts while Qdrant is unavailable, for as long as its Retry-After asks', async () => {
    await seedTools(1);
    const upserts: number[] = [];
    let until = Number.NaN;
    let failed = false;
    const summary = await runSyncWorker({ ...CALLER,
      model: await workerModel(),
      // The other pairs are still embedding when 'tools' finds Qdrant down.
      embed: async (_tool, collection) => {
        if (collection !== 'tools') await sleep(50);
        return [1];
      },
      upsert: (_tool, collection) => {
        if (collection === 'tools' && !failed) {
          failed = true;
          return Promise.reject(Object.assign(new Error('503 Service Unavailable'), { status: 503, headers: { 'retry-after-ms': '300' } }));
        }
        upserts.push(Date.now());
        return Promise.resolve();
      },
      stopWhenIdle: true,
      onEvent: (event) => { if (event.type === 'paused') until = event.until.getTime(); },
    });
    expect(summary).toMatchObject({ synced: 3, failed: 1, pauses: 1 });
    expect(upserts).toHaveLength(3);
    for (const at of upserts) expect(at).toBeGreaterThanOrEqual(until);
  });

  it('records failures with their error codes by stage, and retries them once their backoff has passed', async () => {
    const [timeout, outage, invalid] = await seedTools(3);
    const failOnce = new Set([`${String(timeout)}:functionality`, `${String(outage)}:interface`]);
    const target = simulatedTarget(() => 0);
    const worker = (extra: Partial<SyncWorkerOptions> = {}) => workerModel().then((model) => runSyncWorker({ ...CALLER,
      model,
      embed: (tool, collection, context) => {
        if (String(tool._id) === String(invalid) && collection === 'usecases') {
          throw Object.assign(new Error('input contains a character the embedding API refuses'), { name: 'ValidationError' });
        }
        if (String(tool._id) === String(timeout) && failOnce.delete(`${String(tool._id)}:${collection}`)) throw new DOMException('The operation timed out', 'TimeoutError');
        return target.embed(tool, collection, context);
      },
      upsert: async (tool, collection) => {
        if (failOnce.delete(`${String(tool._id)}:${collection}`)) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6333'), { code: 'ECONNREFUSED' });
        await target.upsert();
      },
      stopWhenIdle: true,
      pollIntervalMs: 20,
      pauseBaseMs: 10,
      ...extra,
    }));
    const failures: SyncWorkerEvent[] = [];
    const first = await worker({ onEvent: (event) => { if (event.type === 'failed' || event.type === 'paused') failures.push(event); } });
    expect(first).toMatchObject({ synced: 9, failed: 3 });
    expect(failures).toEqual(expect.arrayContaining([
      expect.objectContaining({ type: 'failed', collection: 'functionality', stage: 'embedding', errorCode: 'EMBEDDING_TIMEOUT', retryCount: 1 }),
      expect.objectContaining({ type: 'failed', collection: 'interface', stage: 'qdrant', errorCode: 'QDRANT_UNAVAILABLE', retryCount: 1 }),
      expect.objectContaining({ type: 'failed', collection: 'usecases', stage: 'embedding', errorCode: 'VALIDATION_ERROR', retryCount: 1 }),
      // An unavailable Qdrant pauses upserts; a timeout and a validation error pause nothing.
      expect.objectContaining({ type: 'paused', stage: 'qdrant', errorCode: 'QDRANT_UNAVAILABLE', pauseMs: 10 }),
    ]));
    expect(failures.filter((event) => event.type === 'paused')).toHaveLength(1);
    const timedOut = statusOf(await rawTool({ _id: timeout }), 'functionality');
    expect(timedOut).toMatchObject({ status: 'failed', errorCode: 'EMBEDDING_TIMEOUT', retryCount: 1 });
    expect((timedOut.nextRetryAt as Date).getTime()).toBeGreaterThan(Date.now());
    expect(statusOf(await rawTool({ _id: outage }), 'interface')).toMatchObject({ status: 'failed', errorCode: 'QDRANT_UNAVAILABLE', retryCount: 1 });
    expect(statusOf(await rawTool({ _id: invalid }), 'usecases')).toMatchObject({ status: 'failed', errorCode: 'VALIDATION_ERROR', nextRetryAt: null });

    // Not due yet: nothing to claim.
    expect((await worker()).claimed).toBe(0);
    // Two hours later (a clock past every first backoff): both retried and synced; the invalid text waits for an edit.
    const later = await worker({ clock: () => new Date(Date.now() + 2 * 60 * 60 * 1000) });
    expect(later).toMatchObject({ claimed: 2, synced: 2, failed: 0 });
    expect(statusOf(await rawTool({ _id: timeout }), 'functionality')).toMatchObject({ status: 'synced', retryCount: 0, errorCode: null });
    expect(statusOf(await rawTool({ _id: outage }), 'interface')).toMatchObject({ status: 'synced', retryCount: 0, errorCode: null });
    expect(statusOf(await rawTool({ _id: invalid }), 'usecases')).toMatchObject({ status: 'failed', errorCode: 'VALIDATION_ERROR' });
  });

  it('stops on its signal: aborts the calls in flight, waits for them, releases their claims, marks nothing failed', async () => {
    await seedTools(2);
    const controller = new AbortController();
    const signals: AbortSignal[] = [];
    const threeStarted = gate();
    const events: SyncWorkerEvent['type'][] = [];
    const summary = await runSyncWorker({ ...CALLER,
      model: await workerModel(),
      workerId: 'stopping',
      concurrency: 3,
      signal: controller.signal,
      embed: (_tool, _collection, { signal }) => new Promise((_resolve, reject) => {
        signals.push(signal);
        if (signals.length === 3) threeStarted.open();
        signal.addEventListener('abort', () => { reject(new DOMException('aborted', 'AbortError')); });
      }),
      upsert: () => Promise.resolve(),
      onEvent: (event) => {
        events.push(event.type);
        if (event.type === 'claimed') void threeStarted.promise.then(() => { controller.abort(); });
      },
    });
    expect(summary).toMatchObject({ workerId: 'stopping', stoppedBy: 'signal', claimed: 3, released: 3, failed: 0, synced: 0 });
    expect(signals.every((signal) => signal.aborted)).toBe(true);
    expect(events.at(-1)).toBe('stopped');
    const stats = await ToolModel.getSyncStats();
    expect(stats.inFlight).toEqual({ tools: 0, functionality: 0, usecases: 0, interface: 0 });
    expect(stats.byOverallStatus).toMatchObject({ pending: 2, failed: 0 });
    // A released pair is free at once for any worker.
    expect((await ToolModel.claimSyncWork({ workerId: 'next', limit: 8 })).flatMap(({ collections }) => collections)).toHaveLength(8);
  });

  it('claims nothing when its signal is already aborted', async () => {
    await seedTools(1);
    const target = simulatedTarget();
    const summary = await runSyncWorker({ ...CALLER, model: await workerModel(), embed: target.embed, upsert: target.upsert, signal: AbortSignal.abort() });
    expect(summary).toMatchObject({ claimed: 0, stoppedBy: 'signal' });
    expect(target.embedded.size).toBe(0);
  });

  it('renews the lease of a slow call, so no other worker takes the pair over', { timeout: 20_000 }, async () => {
    const [id] = await seedTools(1);
    const model = await workerModel();
    const started = gate();
    const finish = gate();
    let embeds = 0;
    const running = runSyncWorker({ ...CALLER,
      model, workerId: 'slow', leaseMs: 1_000, collections: ['tools'], stopWhenIdle: true, pollIntervalMs: 20,
      embed: async () => {
        embeds += 1;
        await finish.promise;
        return [1];
      },
      upsert: () => Promise.resolve(),
      onEvent: (event) => { if (event.type === 'claimed') started.open(); },
    });
    await started.promise;
    const firstLease = statusOf(await rawTool({ _id: id }), 'tools').claimedUntil as Date;
    // Past the first lease: the renewals (every third of it) have kept it.
    await sleep(Math.max(0, firstLease.getTime() - Date.now()) + 500);
    expect(await model.claimSyncWork({ workerId: 'other', collections: ['tools'] })).toEqual([]);
    const renewed = statusOf(await rawTool({ _id: id }), 'tools');
    expect(renewed.claimedBy).toBe('slow');
    expect((renewed.claimedUntil as Date).getTime()).toBeGreaterThan(firstLease.getTime());
    finish.open();
    expect(await running).toMatchObject({ synced: 1, claimLost: 0 });
    expect(embeds).toBe(1);
  });

  it('a claim lost while it works is found by the renewal: the embedding is aborted, nothing is written to the store, nothing recorded over the new holder', { timeout: 20_000 }, async () => {
    const [id] = await seedTools(1);
    if (id === undefined) throw new Error('no tool');
    const model = await workerModel();
    const started = gate();
    const lostByRenewal = gate();
    const finish = gate();
    const lost: SyncWorkerEvent[] = [];
    let aborted = false;
    let upserts = 0;
    const running = runSyncWorker({ ...CALLER,
      // One slot: busy, it claims nothing more (it would take the released pair back itself).
      model, workerId: 'slow', leaseMs: 1_000, collections: ['tools'], concurrency: 1, stopWhenIdle: true, pollIntervalMs: 20,
      embed: async (_tool, _collection, { signal }) => {
        started.open();
        signal.addEventListener('abort', () => { aborted = true; });
        // An embedder that ignores the abort: its result still never reaches the store.
        await finish.promise;
        return [1];
      },
      upsert: () => {
        upserts += 1;
        return Promise.resolve();
      },
      onEvent: (event) => {
        if (event.type !== 'claim-lost') return;
        lost.push(event);
        if (event.during === 'renewal') lostByRenewal.open();
      },
    });
    await started.promise;
    // An operator gives the slow worker's claim away, and another worker takes the pair.
    expect(await model.releaseClaims('slow', { toolIds: [id] })).toBe(1);
    expect(await model.claimSyncWork({ workerId: 'other', collections: ['tools'], leaseMs: 60_000 })).toHaveLength(1);
    await lostByRenewal.promise;
    expect(aborted).toBe(true);
    finish.open();
    expect(await running).toMatchObject({ synced: 0, failed: 0, claimLost: 1, reopened: 0 });
    expect(upserts).toBe(0);
    expect(lost).toEqual([expect.objectContaining({ during: 'renewal', collection: 'tools', claimedBy: null, reopened: false })]);
    expect(statusOf(await rawTool({ _id: id }), 'tools')).toMatchObject({ status: 'pending', claimedBy: 'other' });
  });

  it('a content change during the embedding is reported, and the new content embedded', async () => {
    const [id] = await seedTools(1);
    const model = await workerModel();
    const target = simulatedTarget(() => 0);
    let edited = false;
    const events: SyncWorkerEvent[] = [];
    const summary = await runSyncWorker({ ...CALLER,
      model, collections: ['usecases'], stopWhenIdle: true, pollIntervalMs: 20,
      embed: async (tool, collection, context) => {
        if (!edited) {
          edited = true;
          await model.updateOne({ _id: tool._id }, { $push: { useCases: 'onboard a new team' } });
        }
        return target.embed(tool, collection, context);
      },
      upsert: target.upsert,
      onEvent: (event) => { if (event.type === 'content-changed' || event.type === 'synced') events.push(event); },
    });
    const stored = await ToolModel.findById(id).orFail();
    const current = stored.syncMetadata.collections.usecases.contentHash;
    expect(summary).toMatchObject({ contentChanged: 1, synced: 1 });
    expect(events).toEqual([
      expect.objectContaining({ type: 'content-changed', currentContentHash: current }),
      expect.objectContaining({ type: 'synced', contentHash: current, vectorVersion: 1 }),
    ]);
    expect([...target.embedded.values()]).toEqual([1, 1]);
    expect(stored.syncMetadata.collections.usecases.status).toBe('synced');
  });

  it('embeds a pair once when its tool comes up again for its other pairs while that one is in work', { timeout: 20_000 }, async () => {
    const [id] = await seedTools(1);
    const model = await workerModel();
    const othersDone = gate();
    let synced = 0;
    let othersFirst = false;
    const claimedTools: SyncCollectionName[] = [];
    const target = simulatedTarget(() => 0);
    const summary = await runSyncWorker({ ...CALLER,
      model, concurrency: 2, stopWhenIdle: true, pollIntervalMs: 20, upsert: target.upsert,
      embed: async (tool, collection, context) => {
        // 'tools' stays in work while the tool's other three pairs are claimed and synced (two seconds at most).
        if (collection === 'tools') {
          await Promise.race([othersDone.promise, sleep(2_000)]);
          othersFirst = synced === 3;
        }
        return target.embed(tool, collection, context);
      },
      onEvent: (event) => {
        if (event.type === 'claimed') claimedTools.push(...event.pairs.map(({ collection }) => collection));
        if (event.type !== 'synced' || event.collection === 'tools') return;
        synced += 1;
        if (synced === 3) othersDone.open();
      },
    });
    // The case in question happened: the tool was claimed again (for its other pairs) while 'tools' was in work.
    expect(othersFirst).toBe(true);
    expect(claimedTools.sort()).toEqual(['functionality', 'interface', 'tools', 'usecases']);
    expect([...target.embedded.values()]).toEqual([1, 1, 1, 1]);
    expect(summary).toMatchObject({ claimed: 4, synced: 4 });
    expect((await ToolModel.findById(id).orFail()).syncMetadata.collections.tools.vectorVersion).toBe(1);
  });

  it('goes on when onEvent throws or rejects, with one process warning', async () => {
    await seedTools(2);
    const target = simulatedTarget();
    const warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      let calls = 0;
      const summary = await runSyncWorker({ ...CALLER,
        model: await workerModel(), embed: target.embed, upsert: target.upsert, stopWhenIdle: true, pollIntervalMs: 20,
        onEvent: () => {
          calls += 1;
          if (calls % 2 === 0) throw new Error('a bug in the handler');
          // An async handler's rejection is caught too (no unhandled rejection).
          return Promise.reject(new Error('an async bug in the handler')) as unknown as undefined;
        },
      });
      expect(summary).toMatchObject({ synced: 8, errors: 0 });
      expect(calls).toBeGreaterThan(8);
      await sleep(0);
      expect(warning).toHaveBeenCalledTimes(1);
      expect(String(warning.mock.calls[0]?.[0])).toContain('onEvent threw');
    } finally {
      warning.mockRestore();
    }
    await expectAllSynced(2);
  });

  it('reports a database error as an event and goes on', async () => {
    await seedTools(1);
    const model = await workerModel();
    // The same model, whose first claim the database "refuses".
    const flaky = refusingFirst(model, 'claimSyncWork');
    const target = simulatedTarget();
    const errors: SyncWorkerEvent[] = [];
    const summary = await runSyncWorker({ ...CALLER,
      model: flaky, embed: target.embed, upsert: target.upsert, stopWhenIdle: true, pollIntervalMs: 20,
      onEvent: (event) => { if (event.type === 'error') errors.push(event); },
    });
    expect(errors).toEqual([expect.objectContaining({ phase: 'claim' })]);
    expect(errors[0]?.type === 'error' && errors[0].error).toBeInstanceOf(mongoose.mongo.MongoNetworkError);
    expect(summary).toMatchObject({ errors: 1, synced: 4 });
  });

  it('a refused claim of removals never strands the pairs claimed just before it', async () => {
    await seedTools(1);
    const model = await workerModel();
    // The first claim of removals is "refused" by the database, right after pairs were claimed.
    const flaky = refusingFirst(model, 'claimVectorDeletions');
    const target = simulatedTarget();
    const summary = await runSyncWorker({ ...CALLER, model: flaky, embed: target.embed, upsert: target.upsert, stopWhenIdle: true, pollIntervalMs: 20, concurrency: 8 });
    expect(summary).toMatchObject({ errors: 1, synced: 4, claimed: 4 });
    await expectAllSynced(1);
  });

  it("removes deleted tools' points in every collection that held them, retries a failed removal, and the tombstones go", async () => {
    const ids = await seedTools(3);
    const target = simulatedTarget(() => 0);
    const model = await workerModel();
    const base = { ...CALLER, model, embed: target.embed, upsert: target.upsert, stopWhenIdle: true, pollIntervalMs: 20, pauseBaseMs: 0 };
    await runSyncWorker(base);
    await ToolModel.deleteMany({ _id: { $in: ids.slice(0, 2) } });
    expect((await ToolModel.getSyncStats()).deletions.tools).toEqual({ pending: 2, failed: 0 });
    const removed: string[] = [];
    let failOnce = true;
    const remove = (deleted: { toolObjectId: mongoose.Types.ObjectId; id: string | null }, collection: SyncCollectionName): Promise<void> => {
      if (failOnce && collection === 'usecases') {
        failOnce = false;
        return Promise.reject(Object.assign(new Error('503 Service Unavailable'), { status: 503 }));
      }
      removed.push(`${String(deleted.toolObjectId)}:${collection}`);
      return Promise.resolve();
    };
    const first = await runSyncWorker({ ...base, remove });
    expect(first.removed).toBe(7);
    expect(first.removeFailed).toBe(1);
    expect((await ToolModel.getSyncStats()).deletions.usecases).toEqual({ pending: 0, failed: 1 });
    // Due after its backoff: a later worker (its clock a day on) finishes it.
    const second = await runSyncWorker({ ...base, remove, clock: () => new Date(Date.now() + 24 * 60 * 60 * 1000) });
    expect(second.removed).toBe(1);
    expect(removed.sort()).toEqual(ids.slice(0, 2).flatMap((id) => SYNC_COLLECTION_NAMES.map((name) => `${String(id)}:${name}`)).sort());
    const stats = await ToolModel.getSyncStats();
    for (const name of SYNC_COLLECTION_NAMES) expect(stats.deletions[name]).toEqual({ pending: 0, failed: 0 });
    expect(await ToolModel.db.collection('tool_sync_tombstones').countDocuments({})).toBe(0);
  });

  it('refuses bad options with a SyncArgumentError naming the option, before anything is written', async () => {
    await seedTools(1);
    const target = simulatedTarget();
    const valid = { ...CALLER, model: ToolModel, embed: target.embed, upsert: target.upsert };
    const bad: [Record<string, unknown>, string][] = [
      [{ ...valid, model: undefined }, 'model'],
      [{ ...valid, model: {} }, 'model'],
      [{ ...valid, embed: undefined }, 'embed'],
      [{ ...valid, upsert: 'qdrant' }, 'upsert'],
      [{ ...valid, embeddingModel: '' }, 'embeddingModel'],
      [{ ...valid, embeddingModel: undefined }, 'embeddingModel'],
      [{ ...valid, remove: undefined }, 'remove'],
      [{ ...valid, workerId: '' }, 'workerId'],
      [{ ...valid, workerId: { $ne: null } }, 'workerId'],
      [{ ...valid, concurrency: 0 }, 'concurrency'],
      [{ ...valid, concurrency: 2.5 }, 'concurrency'],
      [{ ...valid, leaseMs: 10 }, 'leaseMs'],
      [{ ...valid, signal: {} }, 'signal'],
      [{ ...valid, onEvent: 'log' }, 'onEvent'],
      [{ ...valid, collections: ['vectors'] }, 'collections[0]'],
      [{ ...valid, collections: [] }, 'collections'],
      [{ ...valid, maxRetries: 0 }, 'maxRetries'],
      [{ ...valid, pollIntervalMs: 0 }, 'pollIntervalMs'],
      [{ ...valid, stopWhenIdle: 'yes' }, 'stopWhenIdle'],
      [{ ...valid, clock: 'now' }, 'clock'],
      [{ ...valid, clock: () => 'now' }, 'clock()'],
      [{ ...valid, pauseBaseMs: -1 }, 'pauseBaseMs'],
      [{ ...valid, pauseMaxMs: '1s' }, 'pauseMaxMs'],
      [{ ...valid, concurency: 8 }, 'concurency'],
    ];
    for (const [options, name] of bad) {
      const error = await runSyncWorker(options as unknown as SyncWorkerOptions).catch((thrown: unknown) => thrown);
      expect(error, name).toBeInstanceOf(SyncArgumentError);
      expect((error as Error).message, name).toMatch(new RegExp(`^${name.replace(/[()[\]]/g, '\\$&')}: `));
    }
    expect(target.embedded.size).toBe(0);
    const stats = await ToolModel.getSyncStats();
    expect(stats.inFlight).toEqual({ tools: 0, functionality: 0, usecases: 0, interface: 0 });
    expect(stats.byOverallStatus).toMatchObject({ pending: 1 });
  });
});

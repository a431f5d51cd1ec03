import mongoose from 'mongoose';
import { afterEach, beforeEach, inject } from 'vitest';
import {
  createToolModel, pointIdOf, SYNC_COLLECTION_NAMES, TOMBSTONE_COLLECTION, ToolModel,
  type BatchCallContext, type DeletedTool, type EmbedItem, type ITool, type SyncCallContext, type SyncCollectionName, type SyncWorkerOptions,
  type ToolModelType,
} from '../../src/index.js';

/** A promise to resolve from outside. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open: (value: T) => void = () => undefined;
  const promise = new Promise<T>((resolve) => { open = resolve; });
  return { promise, open };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One point as the recording store holds it: whose, and of which content. */
export interface RecordedPoint {
  toolId: string;
  contentHash: string;
  writtenBy: string;
}

/**
 * A test double of the vector store (never of the database): points keyed as the worker keys
 * them (collection and pointId), each write and removal recorded in order.
 */
export function recordingStore() {
  const points = new Map<string, RecordedPoint>();
  const log: string[] = [];
  const key = (collection: SyncCollectionName, pointId: string): string => `${collection}/${pointId}`;
  return {
    points,
    log,
    upsert(tool: ITool, collection: SyncCollectionName, _vector: unknown, context: SyncCallContext): void {
      points.set(key(collection, context.pointId), { toolId: String(tool._id), contentHash: context.contentHash, writtenBy: context.workerId });
      log.push(`upsert ${collection} ${String(tool._id)} ${context.contentHash} by ${context.workerId}`);
    },
    remove(deleted: DeletedTool, collection: SyncCollectionName): void {
      points.delete(key(collection, deleted.pointId));
      log.push(`remove ${collection} ${String(deleted.toolObjectId)}`);
    },
    point(toolId: mongoose.Types.ObjectId, collection: SyncCollectionName): RecordedPoint | undefined {
      return points.get(key(collection, pointIdOf(toolId)));
    },
  };
}

export type RecordingStore = ReturnType<typeof recordingStore>;

/**
 * The promise of the package, checked against the store: every live tool's points carry its
 * current content hash in each collection it calls synced, and no point is left of a deleted
 * tool. Returns what is wrong (empty when all is right).
 */
export async function storeDisagreements(store: RecordingStore, model: ToolModelType = ToolModel): Promise<string[]> {
  const wrong: string[] = [];
  const live = new Set<string>();
  for (const tool of await model.find()) {
    live.add(String(tool._id));
    for (const name of SYNC_COLLECTION_NAMES) {
      const state = tool.syncMetadata.collections[name];
      const point = store.point(tool._id, name);
      if (state.status === 'synced' && point?.contentHash !== state.contentHash) {
        wrong.push(`${String(tool._id)} ${name}: synced ${state.contentHash}, store ${point?.contentHash ?? 'none'}`);
      }
    }
  }
  for (const [where, point] of store.points) if (!live.has(point.toolId)) wrong.push(`${where}: a point of deleted tool ${point.toolId}`);
  return wrong;
}

/** Removals still owed (tombstone × collection not done). */
export async function removalsOwed(model: ToolModelType = ToolModel): Promise<number> {
  const stats = await model.getSyncStats();
  return SYNC_COLLECTION_NAMES.reduce((sum, name) => sum + stats.deletions[name].pending + stats.deletions[name].failed, 0);
}

export const clearTombstones = async (model: ToolModelType = ToolModel): Promise<void> => {
  await model.db.collection(TOMBSTONE_COLLECTION).deleteMany({});
};

/** Worker options over the recording store: embed gives a vector at once unless `embed` is given. */
export function storeWorker(store: RecordingStore, options: Partial<SyncWorkerOptions> & { model: ToolModelType }): SyncWorkerOptions {
  return {
    embeddingModel: 'e1', pollIntervalMs: 20, pauseBaseMs: 0, stopWhenIdle: true,
    embed: () => Promise.resolve([0]),
    upsert: (tool, collection, vector, context) => { store.upsert(tool, collection, vector, context); return Promise.resolve(); },
    remove: (deleted, collection) => { store.remove(deleted, collection); return Promise.resolve(); },
    ...options,
  };
}

/**
 * An upsert that is sent and then held: `writing` resolves once the worker called it, and the
 * write reaches the store only when `land()` is called (a store call that lands late).
 */
export function heldUpsert(store: RecordingStore): { upsert: SyncWorkerOptions['upsert']; writing: Promise<void>; land: () => void } {
  const writing = gate();
  const landing = gate();
  return {
    upsert: async (tool, collection, vector, context) => {
      writing.open();
      await landing.promise;
      store.upsert(tool, collection, vector, context);
    },
    writing: writing.promise,
    land: () => { landing.open(); },
  };
}

/**
 * Each test starts with no tools and no removals owed; models on connections of the test's own,
 * closed after it: `shared()` one connection of pool size 1 (the server sees one command at a
 * time: FerretDB 1.x is not atomic), `several(n)` one each.
 */
export function useWorkerModels(database: { name: string }): { shared: () => Promise<ToolModelType>; several: (count: number) => Promise<ToolModelType[]> } {
  let connections: mongoose.Connection[] = [];
  const open = async (options: mongoose.ConnectOptions): Promise<ToolModelType> => {
    const connection = await mongoose.createConnection(inject('mongoUri'), { dbName: database.name, ...options }).asPromise();
    connections.push(connection);
    return createToolModel(connection);
  };
  beforeEach(async () => {
    await ToolModel.deleteMany({});
    await clearTombstones();
  });
  afterEach(async () => {
    await Promise.all(connections.map((connection) => connection.close()));
    connections = [];
  });
  return {
    shared: () => open({ maxPoolSize: 1 }),
    several: (count) => Promise.all(Array.from({ length: count }, () => open({}))),
  };
}

/** One request a batch double received: when, of which collection, for which pairs (`toolId:collection:contentHash`). */
export interface BatchRequest {
  at: number;
  collection: SyncCollectionName;
  keys: string[];
  texts: string[];
}

/**
 * A test double of a batch embedding API (never of the database): records each request, waits
 * `delayMs(inputs)` (0 by default), and answers with `answer(items, request index)` (by default a
 * vector per item; an Error in place of a vector refuses that item; a throw fails the request).
 */
export function batchEmbedder(options: {
  delayMs?: (inputs: number) => number;
  answer?: (items: EmbedItem[], request: number) => (number[] | Error)[];
} = {}) {
  const requests: BatchRequest[] = [];
  const embedded = new Map<string, number>();
  const embedBatch = async (items: EmbedItem[], { collection }: BatchCallContext): Promise<(number[] | Error)[]> => {
    const request = requests.length;
    const keys = items.map(({ tool, contentHash }) => `${String(tool._id)}:${collection}:${contentHash}`);
    requests.push({ at: Date.now(), collection, keys, texts: items.map(({ text }) => text) });
    const delay = options.delayMs?.(items.length) ?? 0;
    if (delay > 0) await sleep(delay);
    const answers = options.answer === undefined ? items.map(() => [0.5]) : options.answer(items, request);
    answers.forEach((answer, index) => {
      const key = keys[index];
      if (!(answer instanceof Error) && key !== undefined) embedded.set(key, (embedded.get(key) ?? 0) + 1);
    });
    return answers;
  };
  return { embedBatch, requests, embedded };
}

/** Worker options with batch callbacks over the recording store: `upsertBatch` and `removeBatch` record each request too. */
export function batchStoreWorker(
  store: RecordingStore,
  options: Partial<SyncWorkerOptions> & { model: ToolModelType },
): { options: SyncWorkerOptions; storeRequests: BatchRequest[] } {
  const storeRequests: BatchRequest[] = [];
  const embedder = batchEmbedder();
  const workerOptions: SyncWorkerOptions = {
    embeddingModel: 'e1', pollIntervalMs: 20, pauseBaseMs: 0, stopWhenIdle: true,
    embedBatch: embedder.embedBatch,
    upsertBatch: (collection, items, context) => {
      storeRequests.push({ at: Date.now(), collection, keys: items.map(({ tool, contentHash }) => `${String(tool._id)}:${collection}:${contentHash}`), texts: [] });
      for (const { tool, vector, contentHash, pointId } of items) store.upsert(tool, collection, vector, { signal: context.signal, workerId: context.workerId, contentHash, pointId });
      return Promise.resolve();
    },
    removeBatch: (collection, deleted) => {
      storeRequests.push({ at: Date.now(), collection, keys: deleted.map(({ toolObjectId }) => String(toolObjectId)), texts: [] });
      for (const one of deleted) store.remove(one, collection);
      return Promise.resolve();
    },
    ...options,
  };
  return { options: workerOptions, storeRequests };
}

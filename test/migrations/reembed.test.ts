import mongoose from 'mongoose';
import { beforeEach, describe, expect, it } from 'vitest';
import { computeContentHashes, createToolModel, SyncArgumentError, SYNC_COLLECTION_NAMES, ToolModel, type ToolContent } from '../../src/index.js';
import { reembed, REEMBED_OUTCOMES } from '../../src/migrations/reembed.js';
import { useTestDatabase } from '../helpers/database.js';
import { toolInput } from '../helpers/tools.js';

const database = useTestDatabase(import.meta.url);

const NEW_MODEL = 'text-embedding-3-large';
const OLD_MODEL = 'text-embedding-ada-002';
const SYNCED_AT = new Date('2026-01-01T00:00:00Z');

interface State { status: string; embeddingModel?: string | null; contentHash: string }
interface Stored { _id: mongoose.Types.ObjectId; syncMetadata: { overallStatus: string; collections: Record<string, State> } }

/** `count` tools, all four collections synced, the `tools` collection's vector made by `model`. */
async function syncedTools(count: number, model: string | null): Promise<mongoose.Types.ObjectId[]> {
  // As a worker would have left them, inserted raw: the engine here updates many documents slowly.
  const docs = Array.from({ length: count }, () => {
    const doc = new ToolModel(toolInput()).toObject() as unknown as Stored;
    const hashes = computeContentHashes(doc as unknown as ToolContent);
    doc.syncMetadata.overallStatus = 'synced';
    for (const name of SYNC_COLLECTION_NAMES) {
      Object.assign(doc.syncMetadata.collections[name] ?? {}, {
        contentHash: hashes[name],
        status: 'synced', lastSyncedAt: SYNCED_AT, lastSyncAttemptAt: SYNCED_AT, vectorVersion: 1, embeddingModel: name === 'tools' ? model : NEW_MODEL,
      });
    }
    return doc;
  });
  for (let i = 0; i < docs.length; i += 500) await ToolModel.collection.insertMany(docs.slice(i, i + 500));
  return docs.map((doc) => doc._id);
}

async function storedTools(): Promise<Stored[]> {
  return (await ToolModel.collection.find({}).toArray()) as unknown as Stored[];
}

const vectorsOf = async (name: 'tools'): Promise<unknown> => (await ToolModel.getSyncStats({ full: true })).vectorsByEmbeddingModel?.[name];

beforeEach(async () => {
  await ToolModel.deleteMany({});
});

describe('markCollectionSynced records the embedding model', () => {
  it('stores the model given, null when none is given, and refuses a bad one writing nothing', async () => {
    const tool = await ToolModel.create(toolInput());
    const hash = (name: 'tools' | 'usecases'): string => tool.syncMetadata.collections[name].contentHash;
    await ToolModel.markCollectionSynced(tool._id, 'tools', { contentHash: hash('tools'), embeddingModel: NEW_MODEL });
    await ToolModel.markCollectionSynced(tool._id, 'usecases', { contentHash: hash('usecases') });
    const stored = (await ToolModel.collection.findOne({ _id: tool._id })) as unknown as Stored;
    expect(stored.syncMetadata.collections.tools?.embeddingModel).toBe(NEW_MODEL);
    expect(stored.syncMetadata.collections.usecases?.embeddingModel).toBeNull();
    for (const bad of ['', '   ', 42, { $ne: null }, 'm'.repeat(201)]) {
      const error = await ToolModel.markCollectionSynced(tool._id, 'functionality', { contentHash: tool.syncMetadata.collections.functionality.contentHash, embeddingModel: bad as string })
        .catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(SyncArgumentError);
      expect((error as Error).message).toContain('embeddingModel');
    }
    const after = (await ToolModel.collection.findOne({ _id: tool._id })) as unknown as Stored;
    expect(after.syncMetadata.collections.functionality?.status).toBe('pending');
  });
});

describe('flagEmbeddingModelChange', () => {
  it('flags exactly the synced vectors another model (or an unrecorded one) made, and the stats show the mix before and after a worker pass', async () => {
    // Mostly migrated already, over ten batches: the proportions and the batching are what is tested,
    // not the size (each flag is a conditional write, which FerretDB 1.x serves by a full scan).
    const current = new Set((await syncedTools(90, NEW_MODEL)).map(String));
    await syncedTools(6, OLD_MODEL);
    await syncedTools(4, null);
    expect(await vectorsOf('tools')).toEqual([{ model: NEW_MODEL, vectors: 90 }, { model: OLD_MODEL, vectors: 6 }, { model: null, vectors: 4 }]);

    expect(await ToolModel.flagEmbeddingModelChange('tools', NEW_MODEL, { dryRun: true, batchSize: 10 })).toBe(10);
    expect((await ToolModel.getSyncStats()).byCollection.tools.stale).toBe(0);

    expect(await ToolModel.flagEmbeddingModelChange('tools', NEW_MODEL, { batchSize: 10 })).toBe(10);
    for (const tool of await storedTools()) {
      const expected = current.has(String(tool._id)) ? 'synced' : 'stale';
      expect(tool.syncMetadata.collections.tools?.status, String(tool._id)).toBe(expected);
      // Only the collection whose model changed: the others keep their vectors.
      for (const name of ['functionality', 'usecases', 'interface']) expect(tool.syncMetadata.collections[name]?.status).toBe('synced');
      expect(tool.syncMetadata.overallStatus).toBe(expected);
    }
    // A second run finds nothing: the flagged vectors are waiting for the worker.
    expect(await ToolModel.flagEmbeddingModelChange('tools', NEW_MODEL)).toBe(0);

    // A worker's pass re-embeds some of them with the new model: the mix moves.
    const stale = (await storedTools()).filter((tool) => tool.syncMetadata.collections.tools?.status === 'stale').slice(0, 5);
    for (const tool of stale) {
      await ToolModel.markCollectionSynced(tool._id, 'tools', { contentHash: tool.syncMetadata.collections.tools?.contentHash ?? '', embeddingModel: NEW_MODEL });
    }
    const mix = (await vectorsOf('tools')) as { model: string | null; vectors: number }[];
    expect(mix[0]).toEqual({ model: NEW_MODEL, vectors: 95 });
    expect(mix.reduce((sum, { vectors }) => sum + vectors, 0)).toBe(100);
  }, 120_000);

  it('is resumable: a run stopped after a batch is finished by the next', async () => {
    await syncedTools(30, OLD_MODEL);
    const controller = new AbortController();
    const first = await reembed(ToolModel, {
      collection: 'tools', embeddingModel: NEW_MODEL, batchSize: 10, signal: controller.signal,
      onProgress: (summary) => { if (summary.scanned >= 20) controller.abort(); },
    });
    expect(first.aborted).toBe(true);
    expect(first.outcomes[REEMBED_OUTCOMES.flagged]).toBe(20);
    const second = await reembed(ToolModel, { collection: 'tools', embeddingModel: NEW_MODEL, batchSize: 10 });
    expect(second.resumedAfter).not.toBeNull();
    expect(second.outcomes[REEMBED_OUTCOMES.flagged]).toBe(10);
    expect((await ToolModel.getSyncStats()).byCollection.tools.stale).toBe(30);
  }, 120_000);

  it('leaves concurrent edits correct: an edited tool is stale with its new hash, an unedited current one stays synced', async () => {
    const current = await syncedTools(30, NEW_MODEL);
    const old = await syncedTools(30, OLD_MODEL);
    const edited = [...current.slice(0, 8), ...old.slice(0, 8)];
    // One connection of pool size 1: FerretDB 1.x does not apply concurrent updates of one document
    // atomically; the flagging and the edits still interleave, command by command.
    const connection = await mongoose.createConnection(database.uri(), { dbName: database.name, maxPoolSize: 1 }).asPromise();
    try {
      const model = createToolModel(connection);
      const flagging = model.flagEmbeddingModelChange('tools', NEW_MODEL, { batchSize: 5 });
      for (const id of edited) await model.updateOne({ _id: id }, { $set: { name: `Renamed ${String(id)}` } });
      expect(await flagging).toBeLessThanOrEqual(30);
    } finally {
      await connection.close();
    }
    const editedSet = new Set(edited.map(String));
    const oldSet = new Set(old.map(String));
    for (const tool of await storedTools()) {
      const id = String(tool._id);
      const expected = editedSet.has(id) || oldSet.has(id) ? 'stale' : 'synced';
      expect(tool.syncMetadata.collections.tools?.status, id).toBe(expected);
      // Every hash is the stored content's: nothing left to settle.
      expect(await ToolModel.settleSyncState(tool._id), id).toBe(false);
    }
  }, 120_000);

  it('refuses bad input, naming it, and writes nothing', async () => {
    await syncedTools(5, OLD_MODEL);
    const bad: [unknown[], string][] = [
      [['vectors', NEW_MODEL], 'collection'],
      [[{ $ne: null }, NEW_MODEL], 'collection'],
      [['tools', ''], 'embeddingModel'],
      [['tools', 7], 'embeddingModel'],
      [['tools', { $ne: null }], 'embeddingModel'],
      [['tools', NEW_MODEL, { batchSize: 0 }], 'batchSize'],
      [['tools', NEW_MODEL, { batchSize: { $gt: 1 } }], 'batchSize'],
      [['tools', NEW_MODEL, { dryRun: 'no' }], 'dryRun'],
    ];
    for (const [args, argument] of bad) {
      const call = (...given: unknown[]): Promise<number> => (ToolModel.flagEmbeddingModelChange as (...untyped: unknown[]) => Promise<number>).apply(ToolModel, given);
      const error = await call(...args).catch((thrown: unknown) => thrown);
      expect(error, JSON.stringify(args)).toBeInstanceOf(SyncArgumentError);
      expect((error as Error).message).toContain(argument);
    }
    expect((await ToolModel.getSyncStats()).byCollection.tools.synced).toBe(5);
  });
});

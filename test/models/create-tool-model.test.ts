import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { computeContentHashes, createToolModel, SYNC_COLLECTION_NAMES, SyncArgumentError, ToolModel, type ToolModelOptions, type ToolModelType } from '../../src/index.js';
import { backfill } from '../../src/migrations/backfill.js';
import { useTestDatabase, uniqueDatabaseName } from '../helpers/database.js';
import { toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

let first: mongoose.Connection;
let second: mongoose.Connection;
beforeAll(async () => {
  first = await mongoose.createConnection(inject('mongoUri'), { dbName: uniqueDatabaseName(`${import.meta.url}-a`) }).asPromise();
  second = await mongoose.createConnection(inject('mongoUri'), { dbName: uniqueDatabaseName(`${import.meta.url}-b`) }).asPromise();
});
afterAll(async () => {
  for (const connection of [first, second]) {
    await connection.dropDatabase();
    await connection.close();
  }
});

/** A tool through `model`: created, embedded everywhere, then edited: every static and hook at work. */
async function exercise(model: ToolModelType, name: string): Promise<void> {
  const tool = await model.create(toolInput({ name }));
  for (const collection of SYNC_COLLECTION_NAMES) {
    expect(await model.markCollectionSynced(tool._id, collection, { contentHash: tool.syncMetadata.collections[collection].contentHash }))
      .toMatchObject({ synced: true });
  }
  await model.updateOne({ _id: tool._id }, { $push: { useCases: 'one more' } });
  const after = await model.findById(tool._id).orFail();
  expect(after.syncMetadata.collections.usecases.status).toBe('stale');
  expect(after.syncMetadata.collections.usecases.contentHash).toBe(computeContentHashes(after).usecases);
  expect(after.syncMetadata.collections.tools.status).toBe('synced');
}

describe('createToolModel(connection, { modelName, collection })', () => {
  it('works on connections of their own, independently of each other and of ToolModel', async () => {
    const a = createToolModel(first);
    const b = createToolModel(second);
    expect(a).not.toBe(b);
    expect(a).not.toBe(ToolModel);
    await exercise(a, 'On the first connection');
    await exercise(b, 'On the second connection');
    expect(await a.countDocuments()).toBe(1);
    expect(await b.countDocuments()).toBe(1);
    expect(await ToolModel.countDocuments({ name: /connection/ })).toBe(0);
    expect((await a.getSyncStats()).byCollection.usecases.stale).toBe(1);
  });

  it('on two collections of one connection keeps them apart, migrations included', async () => {
    const catalog = createToolModel(first, { modelName: 'CatalogTool', collection: 'catalog_tools' });
    const drafts = createToolModel(first, { modelName: 'DraftTool', collection: 'draft_tools' });
    await exercise(catalog, 'In the catalog');
    await drafts.collection.insertOne({ ...toolInput(), name: 'A legacy draft' });
    const summary = await backfill(drafts, { batchSize: 10, dryRun: false });
    expect(summary.outcomes).toEqual({ updated: 1 });
    expect(await catalog.countDocuments()).toBe(1);
    expect(await drafts.countDocuments({ 'syncMetadata.overallStatus': 'pending' })).toBe(1);
  });

  it('declares the same indexes as ToolModel on its collection', async () => {
    const model = createToolModel(second, { modelName: 'IndexedTool', collection: 'indexed_tools', autoIndex: true });
    await model.init();
    const listed = (await model.collection.listIndexes().toArray()) as { name?: string }[];
    const names = listed.map((index) => String(index.name)).sort();
    const declared = (ToolModel.schema as mongoose.Schema).indexes() as [unknown, { name?: string }][];
    const expected = declared.map(([, options]) => String(options.name));
    expect(names).toEqual(['_id_', ...expected].sort());
  });

  it.each<[string, Record<string, unknown>]>([
    ['modelName', { modelName: '' }],
    ['modelName', { modelName: 5 }],
    ['collection', { collection: { $gt: '' } }],
    ['collection', { collection: 'tools$x' }],
    ['collection', { collection: 'system.views' }],
    ['autoIndex', { autoIndex: 'yes' }],
  ])('refuses a bad %s (%j) with SyncArgumentError naming it, and makes no model', (field, options) => {
    const connection = mongoose.createConnection();
    try {
      expect(() => createToolModel(connection, options as ToolModelOptions)).toThrow(SyncArgumentError);
      expect(() => createToolModel(connection, options as ToolModelOptions)).toThrow(field);
      expect(connection.modelNames()).toEqual([]);
    } finally {
      void connection.close();
    }
  });

  it('gives the same model for the same name and collection, ToolModel on the default connection, and refuses a clash', () => {
    expect(createToolModel(first)).toBe(createToolModel(first));
    expect(createToolModel(mongoose.connection)).toBe(ToolModel);
    expect(() => createToolModel(first, { collection: 'other_tools' })).toThrow(/"Tool" already exists .* "tools", not "other_tools"/);
    second.model('Tool2', new mongoose.Schema({}));
    expect(() => createToolModel(second, { modelName: 'Tool2' })).toThrow(/already has a model named "Tool2"/);
  });
});

import { buildSchema } from '@typegoose/typegoose';
import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { Tool, ToolModel } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';

const database = useTestDatabase(import.meta.url);

/** Spec 1.5's seven indexes, by name and exact key, the unique index on `id`, and the settle's index. */
const EXPECTED_INDEXES: Record<string, Record<string, number>> = {
  sync_overall_status_idx: { 'syncMetadata.overallStatus': 1 },
  sync_tools_status_idx: { 'syncMetadata.collections.tools.status': 1 },
  sync_functionality_status_idx: { 'syncMetadata.collections.functionality.status': 1 },
  sync_usecases_status_idx: { 'syncMetadata.collections.usecases.status': 1 },
  sync_interface_status_idx: { 'syncMetadata.collections.interface.status': 1 },
  sync_worker_query_idx: { 'syncMetadata.overallStatus': 1, 'syncMetadata.updatedAt': 1 },
  sync_retry_eligibility_idx: {
    'syncMetadata.overallStatus': 1,
    'syncMetadata.collections.tools.retryCount': 1,
    'syncMetadata.collections.functionality.retryCount': 1,
    'syncMetadata.collections.usecases.retryCount': 1,
    'syncMetadata.collections.interface.retryCount': 1,
  },
  tool_id_unique: { id: 1 },
  sync_pending_hash_check_idx: { 'syncMetadata.pendingHashCheck': 1 },
  sync_tools_retry_due_idx: { 'syncMetadata.collections.tools.status': 1, 'syncMetadata.collections.tools.nextRetryAt': 1 },
  sync_functionality_retry_due_idx: { 'syncMetadata.collections.functionality.status': 1, 'syncMetadata.collections.functionality.nextRetryAt': 1 },
  sync_usecases_retry_due_idx: { 'syncMetadata.collections.usecases.status': 1, 'syncMetadata.collections.usecases.nextRetryAt': 1 },
  sync_interface_retry_due_idx: { 'syncMetadata.collections.interface.status': 1, 'syncMetadata.collections.interface.nextRetryAt': 1 },
  sync_tools_waiting_idx: { 'syncMetadata.collections.tools.status': 1, 'syncMetadata.updatedAt': 1 },
  sync_functionality_waiting_idx: { 'syncMetadata.collections.functionality.status': 1, 'syncMetadata.updatedAt': 1 },
  sync_usecases_waiting_idx: { 'syncMetadata.collections.usecases.status': 1, 'syncMetadata.updatedAt': 1 },
  sync_interface_waiting_idx: { 'syncMetadata.collections.interface.status': 1, 'syncMetadata.updatedAt': 1 },
};

interface ServerIndex { name?: string; key: Record<string, number>; unique?: boolean }

/** What the server lists, keyed by name, keys in their stored order. */
async function serverIndexes(db: mongoose.mongo.Db): Promise<Map<string, ServerIndex>> {
  const listed = (await db.collection('tools').listIndexes().toArray()) as ServerIndex[];
  return new Map(listed.map((index) => [index.name ?? '', index]));
}

function expectSpecIndexes(indexes: Map<string, ServerIndex>): void {
  for (const [name, key] of Object.entries(EXPECTED_INDEXES)) {
    const index = indexes.get(name);
    expect(index, `index ${name}`).toBeDefined();
    // Compared as entry lists: a compound index's key order is part of the index.
    expect(Object.entries(index?.key ?? {}), `keys of ${name}`).toEqual(Object.entries(key));
  }
  expect(indexes.get('tool_id_unique')?.unique).toBe(true);
  expect([...indexes.keys()].sort()).toEqual(['_id_', ...Object.keys(EXPECTED_INDEXES)].sort());
}

/** A new application: its own client, the schema built again from the classes, on a named database. */
async function startApplication(dbName: string): Promise<{ model: () => mongoose.Model<unknown>; db: mongoose.mongo.Db; stop: () => Promise<void> }> {
  const app = new mongoose.Mongoose();
  await app.connect(database.uri(), { dbName });
  const db = app.connection.db;
  if (db === undefined) throw new Error('not connected');
  return { model: () => app.model('Tool', buildSchema(Tool)), db, stop: () => app.disconnect() };
}

describe('indexes on the server', () => {
  it('are not built as a side effect: initializing the model builds none (the operator decides)', async () => {
    const app = await startApplication(`${database.name}_no_auto`);
    try {
      const model = app.model();
      await model.init();
      await model.create({ id: 'one', name: 'One', description: 'd', category: 'c' });
      expect([...(await serverIndexes(app.db)).keys()]).toEqual(['_id_']);
    } finally {
      await app.db.dropDatabase();
      await app.stop();
    }
  });

  it('are all created on request (createIndexes) against an empty database, and again after a restart', async () => {
    const dbName = `${database.name}_restart`;
    const first = await startApplication(dbName);
    try {
      expect(await first.db.listCollections().toArray()).toHaveLength(0);
      const model = first.model();
      await model.createIndexes();
      expectSpecIndexes(await serverIndexes(first.db));
      await model.create({ id: 'existing', name: 'Existing', description: 'Was here before the restart.', category: 'x' });
      await first.db.collection('tools').dropIndex('sync_worker_query_idx');
    } finally {
      await first.stop();
    }

    const restarted = await startApplication(dbName);
    try {
      const model = restarted.model();
      await model.createIndexes();
      expectSpecIndexes(await serverIndexes(restarted.db));
      expect(await model.countDocuments()).toBe(1);
    } finally {
      await restarted.db.dropDatabase();
      await restarted.stop();
    }
  });

  it('exist for ToolModel on the test database once created', async () => {
    await ToolModel.createIndexes();
    const db = mongoose.connection.db;
    if (db === undefined) throw new Error('not connected');
    expectSpecIndexes(await serverIndexes(db));
  });

  it('enforce a unique id', async () => {
    await ToolModel.createIndexes();
    await ToolModel.create({ id: 'only-once', name: 'A', description: 'd', category: 'c' });
    const error = await ToolModel.create({ id: 'only-once', name: 'B', description: 'd', category: 'c' }).catch((thrown: unknown) => thrown);
    // Decided by the code: each engine words a duplicate key otherwise ("E11000 duplicate key…", "Duplicate key violation…").
    expect(error).toBeInstanceOf(mongoose.mongo.MongoServerError);
    expect((error as mongoose.mongo.MongoServerError).code).toBe(11000);
    expect(await ToolModel.countDocuments({ id: 'only-once' })).toBe(1);
  });
});

import mongoose, { type Types } from 'mongoose';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createToolModel, SyncArgumentError, ToolModel, type Tool } from '../../src/index.js';
import { commandNamesDuring, outcomeOf } from '../helpers/commands.js';
import { useMonitoredTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';
import { rawTool, toolInput } from '../helpers/tools.js';
import { expectTruthful, type Stored, statusesOf, storedBytes, storedTool } from './stored-sync-state.js';

/*
 * Issue 17, points 8, 10 and 11, against the server: what the package records around a user's
 * write is what the server did. An unacknowledged content write is refused (nothing could settle
 * it without racing it); a save the server refuses leaves the stored tool byte for byte as it was;
 * only operators the server applies are recorded.
 */

const { name: dbName } = useMonitoredTestDatabase(import.meta.url);

type BulkOperations = mongoose.AnyBulkWriteOperation<Tool>[];

const WRITES = new Set(['update', 'findAndModify', 'delete', 'insert']);

const stored = (id: unknown): Promise<Stored> => storedTool({ _id: id });
const bytesOf = (id: unknown): Promise<Buffer> => storedBytes({ _id: id });
const statuses = statusesOf;
const expectSettled = (id: unknown): Promise<Stored> => expectTruthful({ _id: id });

// ---------------------------------------------------------------------------------------------

describe('an unacknowledged write the package would have to settle is refused, naming the option (issue 17, point 8)', () => {
  const w0 = { writeConcern: { w: 0 } };
  const content = { $set: { description: 'Fire and forget.' } };
  const ways: [string, string, (id: Types.ObjectId) => Promise<unknown>][] = [
    ['updateOne', 'writeConcern.w', (id) => ToolModel.updateOne({ _id: id }, content, w0)],
    ['updateMany', 'writeConcern.w', (id) => ToolModel.updateMany({ _id: id }, content, w0)],
    ['findOneAndUpdate', 'writeConcern.w', (id) => ToolModel.findOneAndUpdate({ _id: id }, content, w0)],
    ['replaceOne', 'writeConcern.w', (id) => ToolModel.replaceOne({ _id: id }, toolInput(), w0)],
    ['an upsert of no content (it may insert a tool)', 'writeConcern.w', () => ToolModel.updateOne({ id: 'w0-upsert' }, { $set: { name: 'n', description: 'd', category: 'c' } }, { ...w0, upsert: true })],
    ['updateOne with w: 0 given as `w`', 'w', (id) => ToolModel.updateOne({ _id: id }, content, { w: 0 } as mongoose.MongooseUpdateQueryOptions)],
    ['bulkWrite of a content update', 'writeConcern.w', (id) => ToolModel.bulkWrite([{ updateOne: { filter: { _id: id }, update: content } }], w0)],
    ['bulkWrite of a delete', 'writeConcern.w', (id) => ToolModel.bulkWrite([{ deleteOne: { filter: { _id: id } } }] as BulkOperations, w0)],
    ['deleteOne', 'writeConcern.w', (id) => ToolModel.deleteOne({ _id: id }, w0)],
    ['deleteMany', 'writeConcern.w', (id) => ToolModel.deleteMany({ _id: id }, w0)],
    ['findOneAndDelete', 'writeConcern.w', (id) => ToolModel.findOneAndDelete({ _id: id }, w0)],
    ['a document\'s deleteOne', 'writeConcern.w', async (id) => (await ToolModel.findById(id).orFail()).deleteOne(w0)],
    ['a save that changes content', 'w', async (id) => {
      const doc = await ToolModel.findById(id).orFail();
      doc.description = 'Saved unacknowledged.';
      return doc.save({ w: 0 });
    }],
  ];

  it.each(ways)('%s: refused before anything is sent, the tool as it was', async (_way, option, write) => {
    const tool = await createSyncedTool();
    const before = await bytesOf(tool._id);
    let outcome: Awaited<ReturnType<typeof outcomeOf>> | undefined;
    const commands = await commandNamesDuring(async () => { outcome = await outcomeOf(() => write(tool._id)); });
    const error = outcome?.ok === false ? outcome.error : undefined;
    expect(error).toBeInstanceOf(SyncArgumentError);
    expect(error instanceof Error ? error.message : '').toMatch(new RegExp(`^${option.replace('.', '\\.')}: expected an acknowledged write concern.*got 0$`));
    expect(commands.filter((name) => WRITES.has(name))).toEqual([]);
    expect((await bytesOf(tool._id)).equals(before)).toBe(true);
    expect(await rawTool({ id: 'w0-upsert' })).toBeNull();
  });

  it('a write of no content goes unacknowledged as the caller asked, with its bookkeeping, and needs no settle', async () => {
    const tool = await createSyncedTool();
    const connection = await mongoose.createConnection(inject('mongoUri'), { dbName }).asPromise();
    try {
      const model = createToolModel(connection);
      const result = await model.updateMany({ _id: tool._id }, { $set: { url: 'https://example.org/unacknowledged' } }, { writeConcern: { w: 0 } });
      expect(result.acknowledged).toBe(false);
      // Unacknowledged: it lands when it lands.
      for (let tries = 0; tries < 100 && (await stored(tool._id)).url !== 'https://example.org/unacknowledged'; tries += 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await connection.close();
    }
    const after = await expectSettled(tool._id);
    expect(after.url).toBe('https://example.org/unacknowledged');
    expect(after.syncMetadata.lastModifiedFields).toEqual(['url']);
    expect(statuses(after)).toEqual(['synced', 'synced', 'synced', 'synced']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('a save the server refuses leaves the stored tool byte for byte as it was (issue 17, point 10)', () => {
  beforeAll(async () => {
    await ToolModel.createIndexes();
  });

  it.each([
    ['loaded without its metadata', '-syncMetadata'],
    ['loaded with only some fields', 'id name description'],
    ['loaded whole', undefined],
  ])('%s, given a duplicate id: refused, nothing stored changed, one write sent; saved again with a free id, recorded and settled', async (_label, projection) => {
    const taken = await createSyncedTool();
    const tool = await createSyncedTool();
    const before = await bytesOf(tool._id);
    const query = ToolModel.findById(tool._id);
    const doc = await (projection === undefined ? query : query.select(projection)).orFail();
    doc.id = taken.id;
    doc.description = 'Changed with a duplicate id.';

    let outcome: Awaited<ReturnType<typeof outcomeOf>> | undefined;
    const commands = await commandNamesDuring(async () => { outcome = await outcomeOf(() => doc.save()); });
    expect(outcome?.ok, 'the server refuses a duplicate id').toBe(false);
    expect(outcome?.ok === false ? outcome.error : undefined).toBeInstanceOf(mongoose.mongo.MongoServerError);
    // The marks went in the save's own update: nothing was written before it.
    expect(commands.filter((name) => WRITES.has(name))).toEqual(['update']);
    expect((await bytesOf(tool._id)).equals(before)).toBe(true);

    doc.id = `${taken.id}-free`;
    await doc.save();
    const after = await expectSettled(tool._id);
    expect(after.id).toBe(`${taken.id}-free`);
    expect(after.syncMetadata.lastModifiedFields).toEqual(['id', 'description']);
    expect(statuses(after)).toEqual(['stale', 'synced', 'synced', 'synced']);
    // The document shows what is stored, with nothing left to save.
    expect(doc.isModified()).toBe(false);
    if (projection === undefined) expect(doc.toObject().syncMetadata).toEqual((await ToolModel.findById(tool._id).orFail()).toObject().syncMetadata);
  });
});

// ---------------------------------------------------------------------------------------------

describe('only operators the server applies are recorded (issue 17, point 11)', () => {
  const unknown = { $frobnicate: { name: 'x' } } as unknown as mongoose.UpdateQuery<Tool>;
  const ways: [string, (id: Types.ObjectId) => Promise<unknown>][] = [
    ['updateOne of an unknown operator (Mongoose strips it)', (id) => ToolModel.updateOne({ _id: id }, unknown)],
    ['updateMany of an unknown operator', (id) => ToolModel.updateMany({ _id: id }, unknown)],
    ['findOneAndUpdate of an unknown operator', (id) => ToolModel.findOneAndUpdate({ _id: id }, unknown, { returnDocument: 'after' })],
    ['bulkWrite of an unknown operator', (id) => ToolModel.bulkWrite([{ updateOne: { filter: { _id: id }, update: unknown } }])],
    ['$setOnInsert, without an upsert', (id) => ToolModel.updateOne({ _id: id }, { $setOnInsert: { name: 'Never Inserted' } })],
  ];

  /** The stored tool but for its timestamp, which Mongoose's `timestamps` moves on any update, the package or not. */
  const withoutTimestamp = async (id: Types.ObjectId): Promise<Buffer> => {
    const { updatedAt: _updatedAt, ...rest } = await stored(id);
    return Buffer.from(mongoose.mongo.BSON.serialize(rest));
  };

  it.each(ways)('%s: nothing recorded, the tool byte for byte as it was (but for Mongoose\'s timestamp)', async (_way, write) => {
    const tool = await createSyncedTool();
    const before = await withoutTimestamp(tool._id);
    await write(tool._id);
    expect((await withoutTimestamp(tool._id)).equals(before)).toBe(true);
  });

  it('next to a real operator, only the real one is recorded, and no hash check is pending', async () => {
    const tool = await createSyncedTool();
    const update: Record<string, unknown> = { $frobnicate: { name: 'x' }, $set: { url: 'https://example.org/real' } };
    await ToolModel.updateOne({ _id: tool._id }, update);
    const after = await expectSettled(tool._id);
    expect(after.name).toBe(tool.name);
    expect(after.syncMetadata.lastModifiedFields).toEqual(['url']);
    expect(statuses(after)).toEqual(['synced', 'synced', 'synced', 'synced']);
  });

  it('with strict: false, the unknown operator reaches the server, which applies nothing of it: nothing recorded', async () => {
    const tool = await createSyncedTool();
    const before = await stored(tool._id);
    await outcomeOf(() => ToolModel.updateOne({ _id: tool._id }, unknown, { strict: false }));
    const after = await expectSettled(tool._id);
    expect(after.name).toBe(before.name);
    expect(after.syncMetadata.lastModifiedFields).toEqual(before.syncMetadata.lastModifiedFields);
    expect(statuses(after)).toEqual(['synced', 'synced', 'synced', 'synced']);
  });
});

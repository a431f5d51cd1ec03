import mongoose, { Types } from 'mongoose';
import { describe, expect, inject, it } from 'vitest';
import {
  aggregateSyncStatus,
  BUSINESS_FIELDS,
  computeContentHashes,
  createToolModel,
  SYNC_COLLECTION_NAMES,
  SyncArgumentError,
  ToolModel,
  type SyncCollectionName,
  type SyncStatus,
  type ToolModelType,
} from '../../src/index.js';
import { type Outcome, outcomeOf } from '../helpers/commands.js';
import { useTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';

/**
 * Attacks on the single-document write path of today's change: updateOne sent as findAndModify,
 * findOneAndUpdate settled from what it returned, a save settled from the document in memory,
 * the bulk sizes, and the validation of a new tool that skips its sync metadata. Where the
 * package must behave like the server, the same write goes through the raw driver onto a copy.
 */

useTestDatabase(import.meta.url);

type Doc = Record<string, unknown>;

interface StoredCollection {
  status: SyncStatus;
  contentHash: string;
  retryCount: number;
  lastSyncedAt: Date | null;
  lastError: string | null;
  [key: string]: unknown;
}
interface StoredMeta {
  overallStatus: SyncStatus;
  pendingHashCheck?: unknown;
  lastModifiedFields: string[];
  collections: Record<SyncCollectionName, StoredCollection>;
  [key: string]: unknown;
}
type Stored = Doc & { syncMetadata: StoredMeta };

const db = (): mongoose.mongo.Db => {
  const connected = mongoose.connection.db;
  if (connected === undefined) throw new Error('not connected');
  return connected;
};
const COPIES = 'tools_attack_copy';
/** The raw driver's collection of copies: any update the driver takes. */
const copies = (): mongoose.mongo.Collection => db().collection(COPIES);

async function stored(id: unknown): Promise<Stored> {
  const found = await rawTool({ _id: id });
  if (found === null) throw new Error(`no tool ${String(id)}`);
  return found as Stored;
}

async function storedCopy(id: Types.ObjectId | undefined): Promise<Doc> {
  const found = await copies().findOne({ _id: id });
  if (found === null) throw new Error(`no copy ${String(id)}`);
  return found;
}

/** A raw copy of a stored tool, for the raw driver's side of a comparison. */
async function copyOf(id: unknown): Promise<Types.ObjectId> {
  const copyId = new Types.ObjectId();
  const copy: Doc = { ...(await stored(id)), _id: copyId };
  await copies().insertOne(copy);
  return copyId;
}

/** The business fields, as comparable values. */
const business = (doc: Doc): Doc => Object.fromEntries(BUSINESS_FIELDS.map((field) => [field, doc[field] ?? null]));

/** The stored sync state describes the stored content: its hashes, the aggregate, no pending check. */
async function expectSettled(id: unknown): Promise<Stored> {
  const tool = await stored(id);
  const hashes = computeContentHashes(tool as Doc);
  const meta = tool.syncMetadata;
  for (const name of SYNC_COLLECTION_NAMES) expect(meta.collections[name].contentHash, `${name}: hash of the stored content`).toBe(hashes[name]);
  expect(meta.overallStatus, 'overall status').toBe(aggregateSyncStatus(SYNC_COLLECTION_NAMES.map((name) => meta.collections[name].status)));
  expect(meta.pendingHashCheck ?? null, 'pending hash check').toBeNull();
  return tool;
}

const statuses = (tool: Stored): SyncStatus[] => SYNC_COLLECTION_NAMES.map((name) => tool.syncMetadata.collections[name].status);

const attempt = outcomeOf;
const messageOf = (outcome: Outcome): string => (outcome.ok ? 'no error' : outcome.error instanceof Error ? outcome.error.message : String(outcome.error));

/** A model of the default connection built while a global plugin (`mongoose.plugin`) is registered; the plugin is removed again. */
function modelWithGlobalPlugin(modelName: string, plugin: (schema: mongoose.Schema) => void): ToolModelType {
  mongoose.plugin(plugin);
  try {
    return createToolModel(mongoose.connection, { modelName, collection: 'tools' });
  } finally {
    const registered = (mongoose as unknown as { plugins: unknown[][] }).plugins;
    const index = registered.findIndex(([fn]) => fn === plugin);
    if (index >= 0) registered.splice(index, 1);
  }
}

/** A connection of its own, closed after `use`: unacknowledged writes may break a connection on some engines. */
async function withConnection<T>(options: mongoose.ConnectOptions, use: (connection: mongoose.Connection, commands: string[]) => Promise<T>): Promise<T> {
  const connection = await mongoose.createConnection(inject('mongoUri'), { dbName: mongoose.connection.name, monitorCommands: true, ...options }).asPromise();
  const commands: string[] = [];
  connection.getClient().on('commandStarted', (event: { commandName: string }) => { commands.push(event.commandName); });
  try {
    return await use(connection, commands);
  } finally {
    await connection.close();
  }
}

// ---------------------------------------------------------------------------------------------
// updateOne sent as findAndModify: the caller's options and result.

describe('a content updateOne reaches the server as the caller wrote it', () => {
  // Issue 17, point 8: an unacknowledged content write cannot be settled by a read that cannot race it, so it is refused.
  it('on a connection whose write concern is w: 0, a content write is refused naming the option, nothing is sent; a write of no content answers as the raw driver does', async () => {
    const tool = await createSyncedTool();
    const copyId = await copyOf(tool._id);
    const before = await stored(tool._id);
    const { outcome, commands } = await withConnection({ writeConcern: { w: 0 } }, async (connection, commands) => {
      const model = createToolModel(connection);
      return { outcome: await attempt(() => model.updateOne({ _id: tool._id }, { $set: { description: 'Fire and forget on a w: 0 connection.' } })), commands };
    });
    expect(outcome.ok).toBe(false);
    expect(outcome.ok ? undefined : outcome.error).toBeInstanceOf(SyncArgumentError);
    expect(messageOf(outcome)).toMatch(/^writeConcern\.w \(the collection's default\): .*got 0$/);
    expect(commands.filter((name) => name === 'update' || name === 'findAndModify')).toEqual([]);
    expect(await stored(tool._id)).toEqual(before);

    const update = { $set: { url: 'https://example.org/fire-and-forget' } };
    const raw = await withConnection({ writeConcern: { w: 0 } }, (connection) => connection.collection(COPIES).updateOne({ _id: copyId }, update));
    const result = await withConnection({ writeConcern: { w: 0 } }, (connection) => createToolModel(connection).updateOne({ _id: tool._id }, structuredClone(update)));
    // Without the package, Mongoose returns the driver's unacknowledged result: a caller (or orFail()) must not read
    // "matched nothing" into a write that landed.
    expect(result).toEqual(raw);
  });

  it('with a WriteConcern instance of w: 0, a content write is refused naming writeConcern.w, and nothing is sent', async () => {
    const tool = await createSyncedTool();
    const before = await stored(tool._id);
    const { outcome, commands } = await withConnection({}, async (connection, commands) => {
      const model = createToolModel(connection);
      const options = { writeConcern: new mongoose.mongo.WriteConcern(0) };
      return { outcome: await attempt(() => model.updateOne({ _id: tool._id }, { $set: { description: 'Fire and forget with a WriteConcern.' } }, options)), commands };
    });
    expect(outcome.ok ? undefined : outcome.error).toBeInstanceOf(SyncArgumentError);
    expect(messageOf(outcome)).toMatch(/^writeConcern\.w: .*got 0$/);
    expect(commands.filter((name) => name === 'update' || name === 'findAndModify')).toEqual([]);
    expect(await stored(tool._id)).toEqual(before);
  });

  it('on a model whose schema has a select: false field (a global plugin), it is written and settled as the raw driver writes it', async () => {
    const hidden = (schema: mongoose.Schema): void => { schema.add({ internalNote: { type: String, select: false } }); };
    const model = modelWithGlobalPlugin('ToolWithHiddenField', hidden);
    const tool = await createSyncedTool();
    const copyId = await copyOf(tool._id);
    const update = { $set: { description: 'Written beside a hidden field.' } };
    const raw = await attempt(() => copies().updateOne({ _id: copyId }, structuredClone(update)));
    const written = await attempt(() => model.updateOne({ _id: tool._id }, structuredClone(update)));
    expect(raw.ok).toBe(true);
    expect(written.ok, `the raw driver's update succeeds; ToolModel's: ${messageOf(written)}`).toBe(true);
    expect(business(await stored(tool._id))).toEqual(business(await storedCopy(copyId)));
    expect(statuses(await expectSettled(tool._id))).toEqual(['stale', 'synced', 'synced', 'synced']);
  });

  it('on a query with a projection (select), it is written, and the hashes are those of the whole stored content', async () => {
    const tool = await createSyncedTool();
    const copyId = await copyOf(tool._id);
    const update = { $set: { description: 'Written by a query that selected fields.' } };
    // Without the package, Mongoose passes the projection to the driver's updateOne, which has no use for it.
    const raw = await attempt(() => copies().updateOne({ _id: copyId }, structuredClone(update)));
    const written = await attempt(() => ToolModel.where({ _id: tool._id }).select('-description').updateOne({}, structuredClone(update)).exec());
    expect(raw.ok).toBe(true);
    expect(written.ok, `the raw driver's update succeeds; ToolModel's: ${messageOf(written)}`).toBe(true);
    expect(business(await stored(tool._id))).toEqual(business(await storedCopy(copyId)));
    expect(statuses(await expectSettled(tool._id))).toEqual(['stale', 'synced', 'synced', 'synced']);
  });

  it('with sort, it is refused where the server refuses it for the raw driver, and otherwise updates the tool the sort picks', async () => {
    const category = `sorted-${new Types.ObjectId().toHexString()}`;
    const first = await createSyncedTool({ category, name: 'Alpha Tool' });
    const second = await createSyncedTool({ category, name: 'Beta Tool' });
    const copyIds = [await copyOf(first._id), await copyOf(second._id)];
    const update = { $set: { description: 'Picked by the sort.' } };
    const before = [await stored(first._id), await stored(second._id)];
    const raw = await attempt(() => copies().updateOne({ _id: { $in: copyIds } }, structuredClone(update), { sort: { name: -1 } }));
    // Mongoose's types leave out updateOne's `sort`; setOptions takes it, and Mongoose passes it on.
    const written = await attempt(() => ToolModel.updateOne({ _id: { $in: [first._id, second._id] } }, structuredClone(update)).setOptions({ sort: { name: -1 } }).exec());
    if (!raw.ok) {
      expect(written.ok, `the server refuses it for the raw driver (${messageOf(raw)}); ToolModel must too`).toBe(false);
      expect([await stored(first._id), await stored(second._id)]).toEqual(before);
      return;
    }
    expect(written.ok, messageOf(written)).toBe(true);
    expect((await stored(second._id)).description).toBe((await storedCopy(copyIds[1])).description);
    expect((await stored(first._id)).description).toBe((await storedCopy(copyIds[0])).description);
  });

  it('an upsert that inserts answers exactly as the raw driver (upsertedId included), and the new tool is settled', async () => {
    const input = toolInput();
    const copyInput = { ...input, id: `${String(input.id)}-copy` };
    const modelId = new Types.ObjectId();
    const copyId = new Types.ObjectId();
    const raw = await copies().updateOne({ _id: copyId }, { $set: copyInput }, { upsert: true });
    const result = await ToolModel.updateOne({ _id: modelId }, { $set: input }, { upsert: true });
    expect({ ...result, upsertedId: null }).toEqual({ ...raw, upsertedId: null });
    expect(String(result.upsertedId)).toBe(modelId.toHexString());
    expect(String(raw.upsertedId)).toBe(copyId.toHexString());
    const byFilterRaw = await copies().updateOne({ id: `${String(input.id)}-other-copy` }, { $set: { ...copyInput, id: `${String(input.id)}-other-copy` } }, { upsert: true });
    const byFilter = await ToolModel.updateOne({ id: `${String(input.id)}-other` }, { $set: { ...input, id: `${String(input.id)}-other` } }, { upsert: true });
    expect({ ...byFilter, upsertedId: null }).toEqual({ ...byFilterRaw, upsertedId: null });
    expect(byFilter.upsertedId).toBeInstanceOf(Types.ObjectId);
    expect((await rawTool({ _id: byFilter.upsertedId }))?.id).toBe(`${String(input.id)}-other`);
    await expectSettled(modelId);
    await expectSettled(byFilter.upsertedId);
  });

  it('hint, comment and maxTimeMS reach the server and the result is the raw driver\'s', async () => {
    const tool = await createSyncedTool();
    const copyId = await copyOf(tool._id);
    const options = { hint: { _id: 1 }, comment: 'attack', maxTimeMS: 10_000 };
    const update = { $set: { functionality: ['formats code', 'hinted'] } };
    const raw = await copies().updateOne({ _id: copyId }, structuredClone(update), options);
    const result = await ToolModel.updateOne({ _id: tool._id }, structuredClone(update), { ...options });
    expect(result).toEqual(raw);
    expect(business(await stored(tool._id))).toEqual(business(await storedCopy(copyId)));
    expect(statuses(await expectSettled(tool._id))).toEqual(['synced', 'stale', 'synced', 'synced']);
  });

  it('timestamps: false leaves the tool\'s updatedAt as the raw driver does, and the content change is settled', async () => {
    const tool = await createSyncedTool();
    const updatedAt = (await stored(tool._id)).updatedAt;
    await ToolModel.updateOne({ _id: tool._id }, { $set: { name: 'No Timestamp' } }, { timestamps: false });
    const after = await expectSettled(tool._id);
    expect(after.updatedAt).toEqual(updatedAt);
    expect(statuses(after)).toEqual(['stale', 'stale', 'stale', 'stale']);
  });

  it('a filter matching several tools updates and settles exactly one, and leaves the other untouched', async () => {
    const category = `several-${new Types.ObjectId().toHexString()}`;
    const tools = [await createSyncedTool({ category }), await createSyncedTool({ category })];
    const before = await Promise.all(tools.map((tool) => stored(tool._id)));
    const result = await ToolModel.updateOne({ category }, { $set: { description: 'Only one of them.' } });
    expect(result.matchedCount).toBe(1);
    const after = await Promise.all(tools.map((tool) => stored(tool._id)));
    const changed = after.filter((tool) => tool.description === 'Only one of them.');
    expect(changed).toHaveLength(1);
    for (const [index, tool] of after.entries()) {
      if (tool.description === 'Only one of them.') await expectSettled(tool._id);
      else expect(tool).toEqual(before[index]);
    }
  });

  it('a query-builder chain (where, then updateOne, then exec) and doc.updateOne() are written and settled', async () => {
    const tool = await createSyncedTool();
    const result = await ToolModel.where({ _id: tool._id }).updateOne({}, { $set: { tags: ['chained'] } }).exec();
    expect(result.matchedCount).toBe(1);
    expect(statuses(await expectSettled(tool._id))).toEqual(['stale', 'synced', 'synced', 'synced']);
    const doc = await ToolModel.findById(tool._id).orFail();
    await doc.updateOne({ $set: { useCases: ['through the document'] } });
    const after = await expectSettled(tool._id);
    expect(after.useCases).toEqual(['through the document']);
    expect(statuses(after)).toEqual(['stale', 'synced', 'stale', 'synced']);
  });

  it('orFail() throws when the filter matches no tool and writes nothing; resolves when it matches', async () => {
    const tool = await createSyncedTool();
    const before = await stored(tool._id);
    await expect(ToolModel.updateOne({ _id: tool._id, name: 'no such name' }, { $set: { description: 'Never.' } }).orFail())
      .rejects.toThrow(mongoose.Error.DocumentNotFoundError);
    expect(await stored(tool._id)).toEqual(before);
    const result = await ToolModel.updateOne({ _id: tool._id }, { $set: { description: 'Found.' } }).orFail();
    expect(result.matchedCount).toBe(1);
    await expectSettled(tool._id);
  });

  it('a user\'s updateOne hooks (a global plugin) run once, and the post hook sees the result the caller gets', async () => {
    const seen: string[] = [];
    const results: unknown[] = [];
    const hooks = (schema: mongoose.Schema): void => {
      schema.pre('updateOne', { document: false, query: true }, function countPre() { seen.push('pre'); });
      schema.post('updateOne', { document: false, query: true }, function countPost(result: unknown) {
        seen.push('post');
        results.push(result);
      });
    };
    const model = modelWithGlobalPlugin('ToolWithUserHooks', hooks);
    const tool = await createSyncedTool();
    const result = await model.updateOne({ _id: tool._id }, { $set: { description: 'Hooked.' } });
    expect(seen).toEqual(['pre', 'post']);
    expect(results).toEqual([result]);
    seen.length = 0;
    const doc = await model.findById(tool._id).orFail();
    await doc.updateOne({ $set: { name: 'Hooked Name' } });
    expect(seen).toEqual(['pre', 'post']);
    await expectSettled(tool._id);
  });

  it('a content write that reaches a tool stored with syncMetadata: null says to backfill first, and writes nothing', async () => {
    const id = new Types.ObjectId();
    await insertRaw({ _id: id, ...toolInput(), syncMetadata: null });
    const before = await rawTool({ _id: id });
    await expect(ToolModel.updateOne({ _id: id }, { $set: { description: 'Content on null metadata.' } })).rejects.toThrow(/tool-sync backfill/);
    await expect(ToolModel.findOneAndUpdate({ _id: id }, { $set: { description: 'Content on null metadata.' } }, { returnDocument: 'after' }))
      .rejects.toThrow(SyncArgumentError);
    expect(await rawTool({ _id: id })).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------
// findOneAndUpdate settled from what it returned.

describe('findOneAndUpdate returns what the raw driver returns, and its tool is settled', () => {
  it('with includeResultMetadata and lean, returning the tool after: the same result metadata, showing the settled state', async () => {
    const tool = await createSyncedTool();
    const copyId = await copyOf(tool._id);
    const update = { $addToSet: { interface: 'sdk' } };
    const raw = await copies().findOneAndUpdate({ _id: copyId }, structuredClone(update), { returnDocument: 'after', includeResultMetadata: true });
    const result = await ToolModel.findOneAndUpdate({ _id: tool._id }, structuredClone(update), { returnDocument: 'after', includeResultMetadata: true, lean: true });
    expect(Object.keys(result).sort()).toEqual(Object.keys(raw).sort());
    expect(result.lastErrorObject).toEqual(raw.lastErrorObject);
    const after = await expectSettled(tool._id);
    expect(statuses(after)).toEqual(['synced', 'synced', 'synced', 'stale']);
    expect((result.value as Doc | null)?.syncMetadata).toEqual(after.syncMetadata);
  });

  it('an upsert returning the original (null) inserts a tool that is settled', async () => {
    const input = toolInput();
    const result = await ToolModel.findOneAndUpdate({ id: String(input.id) }, { $setOnInsert: input }, { upsert: true, returnDocument: 'before' });
    expect(result).toBeNull();
    const inserted = await rawTool({ id: input.id });
    expect(inserted).not.toBeNull();
    expect(statuses(await expectSettled(inserted?._id))).toEqual(['pending', 'pending', 'pending', 'pending']);
  });
});

// ---------------------------------------------------------------------------------------------
// doc.save() of a loaded tool, settled from the document in memory.

describe('a save of a loaded tool is settled on what is stored', () => {
  it('a failed collection that the worker synced (and failed again) while the document was held goes stale, not pending, when the save changes its content', async () => {
    const created = await ToolModel.create(toolInput());
    await ToolModel.markCollectionFailed(created._id, 'tools', new Error('embedding timed out'), 'embedding');
    // An editor loads the tool: `tools` failed and was never synced.
    const held = await ToolModel.findById(created._id).orFail();
    // Meanwhile the worker embeds it once (vectors exist from then on), and a later re-embedding fails.
    await ToolModel.markCollectionSynced(created._id, 'tools', { contentHash: held.syncMetadata.collections.tools.contentHash });
    await ToolModel.markCollectionFailed(created._id, 'tools', new Error('rate limited'), 'embedding');
    const { lastSyncedAt } = (await stored(created._id)).syncMetadata.collections.tools;
    expect(lastSyncedAt).toBeInstanceOf(Date);

    held.description = 'Edited in the admin screen.';
    await held.save();
    const after = await expectSettled(created._id);
    // failed, ever synced → stale (README: "failed → stale: content changed …, if it was ever synced").
    expect(after.syncMetadata.collections.tools.status).toBe('stale');
    expect(after.syncMetadata.collections.tools.lastSyncedAt).toEqual(lastSyncedAt);
  });

  it('after the save, the document shows the stored sync metadata, not the one it was loaded with', async () => {
    const tool = await createSyncedTool();
    await ToolModel.markCollectionFailed(tool._id, 'usecases', new Error('first failure'), 'qdrant');
    const held = await ToolModel.findById(tool._id).orFail();
    // The worker retries while the document is held, and fails again.
    await ToolModel.markCollectionFailed(tool._id, 'usecases', new Error('second failure'), 'qdrant');
    held.description = 'Edited while the worker retried.';
    await held.save();
    const after = await expectSettled(tool._id);
    const shown = held.syncMetadata.collections.usecases;
    const { retryCount, lastError } = after.syncMetadata.collections.usecases;
    expect({ retryCount: shown.retryCount, lastError: shown.lastError }).toEqual({ retryCount, lastError });
    expect(retryCount).toBe(2);
  });

  it('a save of a tool whose stored metadata lacks some keys completes them, as an update of it does', async () => {
    const template = await stored((await createSyncedTool())._id);
    const incomplete = (): Doc => {
      const meta = structuredClone(template.syncMetadata);
      const { vectorVersion: _vectorVersion, lastSyncAttemptAt: _lastSyncAttemptAt, ...tools } = meta.collections.tools;
      return { ...meta, collections: { ...meta.collections, tools } };
    };
    const savedId = new Types.ObjectId();
    const updatedId = new Types.ObjectId();
    await insertRaw({ ...template, _id: savedId, id: `${String(template.id)}-saved`, syncMetadata: incomplete() });
    await insertRaw({ ...template, _id: updatedId, id: `${String(template.id)}-updated`, syncMetadata: incomplete() });

    const doc = await ToolModel.findById(savedId).orFail();
    doc.description = 'Edited: the stored metadata is completed.';
    await doc.save();
    await ToolModel.updateOne({ _id: updatedId }, { $set: { description: 'Edited: the stored metadata is completed.' } });

    const saved = await expectSettled(savedId);
    const updated = await expectSettled(updatedId);
    expect(Object.keys(updated.syncMetadata.collections.tools).sort()).toEqual(expect.arrayContaining(['lastSyncAttemptAt', 'vectorVersion']));
    expect(Object.keys(saved.syncMetadata.collections.tools).sort()).toEqual(Object.keys(updated.syncMetadata.collections.tools).sort());
  });

  it('array edits (push, pull, set by index, splice) are saved and settled with the hashes of the stored content', async () => {
    const tool = await createSyncedTool({ functionality: ['one', 'two', 'three'], tags: ['a', 'b'] });
    const edits: [string, (doc: InstanceType<typeof ToolModel>) => void][] = [
      ['push', (doc) => { doc.functionality.push('four'); }],
      ['pull', (doc) => { (doc.tags as unknown as Types.Array<string>).pull('a'); }],
      ['set by index', (doc) => { (doc.functionality as unknown as Types.Array<string>).set(0, 'first'); }],
      ['splice', (doc) => { doc.functionality.splice(1, 1); }],
      ['interface push', (doc) => { doc.interface.push('api'); }],
    ];
    for (const [name, edit] of edits) {
      const doc = await ToolModel.findById(tool._id).orFail();
      edit(doc);
      await doc.save();
      const after = await expectSettled(tool._id);
      const shown = doc.toObject() as unknown as Stored;
      expect(business(after), name).toEqual(business(shown));
      expect(shown.syncMetadata, `${name}: the document shows the stored metadata`).toEqual(after.syncMetadata);
    }
    expect((await stored(tool._id)).functionality).toEqual(['first', 'three', 'four']);
  });

  it('a tool loaded without a content field, saved with another content change, is hashed on its stored content', async () => {
    const tool = await createSyncedTool({ tags: ['kept', 'stored'] });
    const doc = await ToolModel.findById(tool._id).select('-tags').orFail();
    doc.description = 'Saved without its tags loaded.';
    await doc.save();
    const after = await expectSettled(tool._id);
    expect(after.tags).toEqual(['kept', 'stored']);
    expect(statuses(after)).toEqual(['stale', 'synced', 'synced', 'synced']);
  });
});

// ---------------------------------------------------------------------------------------------
// New tools: validation that leaves the sync metadata out.

describe('validating a new tool', () => {
  it('keeps the caller\'s pathsToSkip and pathsToValidate, reports content errors, and validateAllPaths still validates', async () => {
    const doc = new ToolModel(toolInput({ name: 'n'.repeat(300), description: 'd'.repeat(3000) }));
    const errorPaths = async (validate: () => Promise<void>): Promise<string[]> => {
      try {
        await validate();
        return [];
      } catch (error) {
        if (!(error instanceof mongoose.Error.ValidationError)) throw error;
        return Object.keys(error.errors).sort();
      }
    };
    expect(await errorPaths(() => doc.validate())).toEqual(['description', 'name']);
    expect(await errorPaths(() => doc.validate({ pathsToSkip: ['name'] }))).toEqual(['description']);
    expect(await errorPaths(() => doc.validate({ pathsToSkip: 'description' }))).toEqual(['name']);
    expect(await errorPaths(() => doc.validate(['name']))).toEqual(['name']);
    // Mongoose's types leave out the documented `validateAllPaths` option.
    const allPaths = { validateAllPaths: true } as unknown as mongoose.ValidateOptions;
    expect(await errorPaths(() => doc.validate(allPaths))).toEqual(['description', 'name']);
    // validateSync runs no middleware: the metadata defaults of a new tool ({} at each level) must be valid on their own.
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- the deprecated API is what is checked
    expect(Object.keys(doc.validateSync()?.errors ?? {}).sort()).toEqual(['description', 'name']);
    const valid = new ToolModel(toolInput());
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- the deprecated API is what is checked
    expect(valid.validateSync()).toBeUndefined();
    await valid.validate(allPaths);
    await valid.save();
    await expectSettled(valid._id);
  });
});

// ---------------------------------------------------------------------------------------------
// Older than today's change, found on the way (they fail on 8f98c62 too).

describe('insertMany', () => {
  it('with lean, refuses input that names syncMetadata (the package owns it), and inserts nothing', async () => {
    const input = toolInput({ syncMetadata: { overallStatus: 'synced' } });
    const outcome = await attempt(() => ToolModel.insertMany([input], { lean: true }));
    expect(outcome.ok ? 'inserted' : outcome.error).toBeInstanceOf(SyncArgumentError);
    expect(await rawTool({ id: input.id })).toBeNull();
  });
});

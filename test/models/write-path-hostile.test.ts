import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { type Tool, aggregateSyncStatus, computeContentHashes, SYNC_COLLECTION_NAMES, SyncArgumentError, ToolModel, type ITool } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { specBackfillShape } from '../helpers/legacy.js';
import { createSyncedTool } from '../helpers/sync.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

type Stored = Record<string, unknown> & { syncMetadata: { overallStatus: string; pendingHashCheck?: unknown; collections: Record<string, { status: string; contentHash: string; vectorVersion: number }> } };
const stored = async (id: unknown): Promise<Stored> => (await rawTool({ _id: id })) as unknown as Stored;

/** Every invariant of a settled tool, read from what the server stores. */
async function expectSettled(id: unknown): Promise<Stored> {
  const tool = await stored(id);
  const hashes = computeContentHashes(tool as Record<string, unknown>);
  const meta = tool.syncMetadata;
  expect(meta.pendingHashCheck ?? null).toBeNull();
  for (const name of SYNC_COLLECTION_NAMES) expect(meta.collections[name]?.contentHash, name).toBe(hashes[name]);
  expect(meta.overallStatus).toBe(aggregateSyncStatus(SYNC_COLLECTION_NAMES.map((name) => meta.collections[name]?.status as 'pending')));
  return tool;
}

const statuses = (tool: Stored): string[] => SYNC_COLLECTION_NAMES.map((name) => tool.syncMetadata.collections[name]?.status ?? '');

class EditToolDto {
  constructor(readonly description: string, readonly tags: string[]) {}
}

describe('updates that are not plain objects are read as the paths Mongoose casts', () => {
  it('a DTO class instance as the update changes content and transitions it', async () => {
    const tool = await createSyncedTool();
    await ToolModel.updateOne({ _id: tool._id }, new EditToolDto('Edited through a DTO.', ['dto']));
    const after = await expectSettled(tool._id);
    expect(after.description).toBe('Edited through a DTO.');
    expect(statuses(after)).toEqual(['stale', 'synced', 'synced', 'synced']);
  });

  it('a Map or a DTO naming syncMetadata is refused, in $set and $setOnInsert, and nothing is written', async () => {
    const tool = await createSyncedTool();
    const before = await rawTool({ _id: tool._id });
    await expect(ToolModel.updateOne({ _id: tool._id }, { $set: new Map([['syncMetadata.overallStatus', 'failed']]) })).rejects.toThrow(SyncArgumentError);
    const forged = Object.assign(new EditToolDto('d', []), { 'syncMetadata.collections.tools.status': 'synced' });
    await expect(ToolModel.updateOne({ id: 'forged-upsert' }, { $set: { name: 'F', description: 'd', category: 'c' }, $setOnInsert: forged }, { upsert: true }))
      .rejects.toThrow(SyncArgumentError);
    expect(await rawTool({ _id: tool._id })).toEqual(before);
    expect(await rawTool({ id: 'forged-upsert' })).toBeNull();
  });
});

describe('bulkWrite', () => {
  it('refuses an operation with more than one kind, naming it, and writes nothing', async () => {
    const tool = await createSyncedTool();
    const before = await rawTool({ _id: tool._id });
    const twoKinds = {
      deleteOne: { filter: { id: 'nope' } },
      updateOne: { filter: { _id: tool._id }, update: { $set: { 'syncMetadata.collections.tools.status': 'synced', description: 'forged' } } },
    };
    await expect(ToolModel.bulkWrite([twoKinds] as never)).rejects.toThrow(/operations\[0\].*exactly one of/);
    expect(await rawTool({ _id: tool._id })).toEqual(before);
  });

  it('a replacement body with an own __proto__ key (a JSON PUT) keeps its bookkeeping', async () => {
    const tool = await createSyncedTool();
    const body = JSON.parse(`{"__proto__":{"x":1},"id":"${tool.id}","name":"${tool.name}","description":"Replaced in bulk.","category":"c"}`) as Tool;
    await ToolModel.bulkWrite([{ replaceOne: { filter: { _id: tool._id }, replacement: body } }]);
    const after = await expectSettled(tool._id);
    expect(after.description).toBe('Replaced in bulk.');
    expect(after.syncMetadata.collections.tools?.status).toBe('stale');
  });
});

describe('saves of tools loaded without their metadata', () => {
  it('keep the stored sync state, and a content change is settled', async () => {
    const tool = await createSyncedTool();
    await ToolModel.markCollectionFailed(tool._id, 'usecases', new Error('x'), 'qdrant');
    const loaded = await ToolModel.findById(tool._id).select('-syncMetadata').orFail();
    loaded.url = 'https://example.org/elsewhere';
    await loaded.save();
    let after = await expectSettled(tool._id);
    expect(statuses(after)).toEqual(['synced', 'synced', 'failed', 'synced']);
    expect(after.syncMetadata.collections.tools?.vectorVersion).toBe(1);

    const again = await ToolModel.findById(tool._id, { description: 1, 'syncMetadata.overallStatus': 1 }).orFail();
    again.description = 'Changed through a projection.';
    await again.save();
    after = await expectSettled(tool._id);
    expect(statuses(after)).toEqual(['stale', 'synced', 'failed', 'synced']);
  });

  it('two loaded copies saving different fields do not conflict over the bookkeeping', async () => {
    const tool = await createSyncedTool();
    const first = await ToolModel.findById(tool._id).orFail();
    const second = await ToolModel.findById(tool._id).orFail();
    first.url = 'https://example.org/one';
    await first.save();
    second.category = 'another-category';
    await expect(second.save()).resolves.toBeDefined();
    const after = await expectSettled(tool._id);
    expect([after.url, after.category]).toEqual(['https://example.org/one', 'another-category']);
  });

  it('validate() marks nothing on the document', async () => {
    const tool: ITool = await createSyncedTool();
    tool.description = 'Validated, not saved.';
    await tool.validate();
    expect(tool.syncMetadata.pendingHashCheck).toBeNull();
    expect(tool.isModified('syncMetadata.lastModifiedFields')).toBe(false);
  });
});

describe('legacy and upserted tools', () => {
  it("an edit of the spec's partial shape never leaves a collection synced for text nobody embedded", async () => {
    const id = new mongoose.Types.ObjectId();
    await insertRaw({ _id: id, ...toolInput(), syncMetadata: specBackfillShape() });
    await ToolModel.updateOne({ _id: id }, { $set: { functionality: ['brand new'] } });
    const after = await expectSettled(id);
    expect(after.syncMetadata.collections.functionality?.status).toBe('stale');
  });

  it('an upsert that names no content field still creates a complete, settled tool', async () => {
    await ToolModel.updateOne({ id: 'upsert-no-content', name: 'N', description: 'd', category: 'c' }, { $set: { url: 'https://example.org' } }, { upsert: true });
    const created = await rawTool({ id: 'upsert-no-content' });
    const after = await expectSettled(created?._id);
    expect(statuses(after)).toEqual(['pending', 'pending', 'pending', 'pending']);
  });

  it('an upsert needs real values for the required fields, and seeds no nested path', async () => {
    await expect(ToolModel.updateOne({ id: 'u1' }, { $set: { name: undefined, description: 'd', category: 'c' } }, { upsert: true })).rejects.toThrow(/name/);
    await expect(ToolModel.updateOne({ id: 'u2', name: 'n', description: 'd', category: 'c', 'url.evil': 'javascript:1' }, { $set: { tags: ['t'] } }, { upsert: true }))
      .rejects.toThrow(/url\.evil/);
    expect(await rawTool({ id: { $in: ['u1', 'u2'] } })).toBeNull();
  });
});

describe('large writes', () => {
  it('a content updateMany over more tools than one settle bulk holds answers, and settles every tool', { timeout: 120_000 }, async () => {
    // FerretDB v1 never answers an update command of 100 statements (50 with PostgreSQL): the settle writes in bulks of 25.
    const many = await ToolModel.insertMany(Array.from({ length: 120 }, () => toolInput({ category: 'many-tools' })));
    await ToolModel.updateMany({ category: 'many-tools' }, { $set: { description: 'All of them, changed.' } });
    expect(await ToolModel.countDocuments({ category: 'many-tools', 'syncMetadata.pendingHashCheck': { $ne: null } })).toBe(0);
    for (const tool of many.slice(0, 5)) await expectSettled(tool._id);
  });
});

describe('writes the plain model accepts or refuses, the same', () => {
  it('insertMany refuses a tool loaded from the database (its sync state would be copied), and inserts nothing', async () => {
    const tool = await createSyncedTool();
    const copy = await ToolModel.findById(tool._id).orFail();
    copy.id = `${tool.id}-copy`;
    copy._id = new mongoose.Types.ObjectId();
    await expect(ToolModel.insertMany([copy])).rejects.toThrow(/documents\[0\].*a new tool/);
    expect(await rawTool({ id: `${tool.id}-copy` })).toBeNull();
  });

  it('replaceOne(...).orFail() throws when nothing matched, as without the package', async () => {
    const missing = new mongoose.Types.ObjectId();
    await expect(ToolModel.replaceOne({ _id: missing }, toolInput()).orFail()).rejects.toThrow(mongoose.Error.DocumentNotFoundError);
    await expect(ToolModel.findOneAndReplace({ _id: missing }, toolInput()).orFail()).rejects.toThrow(mongoose.Error.DocumentNotFoundError);
  });
});

describe('legacy tools stored with syncMetadata: null', () => {
  it('a write that reaches one says to backfill first, and backfill makes it writable', async () => {
    const id = new mongoose.Types.ObjectId();
    await insertRaw({ _id: id, ...toolInput(), syncMetadata: null });
    await expect(ToolModel.updateOne({ _id: id }, { $set: { url: 'https://example.org/null' } })).rejects.toThrow(/tool-sync backfill/);
    await ToolModel.settleSyncState(id);
    await ToolModel.updateOne({ _id: id }, { $set: { url: 'https://example.org/null' } });
    expect((await expectSettled(id)).url).toBe('https://example.org/null');
  });
});

describe('save({ validateBeforeSave: false })', () => {
  it('still hashes a new tool and refuses sync metadata a user set', async () => {
    const tool = new ToolModel(toolInput());
    await tool.save({ validateBeforeSave: false });
    await expectSettled(tool._id);
    const forged = new ToolModel(toolInput());
    forged.syncMetadata.collections.tools.status = 'synced';
    await expect(forged.save({ validateBeforeSave: false })).rejects.toThrow(SyncArgumentError);
    expect(await rawTool({ _id: forged._id })).toBeNull();
  });
});

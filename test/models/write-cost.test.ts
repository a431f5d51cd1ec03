import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { computeContentHashes, SYNC_COLLECTION_NAMES, SyncArgumentError, ToolModel } from '../../src/index.js';
import { updatesPerBulk } from '../../src/models/updates-per-bulk.js';
import { commandNamesDuring } from '../helpers/commands.js';
import { useMonitoredTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';

// The hot path's cost counted in commands, not timed: what each write sends to the server.
useMonitoredTestDatabase(import.meta.url);


describe('commands per write', () => {
  it('a content updateOne is one findAndModify (the caller\'s filter, update and options, returning what it stored) and one conditional write', async () => {
    const tool = await createSyncedTool();
    const commands = await commandNamesDuring(() => ToolModel.updateOne({ _id: tool._id }, { $set: { description: 'Says what it does, better.' } }));
    expect(commands).toEqual(['findAndModify', 'update']);
    const stored = await ToolModel.findById(tool._id).orFail();
    expect(stored.syncMetadata.collections.tools.contentHash).toBe(computeContentHashes(stored).tools);
    expect(stored.syncMetadata.collections.tools.status).toBe('stale');
    expect(stored.syncMetadata.pendingHashCheck).toBeNull();
  });

  it('a content updateOne that matches nothing is one command: nothing to settle', async () => {
    expect(await commandNamesDuring(() => ToolModel.updateOne({ id: 'no-such-tool' }, { $set: { description: 'Nobody.' } }))).toEqual(['findAndModify']);
  });

  it('findOneAndUpdate returning the whole tool after the write is settled from it; returning the original, from a read', async () => {
    const tool = await createSyncedTool();
    const after = await commandNamesDuring(() => ToolModel.findOneAndUpdate({ _id: tool._id }, { $set: { description: 'After.' } }, { returnDocument: 'after' }));
    expect(after).toEqual(['findAndModify', 'update']);
    const before = await commandNamesDuring(() => ToolModel.findOneAndUpdate({ _id: tool._id }, { $set: { description: 'Before.' } }));
    expect(before).toEqual(['findAndModify', 'find', 'update']);
    const stored = await ToolModel.findById(tool._id).orFail();
    expect(stored.syncMetadata.collections.tools.contentHash).toBe(computeContentHashes(stored).tools);
    expect(stored.syncMetadata.pendingHashCheck).toBeNull();
  });

  it('an unacknowledged content updateOne costs nothing: it is refused before anything is sent (nothing could settle it without racing it)', async () => {
    const tool = await createSyncedTool();
    let error: unknown;
    const names = await commandNamesDuring(async () => {
      error = await ToolModel.updateOne({ _id: tool._id }, { $set: { description: 'Fire and forget.' } }, { writeConcern: { w: 0 } })
        .then(() => undefined, (thrown: unknown) => thrown);
    });
    expect(error).toBeInstanceOf(SyncArgumentError);
    expect(names).toEqual([]);
  });

  it('an update of a field no collection embeds is one write', async () => {
    const tool = await createSyncedTool();
    expect(await commandNamesDuring(() => ToolModel.updateOne({ _id: tool._id }, { $set: { url: 'https://example.org/moved' } }))).toEqual(['update']);
  });

  it('a save of a loaded document that changed content is the save and one conditional write, planned from the document', async () => {
    const tool = await createSyncedTool();
    tool.description = 'Loaded, edited and saved.';
    expect(await commandNamesDuring(() => tool.save())).toEqual(['update', 'update']);
    expect(tool.syncMetadata.collections.tools.status).toBe('stale');
    expect(tool.syncMetadata.pendingHashCheck).toBeNull();
    const stored = await ToolModel.findById(tool._id).orFail();
    expect(stored.syncMetadata.collections.tools.contentHash).toBe(computeContentHashes(stored).tools);
    expect(stored.syncMetadata.pendingHashCheck).toBeNull();
  });

  it('a save whose document no longer holds what is stored (written in between) is settled from a read, on the stored content', async () => {
    const tool = await createSyncedTool();
    // Another writer, around the package, changes content the loaded document still shows as it was.
    await ToolModel.collection.updateOne({ _id: tool._id }, { $set: { name: 'Renamed elsewhere' } });
    tool.description = 'Edited on a stale copy.';
    expect(await commandNamesDuring(() => tool.save())).toEqual(['update', 'update', 'find', 'update']);
    const stored = await ToolModel.findById(tool._id).orFail();
    expect(stored.name).toBe('Renamed elsewhere');
    const hashes = computeContentHashes(stored);
    for (const name of SYNC_COLLECTION_NAMES) expect(stored.syncMetadata.collections[name].contentHash, name).toBe(hashes[name]);
    expect(tool.syncMetadata.collections.functionality.contentHash).toBe(computeContentHashes(stored).functionality);
  });

  it('a save of a lone surrogate: the settle\'s condition is encoded as the save was (U+FFFD), and the hash is the stored text\'s', async () => {
    const tool = await createSyncedTool();
    tool.description = 'Broken \uD800 text';
    expect(await commandNamesDuring(() => tool.save())).toEqual(['update', 'update']);
    const stored = await ToolModel.findById(tool._id).orFail();
    expect(stored.description).toBe('Broken \uFFFD text');
    expect(stored.syncMetadata.collections.tools.contentHash).toBe(computeContentHashes(stored).tools);
  });

  it('updateMany of many tools is one write, one read, and the settle\'s bulks (one per 1,000 tools; per 25 on FerretDB 1.x)', async () => {
    const tools = await Promise.all(Array.from({ length: 30 }, () => createSyncedTool({ category: 'many' })));
    const perBulk = await updatesPerBulk(mongoose.connection, tools.length);
    const commands = await commandNamesDuring(() => ToolModel.updateMany({ category: 'many' }, { $push: { useCases: 'one more' } }));
    expect(commands).toEqual(['update', 'find', ...Array.from({ length: Math.ceil(tools.length / perBulk) }, () => 'update')]);
    for (const tool of tools) expect((await ToolModel.findById(tool._id).orFail()).syncMetadata.collections.usecases.status).toBe('stale');
  });
});

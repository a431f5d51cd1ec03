import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { computeContentHashes, ToolModel } from '../../src/index.js';
import { useMonitoredTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';

// The hot path's cost counted in commands, not timed: what each write sends to the server.
useMonitoredTestDatabase(import.meta.url);

async function commandsDuring(run: () => Promise<unknown>): Promise<string[]> {
  const client = mongoose.connection.getClient();
  const names: string[] = [];
  const record = (event: { commandName: string }): void => { names.push(event.commandName); };
  client.on('commandStarted', record);
  try {
    await run();
  } finally {
    client.off('commandStarted', record);
  }
  return names;
}

describe('commands per write', () => {
  it('a content update is the caller\'s write as sent, then one read of what was stored and one conditional write', async () => {
    const tool = await createSyncedTool();
    const commands = await commandsDuring(() => ToolModel.updateOne({ _id: tool._id }, { $set: { description: 'Says what it does, better.' } }));
    expect(commands).toEqual(['update', 'find', 'update']);
    const stored = await ToolModel.findById(tool._id).orFail();
    expect(stored.syncMetadata.collections.tools.contentHash).toBe(computeContentHashes(stored).tools);
    expect(stored.syncMetadata.collections.tools.status).toBe('stale');
  });

  it('an update of a field no collection embeds is one write', async () => {
    const tool = await createSyncedTool();
    expect(await commandsDuring(() => ToolModel.updateOne({ _id: tool._id }, { $set: { url: 'https://example.org/moved' } }))).toEqual(['update']);
  });

  it('a save of a loaded document that changed content writes, then settles (one read, one conditional write)', async () => {
    const tool = await createSyncedTool();
    tool.description = 'Loaded, edited and saved.';
    expect(await commandsDuring(() => tool.save())).toEqual(['update', 'find', 'update']);
    expect(tool.syncMetadata.collections.tools.status).toBe('stale');
    expect(tool.syncMetadata.pendingHashCheck).toBeNull();
  });

  it('updateMany of many tools is one write, one read, and one bulk write per 25 tools', async () => {
    const tools = await Promise.all(Array.from({ length: 30 }, () => createSyncedTool({ category: 'many' })));
    const commands = await commandsDuring(() => ToolModel.updateMany({ category: 'many' }, { $push: { useCases: 'one more' } }));
    expect(commands).toEqual(['update', 'find', 'update', 'update']);
    for (const tool of tools) expect((await ToolModel.findById(tool._id).orFail()).syncMetadata.collections.usecases.status).toBe('stale');
  });
});

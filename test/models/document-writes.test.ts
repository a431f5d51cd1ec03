import { describe, expect, it } from 'vitest';
import { aggregateSyncStatus, computeContentHashes, SYNC_COLLECTION_NAMES, ToolModel, type ITool } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';
import { toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

const reload = (tool: ITool): Promise<ITool> => ToolModel.findById(tool._id).orFail();
const statuses = (tool: ITool): string[] => SYNC_COLLECTION_NAMES.map((name) => tool.syncMetadata.collections[name].status);

describe('doc.save() with changed content', () => {
  it('marks only the collections whose fields changed stale, with their new hash', async () => {
    const tool = await createSyncedTool();
    const metadataBefore = tool.syncMetadata.updatedAt;
    tool.useCases = ['migrate a database', 'keep a codebase tidy'];
    await tool.save();
    const after = await reload(tool);
    expect(statuses(after)).toEqual(['synced', 'synced', 'stale', 'synced']);
    expect(after.syncMetadata.collections.usecases.contentHash).toBe(computeContentHashes(after).usecases);
    expect(after.syncMetadata.collections.functionality.contentHash).toBe(tool.syncMetadata.collections.functionality.contentHash);
    expect(after.syncMetadata.overallStatus).toBe('stale');
    expect([...after.syncMetadata.lastModifiedFields]).toEqual(['useCases']);
    expect(after.syncMetadata.updatedAt.getTime()).toBeGreaterThan(metadataBefore.getTime());
  });

  it('marks all four when the name changes, and lists every changed business field', async () => {
    const tool = await createSyncedTool();
    tool.name = 'Renamed Tool';
    tool.url = 'https://example.org/renamed';
    await tool.save();
    const after = await reload(tool);
    expect(statuses(after)).toEqual(['stale', 'stale', 'stale', 'stale']);
    expect([...after.syncMetadata.lastModifiedFields].sort()).toEqual(['name', 'url']);
  });

  it('sends failed back in line with fresh retries: stale if ever synced, pending if not', async () => {
    const synced = await createSyncedTool();
    const never = await ToolModel.create(toolInput());
    for (const tool of [synced, never]) {
      await ToolModel.markCollectionFailed(tool._id, 'interface', new Error('x'), 'embedding');
      await ToolModel.markCollectionFailed(tool._id, 'interface', new Error('x'), 'embedding');
      const loaded = await reload(tool);
      loaded.interface = ['api'];
      await loaded.save();
    }
    expect((await reload(synced)).syncMetadata.collections.interface).toMatchObject({ status: 'stale', retryCount: 0 });
    expect((await reload(never)).syncMetadata.collections.interface).toMatchObject({ status: 'pending', retryCount: 0 });
  });

  it('leaves pending and stale as they are', async () => {
    const tool = await ToolModel.create(toolInput());
    tool.description = 'A new description.';
    await tool.save();
    expect(statuses(await reload(tool))).toEqual(['pending', 'pending', 'pending', 'pending']);
  });

  it('changes no status when no content changed (url, reordered tags)', async () => {
    const tool = await createSyncedTool({ tags: ['a', 'b'] });
    tool.url = 'https://example.org/moved';
    tool.tags = ['b', 'a'];
    await tool.save();
    const after = await reload(tool);
    expect(statuses(after)).toEqual(['synced', 'synced', 'synced', 'synced']);
    expect(after.syncMetadata.overallStatus).toBe('synced');
    expect([...after.syncMetadata.lastModifiedFields].sort()).toEqual(['tags', 'url']);
  });

  it('keeps the overall status true when a transition landed between load and save', async () => {
    const tool = await createSyncedTool();
    const loaded = await reload(tool);
    await ToolModel.markCollectionFailed(tool._id, 'tools', new Error('x'), 'qdrant');
    loaded.functionality = ['something else'];
    await loaded.save();
    const after = await reload(tool);
    expect(after.syncMetadata.collections.tools.status).toBe('failed');
    expect(after.syncMetadata.collections.functionality.status).toBe('stale');
    expect(after.syncMetadata.overallStatus).toBe(aggregateSyncStatus(statuses(after) as never));
    expect(after.syncMetadata.overallStatus).toBe('failed');
  });

  it('never leaves a collection synced for content the worker did not embed', async () => {
    const tool = await ToolModel.create(toolInput());
    const loaded = await reload(tool);
    // The worker syncs the old content after the app loaded the tool, before it saves an edit.
    await ToolModel.markCollectionSynced(tool._id, 'usecases', { contentHash: tool.syncMetadata.collections.usecases.contentHash });
    loaded.useCases = ['new use'];
    await loaded.save();
    const after = await reload(tool);
    expect(after.syncMetadata.collections.usecases.status).not.toBe('synced');
    expect(after.syncMetadata.collections.usecases.contentHash).toBe(computeContentHashes(after).usecases);
  });
});

describe('validating a new tool', () => {
  it('keeps the caller\'s validate options: paths to skip are skipped, the rest validated', async () => {
    const doc = new ToolModel(toolInput({ url: 'javascript:alert(1)', pricing: 'priceless' }));
    const error = await doc.validate({ pathsToSkip: ['url'] }).then(() => null, (e: unknown) => e as Error);
    expect(error?.message).toContain('pricing');
    expect(error?.message).not.toContain('url');
  });

  it('validates every path when the caller asks for every path (Mongoose refuses that option beside paths to skip)', async () => {
    const doc = new ToolModel(toolInput());
    // Mongoose's types leave out its documented `validateAllPaths` option.
    const everyPath: Record<string, unknown> = { validateAllPaths: true };
    await expect(doc.validate(everyPath)).resolves.toBeUndefined();
    expect(doc.syncMetadata.collections.tools.contentHash).toBe(computeContentHashes(doc).tools);
  });
});

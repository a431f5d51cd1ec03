import { describe, expect, it, vi } from 'vitest';
import {
  computeContentHashes,
  defaultCollectionSyncStatus,
  defaultSyncMetadata,
  SYNC_COLLECTION_NAMES,
  ToolModel,
  type ITool,
  SyncArgumentError,
} from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

/** Checks a stored (raw) document's complete default sync metadata and real hashes. */
function expectCompleteDefaults(stored: Record<string, unknown> | null, input: Record<string, unknown>): void {
  expect(stored).not.toBeNull();
  const doc = stored as { syncMetadata: Record<string, unknown>; createdAt: unknown; updatedAt: unknown };
  expect(doc.createdAt).toBeInstanceOf(Date);
  expect(doc.updatedAt).toBeInstanceOf(Date);
  const meta = doc.syncMetadata as {
    overallStatus: string;
    lastModifiedFields: string[];
    createdAt: unknown;
    updatedAt: unknown;
    collections: Record<string, Record<string, unknown>>;
  };
  expect(meta.overallStatus).toBe('pending');
  expect(meta.lastModifiedFields).toEqual([]);
  expect(meta.createdAt).toBeInstanceOf(Date);
  expect(meta.updatedAt).toBeInstanceOf(Date);
  expect('_id' in meta).toBe(false);
  expect(Object.keys(meta.collections).sort()).toEqual([...SYNC_COLLECTION_NAMES].sort());
  const hashes = computeContentHashes(input);
  for (const name of SYNC_COLLECTION_NAMES) {
    expect(meta.collections[name]).toEqual({
      status: 'pending',
      lastSyncedAt: null,
      lastSyncAttemptAt: null,
      lastError: null,
      errorCode: null,
      retryCount: 0,
      nextRetryAt: null,
      contentHash: hashes[name],
      vectorVersion: 0,
      claimedBy: null,
      claimedUntil: null,
      embeddingModel: null,
    });
  }
}

describe('a new tool carries complete default sync metadata', () => {
  it('as defaultSyncMetadata() gives it (the schema fills each field\'s own default), hashed once validated', async () => {
    const input = toolInput();
    const doc = new ToolModel(input);
    const withoutTimes = ({ createdAt: _created, updatedAt: _updated, ...rest }: Record<string, unknown>): Record<string, unknown> => rest;
    const shown = (): Record<string, unknown> => withoutTimes(doc.toObject().syncMetadata as unknown as Record<string, unknown>);
    const expected = withoutTimes(defaultSyncMetadata() as unknown as Record<string, unknown>);
    expect(shown()).toEqual(expected);
    for (const time of [doc.syncMetadata.createdAt, doc.syncMetadata.updatedAt]) expect(Math.abs(Date.now() - time.getTime())).toBeLessThan(5_000);
    await doc.validate();
    const hashes = computeContentHashes(input);
    const collections = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, Object.assign(defaultCollectionSyncStatus(), { contentHash: hashes[name] })]));
    expect(shown()).toEqual({ ...expected, collections });
  });

  it('through new ToolModel() and save()', async () => {
    const input = toolInput();
    const doc = new ToolModel(input);
    expect(doc.syncMetadata.overallStatus).toBe('pending');
    expect(doc.syncMetadata.collections.usecases.retryCount).toBe(0);
    await doc.save();
    expectCompleteDefaults(await rawTool({ _id: doc._id }), input);
  });

  it('through ToolModel.create()', async () => {
    const input = toolInput();
    const doc = await ToolModel.create(input);
    expectCompleteDefaults(await rawTool({ _id: doc._id }), input);
  });

  it('through ToolModel.insertMany()', async () => {
    const inputs = [toolInput({ name: 'First' }), toolInput({ name: 'Second', tags: ['other'] })];
    const docs = await ToolModel.insertMany(inputs);
    for (const [i, doc] of docs.entries()) expectCompleteDefaults(await rawTool({ _id: doc._id }), inputs[i] ?? {});
  });

  it('refuses sync metadata in the input (tool-sync writes it), and stores nothing', async () => {
    const input = toolInput({ syncMetadata: { collections: { tools: { contentHash: '' } } } });
    await expect(ToolModel.create(input)).rejects.toThrow(SyncArgumentError);
    expect(await rawTool({ id: input.id })).toBeNull();
  });
});

describe('nested defaults are fresh objects', () => {
  it('changing one document\'s metadata never changes another\'s', async () => {
    const a: ITool = new ToolModel(toolInput());
    const b: ITool = new ToolModel(toolInput());
    a.syncMetadata.collections.tools.status = 'failed';
    a.syncMetadata.collections.tools.retryCount = 3;
    a.syncMetadata.lastModifiedFields.push('name');
    expect(b.syncMetadata.collections.tools.status).toBe('pending');
    expect(b.syncMetadata.collections.tools.retryCount).toBe(0);
    expect(b.syncMetadata.lastModifiedFields).toEqual([]);
    expect(a.syncMetadata.collections.functionality.status).toBe('pending');
    // Saving `a` is refused (a user cannot set sync state); `b` saves with its own defaults.
    await expect(a.save()).rejects.toThrow(SyncArgumentError);
    await b.save();
    const storedB = (await rawTool({ _id: b._id })) as { syncMetadata: { collections: { tools: { status: string } } } };
    expect(storedB.syncMetadata.collections.tools.status).toBe('pending');
  });

  it('defaultSyncMetadata() and defaultCollectionSyncStatus() return new objects on every call', () => {
    // One clock for both calls: their timestamps are "now", which may tick between them.
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), toFake: ['Date'] });
    const first = defaultSyncMetadata();
    const second = defaultSyncMetadata();
    vi.useRealTimers();
    expect(first).toEqual(second);
    expect(first.collections).not.toBe(second.collections);
    expect(first.collections.tools).not.toBe(first.collections.functionality);
    expect(first.lastModifiedFields).not.toBe(second.lastModifiedFields);
    first.collections.tools.status = 'synced';
    expect(defaultCollectionSyncStatus().status).toBe('pending');
    expect(second.collections.tools.status).toBe('pending');
  });
});

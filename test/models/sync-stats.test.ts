import mongoose from 'mongoose';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import {
  SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SYNC_STATUSES, SyncArgumentError, ToolModel,
  type StoredTool, type SyncErrorCode, type SyncStats, type SyncStatus,
} from '../../src/index.js';
import { commandsDuring } from '../helpers/commands.js';
import { skipReason } from '../helpers/capabilities.js';
import { engine, useMonitoredTestDatabase } from '../helpers/database.js';
import { insertRaw, toolInput } from '../helpers/tools.js';

/*
 * getSyncStats from counts the indexes serve, against the server: the same numbers as a pass
 * over every tool, the commands it sends, and (where explain gives executionStats) that no count
 * examines the synced tools of a catalog.
 */

useMonitoredTestDatabase(import.meta.url);

beforeEach(async () => {
  await ToolModel.deleteMany({});
});

const asStatus = (value: unknown): SyncStatus => ((SYNC_STATUSES as readonly unknown[]).includes(value) ? (value as SyncStatus) : 'pending');

/** The dashboard's numbers from a pass over every tool, read raw: what the counts must agree with. */
async function byReadingEveryTool(now: Date): Promise<Partial<SyncStats>> {
  const tools = (await ToolModel.collection.find().toArray()) as StoredTool[];
  const meta = (tool: StoredTool): Record<string, unknown> | undefined => (typeof tool.syncMetadata === 'object' && tool.syncMetadata !== null ? tool.syncMetadata as Record<string, unknown> : undefined);
  const state = (tool: StoredTool, name: string): Record<string, unknown> | undefined => (meta(tool)?.collections as Record<string, Record<string, unknown>> | undefined)?.[name];
  const byOverallStatus = Object.fromEntries(SYNC_STATUSES.map((status) => [status, 0])) as Record<SyncStatus, number>;
  const byCollection = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, { ...byOverallStatus }])) as SyncStats['byCollection'];
  const failuresByErrorCode = Object.fromEntries(SYNC_ERROR_CODES.map((code) => [code, 0])) as Record<SyncErrorCode, number>;
  const inFlight = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, 0])) as SyncStats['inFlight'];
  let oldest = Number.POSITIVE_INFINITY;
  const oldestIn = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, Number.POSITIVE_INFINITY])) as Record<string, number>;
  for (const tool of tools) {
    byOverallStatus[asStatus(meta(tool)?.overallStatus)] += 1;
    // A legacy tool waits since it was made.
    if (meta(tool)?.overallStatus === undefined && tool._id instanceof mongoose.Types.ObjectId) oldest = Math.min(oldest, tool._id.getTimestamp().getTime());
    for (const name of SYNC_COLLECTION_NAMES) {
      const collection = state(tool, name);
      const status = asStatus(collection?.status);
      byCollection[name][status] += 1;
      if (status === 'failed') {
        const code = collection?.errorCode;
        failuresByErrorCode[(SYNC_ERROR_CODES as readonly unknown[]).includes(code) ? (code as SyncErrorCode) : 'UNKNOWN'] += 1;
      }
      const until = collection?.claimedUntil;
      if (until instanceof Date && until.getTime() > now.getTime()) inFlight[name] += 1;
      const updatedAt = meta(tool)?.updatedAt;
      if ((collection?.status === 'pending' || collection?.status === 'stale') && updatedAt instanceof Date) {
        oldest = Math.min(oldest, updatedAt.getTime());
        oldestIn[name] = Math.min(oldestIn[name] ?? Number.POSITIVE_INFINITY, updatedAt.getTime());
      }
    }
  }
  return {
    total: tools.length,
    byOverallStatus,
    byCollection,
    failuresByErrorCode,
    inFlight,
    legacyWithoutMetadata: tools.filter((tool) => meta(tool)?.overallStatus === undefined).length,
    unsettled: tools.filter((tool) => meta(tool)?.pendingHashCheck !== undefined && meta(tool)?.pendingHashCheck !== null).length,
    oldestPendingAgeMs: oldest === Number.POSITIVE_INFINITY ? null : now.getTime() - oldest,
    oldestWaitingAgeMs: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => {
      const at = oldestIn[name] ?? Number.POSITIVE_INFINITY;
      return [name, at === Number.POSITIVE_INFINITY ? null : now.getTime() - at];
    })) as SyncStats['oldestWaitingAgeMs'],
  };
}

/** A catalog holding every kind of state the dashboard counts. */
async function mixedCatalog(synced: number): Promise<void> {
  const done = Array.from({ length: synced }, () => new ToolModel(toolInput()));
  await ToolModel.insertMany(done);
  for (const tool of done) {
    await ToolModel.markBatch(SYNC_COLLECTION_NAMES.map((name) => ({ toolId: tool._id, collection: name, outcome: 'synced' as const, contentHash: tool.syncMetadata.collections[name].contentHash })), { embeddingModel: 'm1' });
  }
  const [stale] = done;
  if (stale !== undefined) await ToolModel.updateOne({ _id: stale._id }, { $set: { name: 'Renamed' } });
  const failing = await ToolModel.create(toolInput());
  await ToolModel.markCollectionFailed(failing._id, 'tools', Object.assign(new Error('x'), { status: 429 }), 'embedding');
  await ToolModel.markCollectionFailed(failing._id, 'usecases', new Error('x'), 'validation');
  await ToolModel.markCollectionFailed(failing._id, 'interface', Object.assign(new Error('down'), { code: 'ECONNREFUSED' }), 'qdrant');
  await ToolModel.create(Array.from({ length: 3 }, () => toolInput()));
  await ToolModel.claimSyncWork({ workerId: 'w', limit: 5 });
  await insertRaw({ id: 'legacy-stats', name: 'Legacy', description: 'd', category: 'c' });
  await insertRaw({ ...toolInput(), syncMetadata: { overallStatus: 'bogus', collections: { tools: { status: 'done' } } } });
  // An unsettled write (its writer crashed before the settle).
  await ToolModel.collection.updateOne({ _id: failing._id }, { $set: { 'syncMetadata.pendingHashCheck': new mongoose.Types.ObjectId() } });
}

describe('getSyncStats', () => {
  it('agrees with a pass over every tool, whatever the tools hold', async () => {
    await mixedCatalog(6);
    const now = new Date(Date.now() + 1_000);
    const stats = await ToolModel.getSyncStats({ now });
    const expected = await byReadingEveryTool(now);
    expect(stats).toMatchObject({ ...expected, oldestPendingAgeMs: expect.any(Number) as number });
    expect(Math.abs((stats.oldestPendingAgeMs ?? 0) - (expected.oldestPendingAgeMs ?? 0))).toBeLessThanOrEqual(1);
    expect(stats.total).toBe(12);
    expect(stats.inFlight.tools).toBeGreaterThan(0);
    // The counts that take a pass over every tool come only when asked for.
    expect(stats).toMatchObject({ unusable: null, vectorsByEmbeddingModel: null });
    const full = await ToolModel.getSyncStats({ now, full: true });
    expect(full).toMatchObject({ ...stats, unusable: 1, vectorsByEmbeddingModel: expect.anything() as unknown, oldestPendingAgeMs: expect.any(Number) as number });
    expect(full.vectorsByEmbeddingModel?.functionality).toEqual([{ model: 'm1', vectors: 6 }]);
    await expect(ToolModel.getSyncStats({ full: 'yes' as unknown as boolean })).rejects.toThrow(SyncArgumentError);
  });

  it('gives each collection its own lag: the age of the head of its waiting queue, null when none waits', async () => {
    const first = await ToolModel.create(toolInput());
    const waitingIn = 'interface' as const;
    await ToolModel.markBatch(SYNC_COLLECTION_NAMES.filter((name) => name !== waitingIn).map((name) => ({
      toolId: first._id, collection: name, outcome: 'synced' as const, contentHash: first.syncMetadata.collections[name].contentHash,
    })));
    const now = new Date(Date.now() + 60_000);
    const alone = await ToolModel.getSyncStats({ now });
    const firstAt = (await ToolModel.findById(first._id).lean())?.syncMetadata.updatedAt.getTime();
    expect(alone.oldestWaitingAgeMs).toEqual({ tools: null, functionality: null, usecases: null, [waitingIn]: now.getTime() - (firstAt ?? Number.NaN) });
    const second = await ToolModel.create(toolInput());
    const secondAt = second.syncMetadata.updatedAt.getTime();
    const both = await ToolModel.getSyncStats({ now });
    expect(both.oldestWaitingAgeMs).toEqual({
      tools: now.getTime() - secondAt, functionality: now.getTime() - secondAt, usecases: now.getTime() - secondAt, [waitingIn]: alone.oldestWaitingAgeMs[waitingIn],
    });
    expect(both.oldestPendingAgeMs).toBe(alone.oldestWaitingAgeMs[waitingIn]);
  });

  it('sends a fixed number of counts, side by side, however many tools', async () => {
    const names = async (): Promise<string[]> => (await commandsDuring(() => ToolModel.getSyncStats())).map(({ commandName }) => commandName).sort();
    await mixedCatalog(2);
    const few = await names();
    await ToolModel.insertMany(Array.from({ length: 40 }, () => new ToolModel(toolInput())));
    expect(await names()).toEqual(few);
    console.log(`[figure] getSyncStats: ${few.length} commands (${[...new Set(few)].map((name) => `${name} ${few.filter((one) => one === name).length}`).join(', ')}); with { full: true } 2 more`);
  });

  it('examines no synced tool: every count is served by an index or reads only the work waiting (server\'s explain)', async (context) => {
    const probe = (await ToolModel.collection.find({}).explain('executionStats')) as { executionStats?: unknown };
    if (probe.executionStats === undefined) {
      skipReason("explain's executionStats (documents examined)", `${engine()} ${inject('dbEngineVersion')}`);
      context.skip();
      return;
    }
    await mixedCatalog(30);
    const sent = (await commandsDuring(() => ToolModel.getSyncStats())).filter(({ commandName }) => commandName === 'aggregate' || commandName === 'find');
    const notSynced = await ToolModel.countDocuments({ 'syncMetadata.overallStatus': { $ne: 'synced' } });
    for (const { command } of sent) {
      const { lsid: _lsid, $db: _db, ...query } = command as Record<string, unknown>;
      const plan = (await ToolModel.db.db?.command({ explain: query, verbosity: 'executionStats' })) as { executionStats?: { totalDocsExamined?: number }; stages?: { $cursor?: { executionStats?: { totalDocsExamined?: number } } }[] } | undefined;
      const examined = plan?.executionStats?.totalDocsExamined ?? plan?.stages?.[0]?.$cursor?.executionStats?.totalDocsExamined ?? 0;
      expect(examined, JSON.stringify(query)).toBeLessThanOrEqual(notSynced + 1);
    }
  });
});

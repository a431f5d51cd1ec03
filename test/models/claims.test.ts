import mongoose from 'mongoose';
import { beforeEach, describe, expect, it } from 'vitest';
import { SyncArgumentError, SYNC_COLLECTION_NAMES, ToolModel, type SyncCollectionName } from '../../src/index.js';
import { documentsRead } from '../helpers/commands.js';
import { skipReason } from '../helpers/capabilities.js';
import { engine, useMonitoredTestDatabase } from '../helpers/database.js';
import { waitingQueueQuery } from '../../src/models/tool-claims.js';
import { dueQueueQuery } from '../../src/models/tool-queries.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';

useMonitoredTestDatabase(import.meta.url);

const later = (ms: number): Date => new Date(Date.now() + ms);

async function newTools(count: number): Promise<mongoose.Types.ObjectId[]> {
  const ids = Array.from({ length: count }, () => new mongoose.Types.ObjectId());
  // One at a time: the oldest metadata time is the first tool's.
  for (const _id of ids) await ToolModel.create(toolInput({ _id }));
  return ids;
}

type Claimed = Awaited<ReturnType<typeof ToolModel.claimSyncWork>>;
const pairs = (claimed: Claimed): string[] => claimed.flatMap(({ tool, collections }) => collections.map(({ collection }) => `${String(tool._id)}:${collection}`));

async function stateOf(id: mongoose.Types.ObjectId, name: SyncCollectionName): Promise<Record<string, unknown>> {
  const stored = await rawTool({ _id: id });
  return ((stored?.syncMetadata as { collections: Record<string, Record<string, unknown>> }).collections[name]) ?? {};
}

beforeEach(async () => {
  await ToolModel.deleteMany({});
});

describe('claimSyncWork', () => {
  it('claims waiting work oldest first, with the hash to embed, leased to the worker', async () => {
    const ids = await newTools(3);
    const claimed = await ToolModel.claimSyncWork({ workerId: 'w1', limit: 5, leaseMs: 60_000 });
    // Five pairs: the oldest tool's four collections, then one of the next.
    expect(pairs(claimed)).toHaveLength(5);
    expect(claimed.map(({ tool }) => String(tool._id))).toEqual([String(ids[0]), String(ids[1])]);
    const first = claimed[0];
    if (first === undefined) throw new Error('nothing claimed');
    expect(first.collections.map(({ collection }) => collection)).toEqual([...SYNC_COLLECTION_NAMES]);
    for (const entry of first.collections) {
      expect(entry.contentHash).toBe(first.tool.syncMetadata.collections[entry.collection].contentHash);
      expect(entry.status).toBe('pending');
      const stored = await stateOf(first.tool._id, entry.collection);
      expect(stored.claimedBy).toBe('w1');
      expect(stored.claimedUntil).toEqual(entry.claimedUntil);
      expect(entry.claimedUntil.getTime()).toBeGreaterThan(Date.now() + 50_000);
    }
  });

  it('never gives another worker a pair under a live lease, and gives it once the lease has ended', async () => {
    await newTools(2);
    const a = await ToolModel.claimSyncWork({ workerId: 'a', limit: 4, leaseMs: 5_000 });
    const b = await ToolModel.claimSyncWork({ workerId: 'b', limit: 8, leaseMs: 5_000 });
    expect(pairs(a)).toHaveLength(4);
    expect(pairs(b)).toHaveLength(4);
    expect(pairs(a).filter((pair) => pairs(b).includes(pair))).toEqual([]);
    expect(await ToolModel.claimSyncWork({ workerId: 'c', limit: 8 })).toEqual([]);
    // After both leases: all eight pairs are free again.
    const c = await ToolModel.claimSyncWork({ workerId: 'c', limit: 8, now: later(10_000) });
    expect(pairs(c).sort()).toEqual([...pairs(a), ...pairs(b)].sort());
  });

  it('claims failed work only when due, never a validation error, and moves its retry time to the lease end', async () => {
    const [due, notDue, invalid] = await newTools(3);
    if (due === undefined || notDue === undefined || invalid === undefined) throw new Error('no tools');
    for (const id of [due, notDue, invalid]) {
      for (const name of SYNC_COLLECTION_NAMES) {
        const tool = await ToolModel.findById(id).orFail();
        await ToolModel.markCollectionSynced(id, name, { contentHash: tool.syncMetadata.collections[name].contentHash });
      }
    }
    await ToolModel.markCollectionFailed(due, 'usecases', Object.assign(new Error('down'), { code: 'ECONNREFUSED' }), 'qdrant');
    await ToolModel.markCollectionFailed(notDue, 'usecases', Object.assign(new Error('down'), { code: 'ECONNREFUSED' }), 'qdrant');
    await ToolModel.markCollectionFailed(invalid, 'usecases', new Error('bad input'), 'validation');
    // Due: only the first one's retry time is moved into the past.
    await ToolModel.collection.updateOne({ _id: due }, { $set: { 'syncMetadata.collections.usecases.nextRetryAt': new Date(Date.now() - 1000) } });
    const claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 10, leaseMs: 30_000 });
    expect(pairs(claimed)).toEqual([`${String(due)}:usecases`]);
    expect(claimed[0]?.collections[0]?.status).toBe('failed');
    expect((await stateOf(due, 'usecases')).nextRetryAt).toEqual(claimed[0]?.collections[0]?.claimedUntil);
    expect(await ToolModel.findRetryable()).toEqual([]);
  });

  it('settles legacy tools and claims them; quarantines one it cannot use and claims the rest', async () => {
    const legacy = new mongoose.Types.ObjectId();
    await insertRaw({ _id: legacy, ...toolInput() });
    const poisoned = new mongoose.Types.ObjectId();
    await insertRaw({
      _id: poisoned,
      ...toolInput(),
      syncMetadata: { overallStatus: 'pending', collections: { tools: { status: 'pending', retryCount: -2 } } },
    });
    const claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 10 });
    expect(claimed.map(({ tool }) => String(tool._id))).toEqual([String(legacy)]);
    const quarantined = await stateOf(poisoned, 'tools');
    expect(quarantined).toMatchObject({ status: 'failed', errorCode: 'VALIDATION_ERROR' });
    expect(quarantined.lastError).toContain('syncMetadata.collections.tools.retryCount is -2');
    const stats = await ToolModel.getSyncStats({ full: true });
    expect(stats.quarantined).toBe(1);
    expect(stats.unusable).toBe(0);
    expect(stats.inFlight).toEqual({ tools: 1, functionality: 1, usecases: 1, interface: 1 });
  });

  it("never gives a worker its own work in flight again when the tool comes up once more", async () => {
    await newTools(1);
    const first = await ToolModel.claimSyncWork({ workerId: 'w', limit: 1 });
    const again = await ToolModel.claimSyncWork({ workerId: 'w', limit: 10 });
    expect(pairs(first)).toHaveLength(1);
    expect(pairs(again)).toHaveLength(3);
    expect(pairs(again).filter((pair) => pairs(first).includes(pair))).toEqual([]);
  });

  it('claims only the requested collections', async () => {
    await newTools(2);
    const claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 10, collections: ['interface'] });
    expect(claimed.flatMap(({ collections }) => collections.map(({ collection }) => collection))).toEqual(['interface', 'interface']);
  });

  it('reads about as many tools as it claims, out of hundreds waiting', async () => {
    const docs = Array.from({ length: 400 }, () => toolInput());
    for (let i = 0; i < docs.length; i += 100) await ToolModel.insertMany(docs.slice(i, i + 100));
    let claimed: Claimed = [];
    const read = await documentsRead(async () => { claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 10, collections: ['tools'] }); });
    expect(pairs(claimed)).toHaveLength(10);
    // Two queues for the one collection, a batch each at most beyond what is claimed.
    expect(read).toBeLessThanOrEqual(10 + 2 * 16);
  });

  it("examines about as many documents as each queue's limit, with work in flight ahead (server's explain)", async (context) => {
    const docs = Array.from({ length: 300 }, () => toolInput());
    for (let i = 0; i < docs.length; i += 100) await ToolModel.insertMany(docs.slice(i, i + 100));
    // Work in flight: the oldest 40 claimed, then failed ones due.
    await ToolModel.claimSyncWork({ workerId: 'busy', limit: 40, collections: ['tools'] });
    const failedIds = (await ToolModel.find({}, { _id: 1 }).sort({ _id: -1 }).limit(50).lean()).map(({ _id }) => _id);
    await ToolModel.collection.updateMany({ _id: { $in: failedIds } }, {
      $set: { 'syncMetadata.collections.tools.status': 'failed', 'syncMetadata.collections.tools.errorCode': 'UNKNOWN',
        'syncMetadata.collections.tools.retryCount': 1, 'syncMetadata.collections.tools.nextRetryAt': new Date(Date.now() - 1000) },
    });
    const now = new Date();
    const examined = async ({ filter, sort }: { filter: Record<string, unknown>; sort: Record<string, 1> }): Promise<number | undefined> => {
      const plan = (await ToolModel.collection.find(filter, { sort, limit: 10 }).explain('executionStats')) as { executionStats?: { totalDocsExamined?: number } };
      return plan.executionStats?.totalDocsExamined;
    };
    const waiting = await examined(waitingQueueQuery('tools', now));
    const due = await examined(dueQueueQuery('tools', { now, maxRetries: 5 }));
    if (waiting === undefined || due === undefined) {
      context.skip(skipReason("explain's executionStats (documents examined)", engine()));
      return;
    }
    expect(waiting).toBeLessThanOrEqual(10 + 2);
    expect(due).toBeLessThanOrEqual(10 + 2);
  });

  it('refuses bad arguments, naming them, and writes nothing', async () => {
    await newTools(1);
    const bad: [Record<string, unknown>, string][] = [
      [{}, 'workerId'],
      [{ workerId: '' }, 'workerId'],
      [{ workerId: { $ne: null } }, 'workerId'],
      [{ workerId: 'w', limit: 0 }, 'limit'],
      [{ workerId: 'w', leaseMs: 10 }, 'leaseMs'],
      [{ workerId: 'w', collections: ['vectors'] }, 'collections[0]'],
      [{ workerId: 'w', maxRetries: -1 }, 'maxRetries'],
    ];
    for (const [options, argument] of bad) {
      const error = await ToolModel.claimSyncWork(options as never).catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(SyncArgumentError);
      expect((error as Error).message).toContain(argument);
    }
    expect((await ToolModel.getSyncStats()).inFlight.tools).toBe(0);
  });
});

describe('marks and releases', () => {
  it('a mark by the claimant releases the claim; by a worker whose lease another holds, it is refused, and a refused store write re-opens the pair', async () => {
    await newTools(1);
    const [claim] = await ToolModel.claimSyncWork({ workerId: 'a', limit: 2, leaseMs: 60_000 });
    if (claim === undefined) throw new Error('nothing claimed');
    const [tools, functionality] = claim.collections;
    if (tools === undefined || functionality === undefined) throw new Error('two collections expected');
    const id = claim.tool._id;
    // b wrote a vector it no longer held the pair for: a's write may have come first, so a's claim
    // goes too — not its lease, so nobody claims the pair before a's own write has landed.
    expect(await ToolModel.markCollectionSynced(id, 'tools', { contentHash: tools.contentHash, workerId: 'b' }))
      .toEqual({ synced: false, reason: 'claim-lost', claimedBy: 'a', reopened: true });
    expect(await stateOf(id, 'tools')).toMatchObject({ status: 'pending', claimedBy: null, claimedUntil: tools.claimedUntil });
    expect(await ToolModel.claimSyncWork({ workerId: 'c', collections: ['tools'] })).toEqual([]);
    expect(await ToolModel.markCollectionSynced(id, 'tools', { contentHash: tools.contentHash, workerId: 'a' }))
      .toEqual({ synced: false, reason: 'claim-lost', claimedBy: null, reopened: false });
    expect((await stateOf(id, 'tools')).status).toBe('pending');
    const [again] = await ToolModel.claimSyncWork({ workerId: 'a', limit: 1, collections: ['tools'], now: later(61_000) });
    expect(again?.collections.map(({ collection }) => collection)).toEqual(['tools']);
    expect(await ToolModel.markCollectionSynced(id, 'tools', { contentHash: tools.contentHash, workerId: 'a' })).toEqual({ synced: true, vectorVersion: 1 });
    expect(await stateOf(id, 'tools')).toMatchObject({ status: 'synced', claimedBy: null, claimedUntil: null });

    // A failure before any store write leaves the holder alone.
    const lost = await ToolModel.markCollectionFailed(id, 'functionality', new Error('x'), 'embedding', { workerId: 'b' });
    expect(lost).toMatchObject({ recorded: false, reason: 'claim-lost', claimedBy: 'a', reopened: false });
    expect(await stateOf(id, 'functionality')).toMatchObject({ status: 'pending', claimedBy: 'a' });
    expect(await ToolModel.markCollectionFailed(id, 'functionality', new Error('x'), 'embedding', { workerId: 'a' })).toMatchObject({ recorded: true, retryCount: 1 });
    expect(await stateOf(id, 'functionality')).toMatchObject({ status: 'failed', claimedBy: null, claimedUntil: null });
  });

  it('a worker whose lease ended and was taken over is told so when it reports; its write re-opens the pair, and the next claim syncs it', async () => {
    await newTools(1);
    const [first] = await ToolModel.claimSyncWork({ workerId: 'slow', limit: 1, leaseMs: 1_000 });
    const [second] = await ToolModel.claimSyncWork({ workerId: 'fast', limit: 1, leaseMs: 60_000, now: later(5_000) });
    const pair = first?.collections[0];
    if (first === undefined || second === undefined || pair === undefined) throw new Error('claims expected');
    expect(second.collections[0]?.collection).toBe(pair.collection);
    expect(await ToolModel.markCollectionSynced(first.tool._id, pair.collection, { contentHash: pair.contentHash, workerId: 'slow' }))
      .toEqual({ synced: false, reason: 'claim-lost', claimedBy: 'fast', reopened: true });
    // fast's write may have landed before slow's: fast's mark records nothing either.
    expect(await ToolModel.markCollectionSynced(first.tool._id, pair.collection, { contentHash: pair.contentHash, workerId: 'fast' }))
      .toEqual({ synced: false, reason: 'claim-lost', claimedBy: null, reopened: false });
    // Claimed again once fast's lease (kept by the re-open) has ended.
    expect(await ToolModel.claimSyncWork({ workerId: 'next', limit: 1, leaseMs: 60_000, collections: [pair.collection], now: later(6_000) })).toEqual([]);
    const [third] = await ToolModel.claimSyncWork({ workerId: 'fast', limit: 1, leaseMs: 60_000, collections: [pair.collection], now: later(66_000) });
    expect(third?.collections[0]?.collection).toBe(pair.collection);
    expect(await ToolModel.markCollectionSynced(first.tool._id, pair.collection, { contentHash: pair.contentHash, workerId: 'fast' }))
      .toEqual({ synced: true, vectorVersion: 1 });
  });

  it('a late sync mark after another worker synced the pair makes it stale again (the late write may be the one in the store)', async () => {
    await newTools(1);
    const [first] = await ToolModel.claimSyncWork({ workerId: 'slow', limit: 1, leaseMs: 1_000, collections: ['usecases'] });
    const [second] = await ToolModel.claimSyncWork({ workerId: 'fast', limit: 1, leaseMs: 60_000, collections: ['usecases'], now: later(5_000) });
    const pair = first?.collections[0];
    if (first === undefined || second === undefined || pair === undefined) throw new Error('claims expected');
    expect(await ToolModel.markCollectionSynced(first.tool._id, 'usecases', { contentHash: pair.contentHash, workerId: 'fast' })).toEqual({ synced: true, vectorVersion: 1 });
    expect(await ToolModel.markCollectionSynced(first.tool._id, 'usecases', { contentHash: pair.contentHash, workerId: 'slow' }))
      .toEqual({ synced: false, reason: 'claim-lost', claimedBy: null, reopened: true });
    expect(await stateOf(first.tool._id, 'usecases')).toMatchObject({ status: 'stale', claimedBy: null, vectorVersion: 1 });
    const stored = await ToolModel.findById(first.tool._id).orFail();
    expect(stored.syncMetadata.overallStatus).toBe('pending');
  });

  it('a mark without a workerId works as before and clears any claim', async () => {
    await newTools(1);
    const [claim] = await ToolModel.claimSyncWork({ workerId: 'a', limit: 1 });
    const pair = claim?.collections[0];
    if (claim === undefined || pair === undefined) throw new Error('nothing claimed');
    expect(await ToolModel.markCollectionSynced(claim.tool._id, pair.collection, { contentHash: pair.contentHash })).toEqual({ synced: true, vectorVersion: 1 });
    expect(await stateOf(claim.tool._id, pair.collection)).toMatchObject({ claimedBy: null, claimedUntil: null });
  });

  it('releaseClaims gives back what the worker holds (a failed one due now); extendClaims renews only what it holds', async () => {
    const [id] = await newTools(2);
    if (id === undefined) throw new Error('no tool');
    const a = await ToolModel.claimSyncWork({ workerId: 'a', limit: 4, leaseMs: 5_000 });
    const b = await ToolModel.claimSyncWork({ workerId: 'b', limit: 4, leaseMs: 5_000 });
    const mine = a.flatMap(({ tool, collections }) => collections.map(({ collection }) => ({ toolId: tool._id, collection })));
    const theirs = b.flatMap(({ tool, collections }) => collections.map(({ collection }) => ({ toolId: tool._id, collection })));
    const renewed = await ToolModel.extendClaims('a', [...mine, ...theirs], { leaseMs: 120_000 });
    expect(renewed.map(({ toolId, collection }) => `${String(toolId)}:${collection}`)).toEqual(pairs(a));
    const until = (await stateOf(id, 'tools')).claimedUntil as Date;
    expect(until.getTime()).toBeGreaterThan(Date.now() + 100_000);

    expect(await ToolModel.releaseClaims('a', { toolIds: [id] })).toBe(4);
    expect(await stateOf(id, 'tools')).toMatchObject({ claimedBy: null, claimedUntil: null });
    expect(await ToolModel.releaseClaims('b')).toBe(4);
    expect((await ToolModel.getSyncStats()).inFlight).toEqual({ tools: 0, functionality: 0, usecases: 0, interface: 0 });
    expect(pairs(await ToolModel.claimSyncWork({ workerId: 'c', limit: 8 }))).toHaveLength(8);
  });
});

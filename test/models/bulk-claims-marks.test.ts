import mongoose from 'mongoose';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import {
  createToolModel, SYNC_COLLECTION_NAMES, SyncArgumentError, TOMBSTONE_COLLECTION, ToolModel,
  type ClaimedCollection, type ClaimedTool, type MarkBatchItem, type StoredTool, type SyncCollectionName, type ToolModelType,
} from '../../src/index.js';
import { applyPlans, type PlanOutcome } from '../../src/models/conditional-write.js';
import { updatesPerBulkOn } from '../../src/models/updates-per-bulk.js';
import { planClaim } from '../../src/sync/plans/claim.js';
import { commandsDuring } from '../helpers/commands.js';
import { engine, useMonitoredTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';

/*
 * Claims, marks and renewals in bulk, against the server: how many commands they send (counted
 * from the driver's command events), that no bulk is larger than the engine takes, and that a
 * batch of marks gives exactly what the single marks give.
 */

useMonitoredTestDatabase(import.meta.url);

/** The statements per update command the package may send to this server. */
const bound = (): number => updatesPerBulkOn({ name: engine(), version: inject('dbEngineVersion') });

type Command = mongoose.mongo.CommandStartedEvent;
const named = (commands: Command[], name: string): Command[] => commands.filter((command) => command.commandName === name);
const statements = (command: Command): number => ((command.command as { updates?: unknown[] }).updates ?? []).length;
const pairCount = (claimed: ClaimedTool[]): number => claimed.reduce((sum, { collections }) => sum + collections.length, 0);

async function seed(count: number, model: ToolModelType = ToolModel): Promise<mongoose.Types.ObjectId[]> {
  const tools = Array.from({ length: count }, () => new model(toolInput()));
  await model.insertMany(tools);
  return tools.map(({ _id }) => _id);
}

const stateOf = async (id: mongoose.Types.ObjectId, name: SyncCollectionName, collection = 'tools'): Promise<Record<string, unknown>> => {
  const stored = collection === 'tools' ? await rawTool({ _id: id }) : await mongoose.connection.collection(collection).findOne({ _id: id });
  return ((stored?.syncMetadata as { collections: Record<string, Record<string, unknown>> } | undefined)?.collections[name]) ?? {};
};

beforeEach(async () => {
  await ToolModel.deleteMany({});
  await ToolModel.db.collection(TOMBSTONE_COLLECTION).deleteMany({});
});

describe('claimSyncWork in bulk', () => {
  it('claims 64 pairs with one read per queue and one bulk of claims: at most 0.25 commands per pair, no bulk over the bound', async () => {
    await seed(40);
    let claimed: ClaimedTool[] = [];
    const commands = await commandsDuring(async () => { claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 64 }); });
    expect(pairCount(claimed)).toBe(64);
    expect(claimed).toHaveLength(16);
    // One read of the unsettled tools, one per queue (a waiting and a due queue per collection), no getMore.
    expect(named(commands, 'find')).toHaveLength(1 + 2 * 4);
    expect(named(commands, 'getMore')).toHaveLength(0);
    expect(named(commands, 'update')).toHaveLength(Math.ceil(16 / bound()));
    for (const update of named(commands, 'update')) expect(statements(update)).toBeLessThanOrEqual(bound());
    expect(commands.length / 64).toBeLessThanOrEqual(0.25);
    // Each claim as the single write made it: leased to the worker, the hash to embed.
    for (const { tool, collections } of claimed) {
      for (const { collection, contentHash, claimedUntil } of collections) {
        expect(await stateOf(tool._id, collection)).toMatchObject({ claimedBy: 'w', claimedUntil, contentHash });
        expect(tool.syncMetadata.collections[collection].claimedBy).toBe('w');
      }
    }
  });

  it('claims 200 pairs of 50 tools in bulks no larger than the engine takes', async () => {
    await seed(50);
    let claimed: ClaimedTool[] = [];
    const commands = await commandsDuring(async () => { claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 200 }); });
    expect(pairCount(claimed)).toBe(200);
    const updates = named(commands, 'update');
    expect(updates.map(statements).reduce((sum, count) => sum + count, 0)).toBe(50);
    for (const update of updates) expect(statements(update)).toBeLessThanOrEqual(bound());
  });

  it('never gives two workers the same pair, and never more than the limit', async () => {
    await seed(12);
    const a = await ToolModel.claimSyncWork({ workerId: 'a', limit: 30 });
    const b = await ToolModel.claimSyncWork({ workerId: 'b', limit: 30 });
    const keys = (claimed: ClaimedTool[]): string[] => claimed.flatMap(({ tool, collections }) => collections.map(({ collection }) => `${String(tool._id)}/${collection}`));
    expect(keys(a)).toHaveLength(30);
    expect(keys(b)).toHaveLength(18);
    expect(keys(a).filter((key) => keys(b).includes(key))).toEqual([]);
  });

  it('a claim whose write lost the race is read again and claims only what is still free; the winners are not read again', async () => {
    const ids = await seed(3);
    const read = (await ToolModel.collection.find({ _id: { $in: ids } }).toArray()) as StoredTool[];
    // Another worker claims the second tool's `tools` pair after our read.
    const [, second] = ids;
    if (second === undefined) throw new Error('no tool');
    await ToolModel.collection.updateOne({ _id: second }, { $set: {
      'syncMetadata.collections.tools.claimedBy': 'other', 'syncMetadata.collections.tools.claimedUntil': new Date(Date.now() + 60_000),
    } });
    const request = { workerId: 'w', leaseMs: 60_000, collections: [...SYNC_COLLECTION_NAMES], maxRetries: 5, limit: 4 };
    let outcomes: PlanOutcome<ClaimedCollection[], StoredTool>[] = [];
    const commands = await commandsDuring(async () => {
      outcomes = await applyPlans(ToolModel.collection, read.map((first) => ({ id: first._id, first, decide: (tool: StoredTool, now: Date) => planClaim(tool, request, now) })), {
        bulkSize: async () => Promise.resolve(bound()), what: 'test',
      });
    });
    // The bulk, one read of the written tools (fewer matched than were sent), the loser's new claim.
    expect(commands.map(({ commandName }) => commandName)).toEqual(['update', 'find', 'update']);
    const reread = (commands[1]?.command as { filter?: { _id?: unknown } }).filter?._id;
    expect(reread).toBeDefined();
    const claimedNames = outcomes.map((outcome) => (outcome.ok ? outcome.value.map(({ collection }) => collection) : []));
    expect(claimedNames[0]).toEqual([...SYNC_COLLECTION_NAMES]);
    expect(claimedNames[1]).toEqual(['functionality', 'usecases', 'interface']);
    expect(claimedNames[2]).toEqual([...SYNC_COLLECTION_NAMES]);
    expect(await stateOf(second, 'tools')).toMatchObject({ claimedBy: 'other' });
    expect(await stateOf(second, 'usecases')).toMatchObject({ claimedBy: 'w' });
  });
});

describe('markBatch', () => {
  /** The stored sync metadata with every time replaced by whether there is one: what two runs at other times share. */
  const timeless = (value: unknown): unknown => {
    if (value instanceof Date) return 'a date';
    if (Array.isArray(value)) return value.map(timeless);
    if (typeof value === 'object' && value !== null && !(value instanceof mongoose.Types.ObjectId)) {
      return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, timeless(inner)]));
    }
    return value;
  };

  /**
   * The same situation on two copies of the catalog (two tools collections): every kind of mark
   * a worker can meet — its own claim, a claim lost to another worker (a write re-opens it), a
   * content changed meanwhile, a tool deleted meanwhile, a failure at each stage.
   */
  async function situation(model: ToolModelType, ids: mongoose.Types.ObjectId[]): Promise<MarkBatchItem[]> {
    await model.insertMany(ids.map((_id, index) => ({ _id, ...toolInput({ id: `batch-tool-${index}` }) })));
    await model.claimSyncWork({ workerId: 'w', limit: 100 });
    const [own, lost, changed, deleted, failing, late] = ids;
    if (own === undefined || lost === undefined || changed === undefined || deleted === undefined || failing === undefined || late === undefined) throw new Error('six tools');
    const hash = async (id: mongoose.Types.ObjectId, name: SyncCollectionName): Promise<string> => (await model.findById(id).orFail()).syncMetadata.collections[name].contentHash;
    const items: MarkBatchItem[] = [
      { toolId: own, collection: 'tools', outcome: 'synced', contentHash: await hash(own, 'tools') },
      { toolId: own, collection: 'usecases', outcome: 'synced', contentHash: await hash(own, 'usecases') },
      { toolId: lost, collection: 'tools', outcome: 'synced', contentHash: await hash(lost, 'tools') },
      { toolId: changed, collection: 'functionality', outcome: 'synced', contentHash: await hash(changed, 'functionality') },
      { toolId: deleted, collection: 'interface', outcome: 'synced', contentHash: await hash(deleted, 'interface') },
      { toolId: failing, collection: 'functionality', outcome: 'failed', error: Object.assign(new Error('429'), { status: 429 }), stage: 'embedding' },
      { toolId: failing, collection: 'interface', outcome: 'failed', error: Object.assign(new Error('down'), { code: 'ECONNREFUSED' }), stage: 'qdrant' },
      { toolId: late, collection: 'usecases', outcome: 'synced', contentHash: await hash(late, 'usecases') },
    ];
    // Meanwhile: `lost`'s lease ended and another worker holds it; `changed` is edited; `late` was synced by someone else; `deleted` is deleted.
    await model.collection.updateOne({ _id: lost }, { $set: { 'syncMetadata.collections.tools.claimedBy': 'other' } });
    await model.updateOne({ _id: changed }, { $set: { name: 'Renamed meanwhile' } });
    await model.markCollectionSynced(late, 'usecases', { contentHash: await hash(late, 'usecases') });
    await model.deleteOne({ _id: deleted });
    return items;
  }

  it('gives each pair exactly the result and the stored state the single marks give, in one read and one bulk', async () => {
    const ids = Array.from({ length: 6 }, () => new mongoose.Types.ObjectId());
    const copy = createToolModel(mongoose.connection, { modelName: 'ToolCopy', collection: 'tools_copy' });
    await copy.deleteMany({});
    const singleItems = await situation(copy, ids);
    const batchItems = await situation(ToolModel, ids);
    const single = [];
    for (const item of singleItems) {
      single.push(item.outcome === 'synced'
        ? await copy.markCollectionSynced(item.toolId, item.collection, { contentHash: item.contentHash, workerId: 'w', embeddingModel: 'e1' })
        : await copy.markCollectionFailed(item.toolId, item.collection, item.error, item.stage, { workerId: 'w' }));
    }
    let batch: Awaited<ReturnType<typeof ToolModel.markBatch>> = [];
    const commands = await commandsDuring(async () => { batch = await ToolModel.markBatch(batchItems, { workerId: 'w', embeddingModel: 'e1' }); });
    expect(batch.map((outcome) => ('result' in outcome ? outcome.result : outcome.error))).toEqual(single);
    expect(single.map((result) => ('synced' in result ? result.synced || result.reason : result.recorded || result.reason)))
      .toEqual([true, true, 'claim-lost', 'content-changed', 'deleted', true, true, 'claim-lost']);
    for (const id of ids) {
      const [a, b] = [await mongoose.connection.collection('tools_copy').findOne({ _id: id }), await rawTool({ _id: id })];
      expect(timeless(b?.syncMetadata), String(id)).toEqual(timeless(a?.syncMetadata));
    }
    // The deleted tool's point is owed a removal, as the single mark records it.
    const tombstones = await ToolModel.db.collection(TOMBSTONE_COLLECTION).find({}, { projection: { _id: 0, toolsCollection: 1, collections: 1 } }).toArray();
    expect(tombstones.map(({ toolsCollection }) => toolsCollection as string).sort()).toEqual(['tools', 'tools_copy']);
    expect(timeless(tombstones[0]?.collections)).toEqual(timeless(tombstones[1]?.collections));
    // One read of the tools; the bulk (the two marks of one tool meet: one is planned again); the removal owed.
    expect(named(commands, 'find')).toHaveLength(2);
    expect(named(commands, 'update').length).toBeLessThanOrEqual(4);
    await copy.collection.drop();
  });

  it('marks 64 pairs in one read and one bulk per bound: at most 0.07 commands per pair', async () => {
    const ids = await seed(64);
    const claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 64, collections: ['tools'] });
    expect(pairCount(claimed)).toBe(64);
    const items: MarkBatchItem[] = claimed.map(({ tool, collections: [pair] }) => ({ toolId: tool._id, collection: 'tools', outcome: 'synced', contentHash: pair?.contentHash ?? '' }));
    let results: Awaited<ReturnType<typeof ToolModel.markBatch>> = [];
    const commands = await commandsDuring(async () => { results = await ToolModel.markBatch(items, { workerId: 'w', embeddingModel: 'e1' }); });
    expect(results.every((outcome) => 'result' in outcome && 'synced' in outcome.result && outcome.result.synced)).toBe(true);
    expect(named(commands, 'find')).toHaveLength(1);
    expect(named(commands, 'update')).toHaveLength(Math.ceil(64 / bound()));
    for (const update of named(commands, 'update')) expect(statements(update)).toBeLessThanOrEqual(bound());
    expect(commands.length / 64).toBeLessThanOrEqual(0.07);
    for (const id of ids) expect(await stateOf(id, 'tools')).toMatchObject({ status: 'synced', claimedBy: null, embeddingModel: 'e1', vectorVersion: 1 });
  });

  it('refuses bad items naming them, and two marks of one pair, before anything is written', async () => {
    const [id] = await seed(1);
    if (id === undefined) throw new Error('no tool');
    const good = { toolId: id, collection: 'tools', outcome: 'failed', error: new Error('x'), stage: 'embedding' } as const;
    await expect(ToolModel.markBatch('nope' as unknown as MarkBatchItem[])).rejects.toThrow(SyncArgumentError);
    await expect(ToolModel.markBatch([good, { ...good, collection: 'nope' } as unknown as MarkBatchItem])).rejects.toThrow(/items\[1\]\.collection/);
    await expect(ToolModel.markBatch([good, { ...good, outcome: 'synced', contentHash: 'zz' } as unknown as MarkBatchItem])).rejects.toThrow(/items\[1\]\.contentHash/);
    await expect(ToolModel.markBatch([good, { ...good, stage: 'later' } as unknown as MarkBatchItem])).rejects.toThrow(/items\[1\]\.stage/);
    await expect(ToolModel.markBatch([good, good])).rejects.toThrow(/one mark per tool and collection/);
    expect(await stateOf(id, 'tools')).toMatchObject({ status: 'pending', retryCount: 0 });
  });
});

describe('extendClaims in bulk', () => {
  it('renews 64 pairs in one read and one bulk per bound; a lost pair is left out', async () => {
    await seed(16);
    const claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 64, leaseMs: 5_000 });
    const claims = claimed.flatMap(({ tool, collections }) => collections.map(({ collection }) => ({ toolId: tool._id, collection })));
    const [first] = claims;
    if (first === undefined) throw new Error('nothing claimed');
    // Lost: another worker took it over.
    await ToolModel.collection.updateOne({ _id: first.toolId }, { $set: { [`syncMetadata.collections.${first.collection}.claimedBy`]: 'other' } });
    let renewed: Awaited<ReturnType<typeof ToolModel.extendClaims>> = [];
    const commands = await commandsDuring(async () => { renewed = await ToolModel.extendClaims('w', claims, { leaseMs: 60_000 }); });
    expect(renewed).toHaveLength(63);
    expect(renewed.some(({ toolId, collection }) => String(toolId) === String(first.toolId) && collection === first.collection)).toBe(false);
    expect(named(commands, 'find')).toHaveLength(1);
    expect(named(commands, 'update')).toHaveLength(Math.ceil(16 / bound()));
    const until = (await stateOf(claims[1]?.toolId ?? first.toolId, claims[1]?.collection ?? 'tools')).claimedUntil as Date;
    expect(until.getTime()).toBeGreaterThan(Date.now() + 50_000);
  });
});

describe('releaseClaims in bulk', () => {
  it("gives back a stopping worker's 64 pairs in one read and one bulk per bound; another worker's pair stays its own", async () => {
    await seed(16);
    const claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 64, leaseMs: 60_000 });
    const claims = claimed.flatMap(({ tool, collections }) => collections.map(({ collection }) => ({ toolId: tool._id, collection })));
    const [first, second] = claims;
    if (first === undefined || second === undefined) throw new Error('nothing claimed');
    // Lost: another worker took it over meanwhile; the release must leave it to them.
    await ToolModel.collection.updateOne({ _id: first.toolId }, { $set: { [`syncMetadata.collections.${first.collection}.claimedBy`]: 'other' } });
    let released = 0;
    const commands = await commandsDuring(async () => { released = await ToolModel.releaseClaims('w', { claims }); });
    expect(released).toBe(63);
    expect(named(commands, 'find')).toHaveLength(1);
    expect(named(commands, 'update')).toHaveLength(Math.ceil(16 / bound()));
    for (const update of named(commands, 'update')) expect(statements(update)).toBeLessThanOrEqual(bound());
    expect((await stateOf(first.toolId, first.collection)).claimedBy).toBe('other');
    const given = await stateOf(second.toolId, second.collection);
    expect(given.claimedBy ?? null).toBeNull();
    expect(given.status).toBe('pending');
  });
});

describe('removals in bulk', () => {
  it("claims and marks 40 removals of 10 deleted tools in one read and one bulk each; every tombstone goes", async () => {
    const ids = await seed(10);
    const claimed = await ToolModel.claimSyncWork({ workerId: 'w', limit: 40 });
    await ToolModel.markBatch(claimed.flatMap(({ tool, collections }) => collections.map(({ collection, contentHash }) => ({ toolId: tool._id, collection, outcome: 'synced' as const, contentHash }))), { workerId: 'w' });
    await ToolModel.deleteMany({ _id: { $in: ids } });
    let removals: Awaited<ReturnType<typeof ToolModel.claimVectorDeletions>> = [];
    const claiming = await commandsDuring(async () => { removals = await ToolModel.claimVectorDeletions({ workerId: 'r', limit: 40 }); });
    expect(removals.reduce((sum, { collections }) => sum + collections.length, 0)).toBe(40);
    // The tombstones, their tools (still there?), the claims.
    expect(named(claiming, 'find')).toHaveLength(2);
    expect(named(claiming, 'update')).toHaveLength(Math.ceil(10 / bound()));
    const items = removals.flatMap(({ toolObjectId, collections }) => collections.map((collection) => ({ toolObjectId, collection, outcome: 'removed' as const })));
    const [failing] = items;
    if (failing === undefined) throw new Error('no removals');
    let marked: Awaited<ReturnType<typeof ToolModel.markDeletionBatch>> = [];
    const marking = await commandsDuring(async () => {
      marked = await ToolModel.markDeletionBatch([{ ...failing, outcome: 'failed', error: Object.assign(new Error('down'), { code: 'ECONNREFUSED' }) }, ...items.slice(1)], { workerId: 'r' });
    });
    expect(marked[0]).toMatchObject({ outcome: 'failed', result: { recorded: true, errorCode: 'QDRANT_UNAVAILABLE', retryCount: 1 } });
    expect(marked.slice(1).every((outcome) => 'result' in outcome && 'done' in outcome.result && outcome.result.done)).toBe(true);
    // The removals, then the tombstones whose removals are all done (read once and deleted in one
    // bulk), then one read for tools restored meanwhile (none here: nothing re-opened).
    expect(named(marking, 'find')).toHaveLength(3);
    expect(named(marking, 'update')).toHaveLength(Math.ceil(40 / bound()));
    expect(named(marking, 'delete')).toHaveLength(1);
    const left = await ToolModel.db.collection(TOMBSTONE_COLLECTION).find().toArray();
    expect(left.map(({ toolObjectId }) => String(toolObjectId))).toEqual([String(failing.toolObjectId)]);
    expect((await ToolModel.getSyncStats()).deletions[failing.collection]).toEqual({ pending: 0, failed: 1 });
  });
});

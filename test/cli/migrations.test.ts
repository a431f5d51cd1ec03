import { spawnSync } from 'node:child_process';
import mongoose from 'mongoose';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { aggregateSyncStatus, computeContentHashes, SYNC_COLLECTION_NAMES, ToolModel, type ToolContent } from '../../src/index.js';
import { CHECKPOINT_COLLECTION } from '../../src/migrations/batch-migration.js';
import { generateTools, seededRandom } from '../../src/cli/seed-data.js';
import { CLI_PATH, hasStackTrace, runCli, startCli, uriWithDatabase } from '../helpers/cli.js';
import { useTestDatabase } from '../helpers/database.js';
import { specBackfillShape } from '../helpers/legacy.js';

const database = useTestDatabase(import.meta.url);
const uri = (): string => uriWithDatabase(inject('mongoUri'), database.name);

type Raw = Record<string, unknown> & { _id: mongoose.Types.ObjectId; id: string; syncMetadata?: Record<string, unknown> };
const raw = (): mongoose.mongo.Collection => ToolModel.collection;

const PARTIAL_AT = new Date('2024-05-01T00:00:00Z');
const specShape = (): Record<string, unknown> => specBackfillShape(PARTIAL_AT);

async function insertLegacy(count: number, seed: number, partialEvery = 0): Promise<void> {
  const tools = generateTools(count, seededRandom(seed), `l${seed}-`).map((tool, i) => ({
    ...tool,
    ...(partialEvery > 0 && i % partialEvery === 0 ? { syncMetadata: specShape() } : {}),
  }));
  for (let i = 0; i < tools.length; i += 5000) await raw().insertMany(tools.slice(i, i + 5000));
}

/** Every tool has complete, correct metadata; partial ones kept their statuses, counters and versions. */
async function expectAllComplete(): Promise<void> {
  for await (const found of raw().find({})) {
    const doc = found as Raw;
    const meta = doc.syncMetadata as { overallStatus: string; collections: Record<string, Record<string, unknown>>; lastModifiedFields: unknown; createdAt: unknown; updatedAt: unknown };
    expect(meta, doc.id).toBeDefined();
    expect(meta.lastModifiedFields).toEqual([]);
    expect(meta.createdAt).toBeInstanceOf(Date);
    expect(meta.updatedAt).toBeInstanceOf(Date);
    const hashes = computeContentHashes(doc as ToolContent);
    const partial = meta.createdAt instanceof Date && meta.createdAt.getTime() === PARTIAL_AT.getTime();
    for (const name of SYNC_COLLECTION_NAMES) {
      const state = meta.collections[name] ?? {};
      // A retry time is stored where a collection failed (a backfill gives it one); elsewhere its absence is null.
      const retryTime = state.status === 'failed' ? ['nextRetryAt'] : [];
      // A claim and the embedding model are optional: absent or null.
      const optional = ['claimedBy', 'claimedUntil', 'embeddingModel'];
      for (const key of optional) expect(state[key] ?? null, `${doc.id} ${name} ${key}`).toBeNull();
      const keys = Object.keys(state).filter((key) => (key !== 'nextRetryAt' || state.status === 'failed') && !optional.includes(key)).sort();
      expect(keys, `${doc.id} ${name}`).toEqual(['contentHash', 'errorCode', 'lastError', 'lastSyncAttemptAt', 'lastSyncedAt', ...retryTime, 'retryCount', 'status', 'vectorVersion'].sort());
      expect(state.contentHash).toBe(hashes[name]);
      const expected = partial ? (specShape().collections as Record<string, Record<string, unknown>>)[name] : { status: 'pending', retryCount: 0, vectorVersion: 0 };
      expect({ status: state.status, retryCount: state.retryCount, vectorVersion: state.vectorVersion }).toEqual(expected);
    }
    expect(meta.overallStatus).toBe(aggregateSyncStatus(SYNC_COLLECTION_NAMES.map((name) => meta.collections[name]?.status as 'pending')));
  }
}

const snapshot = async (): Promise<mongoose.mongo.Document[]> => raw().find({}).sort({ _id: 1 }).toArray();

beforeEach(async () => {
  await raw().deleteMany({});
  await mongoose.connection.db?.collection(CHECKPOINT_COLLECTION).deleteMany({});
});

describe('tool-sync backfill', () => {
  it('gives legacy and partial tools complete, correct metadata, and a second run changes nothing', async () => {
    await insertLegacy(60, 1, 4);
    const first = await runCli(['backfill', '--batch-size', '10', '--uri', uri()]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/scanned: +60/);
    expect(first.stdout).toMatch(/updated: +45/);
    expect(first.stdout).toMatch(/repaired: +15/);
    expect(first.stdout).toMatch(/failed: +0/);
    expect(first.stdout).toMatch(/elapsed: +[\d.]+s/);
    // Without a terminal: plain progress lines.
    expect(first.stderr).toContain('backfill: 60 documents to scan');
    expect(first.stderr).toMatch(/backfill: 60\/60 scanned \(\d+\/s, ETA \d+s, 0 failed\)/);
    await expectAllComplete();

    const before = await snapshot();
    const second = await runCli(['backfill', '--uri', uri()]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/already complete: +60/);
    expect(second.stdout).not.toMatch(/updated|repaired/);
    expect(await snapshot()).toEqual(before);
  });

  it('--dry-run writes nothing and reports what it would change', async () => {
    await insertLegacy(30, 2, 3);
    const before = await snapshot();
    const result = await runCli(['backfill', '--dry-run', '--uri', uri()]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('dry run: nothing was written');
    expect(result.stdout).toMatch(/updated: +20/);
    expect(result.stdout).toMatch(/repaired: +10/);
    expect(await snapshot()).toEqual(before);
  });

  it('reports invalid partial metadata as failed with its id and reason, and leaves it as it was', async () => {
    await insertLegacy(5, 3);
    await raw().insertOne({ _id: new mongoose.Types.ObjectId(), id: 'broken-meta', name: 'Broken', description: 'd', category: 'c', syncMetadata: { overallStatus: 'done', collections: { tools: { status: 'synced', retryCount: -2 } } } });
    const before = await raw().findOne({ id: 'broken-meta' });
    const result = await runCli(['backfill', '--uri', uri()]);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(/failed: +1/);
    expect(result.stdout).toMatch(/_id [0-9a-f]{24} \(id broken-meta\): .*overallStatus.*done/);
    expect(await raw().findOne({ id: 'broken-meta' })).toEqual(before);
    expect(await raw().countDocuments({ syncMetadata: { $exists: false } })).toBe(0);
  });

  it('killed with SIGKILL mid-run and run again, leaves every tool complete and correct', { timeout: 120_000 }, async () => {
    // What is tested is the kill between batches, not the size: a few batches done, more left. (On
    // FerretDB's SQLite backend every conditional update scans the collection: a small one is quick.)
    await insertLegacy(160, 4, 10);
    const run = startCli(['backfill', '--batch-size', '10', '--uri', uri()]);
    // Killed once a few batches are checkpointed: mid-run, with work done and work left.
    const checkpoints = mongoose.connection.db?.collection<{ lastId: mongoose.Types.ObjectId }>(CHECKPOINT_COLLECTION);
    const deadline = Date.now() + 60_000;
    let done = 0;
    while (done < 20 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      const checkpoint = await checkpoints?.findOne({});
      done = checkpoint === null || checkpoint === undefined ? 0 : await raw().countDocuments({ _id: { $lte: checkpoint.lastId } });
    }
    run.child.kill('SIGKILL');
    const killed = await run.done;
    expect(killed.signal).toBe('SIGKILL');
    const remaining = await raw().countDocuments({ syncMetadata: { $exists: false } });
    expect(remaining, 'the kill came too late to test anything').toBeGreaterThan(0);

    const rerun = await runCli(['backfill', '--batch-size', '50', '--uri', uri()]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/resumed after _id [0-9a-f]{24}/);
    expect(rerun.stdout).toMatch(/failed: +0/);
    await expectAllComplete();
    expect(await mongoose.connection.db?.collection(CHECKPOINT_COLLECTION).countDocuments()).toBe(0);
  });

  it('does not write over a concurrent edit of the same tool', async () => {
    await insertLegacy(1, 5);
    const doc = await raw().findOne({});
    if (doc === null) throw new Error('no document');
    const { backfillPlan } = await import('../../src/migrations/backfill.js');
    const plan = backfillPlan(doc, new Date());
    await raw().updateOne({ _id: doc._id }, { $set: { name: 'Edited meanwhile' } });
    if (plan.kind !== 'write') throw new Error('expected a write');
    const result = await raw().updateOne(plan.write.filter, plan.write.update);
    expect(result.matchedCount).toBe(0);
    const rerun = await runCli(['backfill', '--uri', uri()]);
    expect(rerun.code, rerun.stderr).toBe(0);
    const after = await raw().findOne({ _id: doc._id });
    expect(after?.name).toBe('Edited meanwhile');
    await expectAllComplete();
  });
});

describe('progress on a terminal', () => {
  const hasScript = spawnSync('script', ['--version']).status === 0;
  if (!hasScript) console.log('[skip reason] the terminal progress bar test runs the CLI under `script` (util-linux) for a pseudo-terminal, and there is no `script` here.');

  it.runIf(hasScript)('is a bar with count, rate and ETA', async () => {
    await insertLegacy(60, 8);
    const command = [process.execPath, CLI_PATH, 'backfill', '--batch-size', '20', '--uri', uri()].map((part) => `'${part}'`).join(' ');
    const result = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
    expect(result.status, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/backfill \[[█░]+\] 60\/60 \| \d+\/s \| ETA/);
    await expectAllComplete();
  });
});

describe('tool-sync settle', () => {
  it('finishes the tools a writer left with a pending hash check, and status counts them until then', async () => {
    const tools = await ToolModel.insertMany(generateTools(4, seededRandom(9)).map((input) => new ToolModel(input)));
    for (const tool of tools) {
      for (const name of SYNC_COLLECTION_NAMES) await ToolModel.markCollectionSynced(tool._id, name, { contentHash: tool.syncMetadata.collections[name].contentHash });
    }
    const [first, second] = tools;
    if (first === undefined || second === undefined) throw new Error('no tools');
    // What a writer that stopped between its write and its settle leaves: new content, the token, old hashes.
    for (const tool of [first, second]) {
      await raw().updateOne({ _id: tool._id }, { $set: { name: `${tool.name} renamed`, 'syncMetadata.pendingHashCheck': new mongoose.Types.ObjectId() } });
    }
    const status = await runCli(['status', '--uri', uri()]);
    expect(status.stdout).toMatch(/unsettled tools .*: 2 — run `tool-sync settle`/);

    const dry = await runCli(['settle', '--dry-run', '--uri', uri()]);
    expect(dry.stdout).toMatch(/settled: +2/);
    expect(await raw().countDocuments({ 'syncMetadata.pendingHashCheck': { $ne: null } })).toBe(2);

    const result = await runCli(['settle', '--uri', uri()]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/scanned: +2/);
    expect(result.stdout).toMatch(/settled: +2/);
    for (const tool of [first, second]) {
      const after = await ToolModel.findById(tool._id).orFail();
      expect(after.syncMetadata.pendingHashCheck).toBeNull();
      for (const name of SYNC_COLLECTION_NAMES) {
        expect(after.syncMetadata.collections[name].status).toBe('stale');
        expect(after.syncMetadata.collections[name].contentHash).toBe(computeContentHashes(after)[name]);
      }
    }
    expect((await runCli(['status', '--uri', uri()])).stdout).toMatch(/unsettled tools .*: 0$/m);
    expect((await runCli(['settle', '--uri', uri()])).stdout).toMatch(/scanned: +0/);
  });
});

describe('tool-sync rehash', () => {
  it('flags the collections whose stored hash no longer describes the content; --dry-run writes nothing', async () => {
    const [tool] = await ToolModel.insertMany(generateTools(3, seededRandom(6)).map((input) => new ToolModel(input)));
    if (tool === undefined) throw new Error('no tool');
    await ToolModel.markCollectionSynced(tool._id, 'usecases', { contentHash: tool.syncMetadata.collections.usecases.contentHash });
    await ToolModel.markCollectionSynced(tool._id, 'tools', { contentHash: tool.syncMetadata.collections.tools.contentHash });
    // An edit that went around the model (as when the embedding inputs change, every hash does).
    await raw().updateOne({ _id: tool._id }, { $set: { useCases: [...tool.useCases, 'edited around the model'] } });
    const before = await snapshot();
    const dry = await runCli(['rehash', '--dry-run', '--uri', uri()]);
    expect(dry.stdout).toMatch(/flagged: +1/);
    expect(await snapshot()).toEqual(before);

    const result = await runCli(['rehash', '--uri', uri()]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/flagged: +1/);
    expect(result.stdout).toMatch(/unchanged: +2/);
    const after = await ToolModel.findById(tool._id).orFail();
    expect(after.syncMetadata.collections.usecases.status).toBe('stale');
    expect(after.syncMetadata.collections.usecases.contentHash).toBe(computeContentHashes(after).usecases);
    expect(after.syncMetadata.collections.tools.status).toBe('synced');
    expect(after.syncMetadata.overallStatus).toBe(aggregateSyncStatus(SYNC_COLLECTION_NAMES.map((name) => after.syncMetadata.collections[name].status)));
    expect((await runCli(['rehash', '--uri', uri()])).stdout).toMatch(/unchanged: +3/);
  });
});

describe('errors are one line, never a stack trace', () => {
  it.each([
    [['backfill', '--batch-size', '0'], /batch-size.*expected a whole number from 1/],
    [['requeue', '--vector-collection', 'vectors'], /vectors.*Allowed choices are tools, functionality, usecases, interface/],
    [['status', '--uri', 'mongodb://127.0.0.1:1/nothing-here'], /tool-sync: cannot reach the database server/],
    [['status', '--uri', 'not-a-uri'], /tool-sync: invalid connection string/],
    [['nonsense'], /unknown command 'nonsense'/],
  ])('%j', async (args, message) => {
    const result = await runCli(args);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(message);
    expect(hasStackTrace(result.stderr + result.stdout)).toBe(false);
  });

  it.each(['backfill', 'settle', 'rehash', 'indexes', 'requeue', 'status', 'seed', 'demo'])('%s --help', async (command) => {
    const result = await runCli([command, '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: tool-sync ${command}`);
    expect(result.stdout).toContain('--uri');
  });
});

export {};

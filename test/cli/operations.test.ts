import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import mongoose from 'mongoose';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ferretDbBinaryPath, startFerretDb } from '../../src/db/index.js';
import { computeContentHashes, SYNC_COLLECTION_NAMES, ToolModel, type SyncStats } from '../../src/index.js';
import { generateTools, seededRandom } from '../../src/cli/seed-data.js';
import { describeServer } from '../../src/cli/target.js';
import { hasStackTrace, runCli, startCli, uriWithDatabase } from '../helpers/cli.js';
import { useTestDatabase } from '../helpers/database.js';

const database = useTestDatabase(import.meta.url);

/** The authentication and server-restart tests start FerretDB servers of their own. */
const ferretDbBuilt = existsSync(ferretDbBinaryPath());
if (!ferretDbBuilt) {
  console.log(`[skip reason] the authentication and server-restart tests start FerretDB servers of their own and need ${ferretDbBinaryPath()}; run \`npm run db:prepare\`.`);
}
const uri = (): string => uriWithDatabase(inject('mongoUri'), database.name);
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('the bin', () => {
  it('runs as `npx tool-sync`, as the README says', async () => {
    const result = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn('npx', ['--no-install', 'tool-sync', '--help'], { cwd: new URL('../..', import.meta.url).pathname });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
      child.once('close', (code) => { resolve({ code, stdout }); });
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: tool-sync');
  });
});

describe('the connection', () => {
  it('comes from MONGODB_URI when there is no --uri', async () => {
    await ToolModel.insertMany(generateTools(1, seededRandom(5), 'env-').map((input) => new ToolModel(input)));
    const result = await runCli(['status', '--json'], { MONGODB_URI: uri() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(new RegExp(`^tool-sync: server ${escape(describeServer(uri()))} \\(.*from MONGODB_URI\\), database ${database.name}, collection tools$`, 'm'));
    expect((JSON.parse(result.stdout) as SyncStats).total).toBe(await ToolModel.countDocuments());
  });
});

describe('tool-sync indexes', () => {
  it('detects a dropped index, and --apply restores it without dropping anything', async () => {
    await ToolModel.createIndexes();
    await ToolModel.collection.dropIndex('sync_usecases_status_idx');
    await ToolModel.collection.createIndex({ category: 1 }, { name: 'by_category' });

    const check = await runCli(['indexes', '--uri', uri()]);
    expect(check.code).toBe(2);
    expect(check.stdout).toMatch(/MISSING +sync_usecases_status_idx \{"syncMetadata\.collections\.usecases\.status":1\}/);
    expect(check.stdout).toMatch(/extra +by_category/);
    expect(check.stdout).toMatch(/ok +tool_id_unique \{"id":1\} unique/);

    const apply = await runCli(['indexes', '--apply', '--uri', uri()]);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toContain('created sync_usecases_status_idx');
    const names = ((await ToolModel.collection.listIndexes().toArray()) as { name: string }[]).map((index) => index.name);
    expect(names).toContain('sync_usecases_status_idx');
    expect(names).toContain('by_category');

    const again = await runCli(['indexes', '--uri', uri()]);
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain('MISSING');
  });
});

describe('tool-sync seed, status and requeue', () => {
  it('seeds realistic tools through the model, shows where sync stands, and requeues failures', async () => {
    await ToolModel.deleteMany({});
    const seeded = await runCli(['seed', '--count', '30', '--seed', '7', '--uri', uri()]);
    expect(seeded.code, seeded.stderr).toBe(0);
    const tools = await ToolModel.find({}).sort({ _id: 1 });
    expect(tools).toHaveLength(30);
    expect(new Set(tools.map((tool) => tool.category)).size).toBeGreaterThan(3);
    for (const tool of tools) expect(tool.syncMetadata.collections.tools.contentHash).toBe(computeContentHashes(tool).tools);

    const [first, second, third] = tools;
    if (first === undefined || second === undefined || third === undefined) throw new Error('seed made too few tools');
    for (const name of SYNC_COLLECTION_NAMES) await ToolModel.markCollectionSynced(first._id, name, { contentHash: first.syncMetadata.collections[name].contentHash });
    await ToolModel.markCollectionFailed(second._id, 'tools', Object.assign(new Error('429'), { status: 429 }), 'embedding');
    await ToolModel.markCollectionFailed(third._id, 'usecases', new Error('bad'), 'validation');
    await ToolModel.collection.insertOne({ id: 'legacy-status', name: 'Legacy', description: 'd', category: 'c' });

    const json = await runCli(['status', '--json', '--uri', uri()]);
    expect(json.code, json.stderr).toBe(0);
    const printed = JSON.parse(json.stdout) as SyncStats;
    // status shows the full dashboard (the counts that take a pass over every tool too).
    const actual = await ToolModel.getSyncStats({ full: true });
    // The ages move with the clock between the two reads: compared as "some wait" or "none".
    const withoutAges = (stats: SyncStats): unknown => ({
      ...stats,
      oldestPendingAgeMs: stats.oldestPendingAgeMs !== null,
      oldestWaitingAgeMs: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, stats.oldestWaitingAgeMs[name] !== null])),
    });
    expect(withoutAges(printed)).toEqual(withoutAges(actual));
    expect(printed.total).toBe(await ToolModel.countDocuments());
    expect(printed.byOverallStatus.synced).toBe(await ToolModel.countDocuments({ 'syncMetadata.overallStatus': 'synced' }));
    expect(printed.byOverallStatus.failed).toBe(2);
    expect(printed.legacyWithoutMetadata).toBe(1);
    expect(printed.failuresByErrorCode).toMatchObject({ EMBEDDING_RATE_LIMIT: 1, VALIDATION_ERROR: 1 });

    const table = await runCli(['status', '--uri', uri()]);
    expect(table.stdout).toMatch(/overall .*1 .*28 .*2 .*0 .*31/);
    expect(table.stdout).toContain('EMBEDDING_RATE_LIMIT');
    expect(table.stdout).toContain('legacy tools without sync metadata (counted as pending): 1');

    const onlyRateLimits = await runCli(['requeue', '--error-code', 'EMBEDDING_RATE_LIMIT', '--uri', uri()]);
    expect(onlyRateLimits.stdout).toContain('requeued 1 failed collection');
    const rest = await runCli(['requeue', '--vector-collection', 'usecases', '--uri', uri()]);
    expect(rest.stdout).toContain('requeued 1 failed collection');
    expect(await ToolModel.countDocuments({ 'syncMetadata.overallStatus': 'failed' })).toBe(0);

    // A deleted tool whose point could not be removed: shown by status, put back in line by requeue.
    await ToolModel.deleteOne({ _id: first._id });
    await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10, collections: ['tools'] });
    await ToolModel.markVectorDeleteFailed(first._id, 'tools', new Error('503 Service Unavailable'), { workerId: 'w' });
    const withDeletions = await runCli(['status', '--uri', uri()]);
    expect(withDeletions.stdout).toMatch(/deletions failed[^\n]*\n[^]*?tools\s*│\s*0\s*│\s*1\s*│/);
    const deletions = await runCli(['requeue', '--uri', uri()]);
    expect(deletions.stdout).toContain("requeued 1 failed removal of deleted tools' points");
    expect((await ToolModel.getSyncStats()).deletions.tools).toEqual({ pending: 1, failed: 0 });
  });
});

describe('tool-sync reembed', () => {
  it('flags the vectors another embedding model made (dry run first), shows the mix in status, and refuses bad input', async () => {
    await ToolModel.deleteMany({});
    const tools = await ToolModel.insertMany(generateTools(6, seededRandom(11), 'reembed-').map((input) => new ToolModel(input)));
    for (const [index, tool] of tools.entries()) {
      const embeddingModel = index < 2 ? 'model-b' : 'model-a';
      await ToolModel.markCollectionSynced(tool._id, 'usecases', { contentHash: tool.syncMetadata.collections.usecases.contentHash, embeddingModel });
    }
    const status = await runCli(['status', '--uri', uri()]);
    expect(status.stdout).toMatch(/usecases\s*│\s*model-a\s*│\s*4/);
    expect(status.stdout).toMatch(/usecases\s*│\s*model-b\s*│\s*2/);

    const dry = await runCli(['reembed', '--vector-collection', 'usecases', '--model', 'model-b', '--dry-run', '--uri', uri()]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/flagged stale: +4$/m);
    expect(await ToolModel.countDocuments({ 'syncMetadata.collections.usecases.status': 'stale' })).toBe(0);

    const run = await runCli(['reembed', '--vector-collection', 'usecases', '--model', 'model-b', '--uri', uri()]);
    expect(run.code, run.stderr).toBe(0);
    expect(await ToolModel.countDocuments({ 'syncMetadata.collections.usecases.status': 'stale' })).toBe(4);
    expect(await ToolModel.countDocuments({ 'syncMetadata.collections.usecases.status': 'synced' })).toBe(2);

    for (const args of [['--vector-collection', 'vectors', '--model', 'm'], ['--vector-collection', 'usecases', '--model', ' '], ['--vector-collection', 'usecases']]) {
      const refused = await runCli(['reembed', ...args, '--uri', uri()]);
      expect(refused.code, args.join(' ')).toBe(1);
      expect(hasStackTrace(refused.stderr)).toBe(false);
      expect(refused.stderr).toMatch(/vector-collection|model/);
    }
    expect(await ToolModel.countDocuments({ 'syncMetadata.collections.usecases.status': 'stale' })).toBe(4);
  });
});

/** Whether a name the demo prints is the package's (an export, a static of its model) or Mongoose's (a document method), or an engine's name. */
async function isPublicName(name: string): Promise<boolean> {
  const exported = Object.keys(await import('../../src/index.js'));
  const doc = new ToolModel({ id: 'n', name: 'N', description: 'd', category: 'c' }) as unknown as Record<string, unknown>;
  return exported.includes(name) || typeof (ToolModel as unknown as Record<string, unknown>)[name] === 'function'
    || typeof doc[name] === 'function' || ['MongoDB', 'FerretDB'].includes(name);
}

describe('tool-sync demo, the main job', () => {
  it('runs every phase and ends with every recoverable tool synced, saying so as it goes', { timeout: 150_000 }, async () => {
    const result = await runCli(['demo', '--uri', inject('mongoUri')]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('SIMULATION');
    for (const phase of ['phase 1', 'phase 2', 'phase 3', 'phase 4', 'phase 5', 'phase 6', 'phase 7', 'phase 8', 'phase 9', 'phase 10', 'final']) {
      expect(result.stdout).toContain(`== ${phase}`);
    }
    // The deleted tools' points were in the simulated Qdrant, then removed, and their tombstones went.
    expect(result.stdout).toMatch(/phase 7: 3 synced tools deleted .*; 12 of their points still in the simulated Qdrant/);
    expect(result.stdout).toMatch(/after the workers: 0 points of the deleted tools left/);
    expect(result.stdout).toMatch(/flagEmbeddingModelChange flagged \d+ vectors stale/);
    // Phase 8's workers say they removed the points: never "nothing to do after 0 rounds" before it.
    const phase8 = result.stdout.slice(result.stdout.indexOf('== phase 8'), result.stdout.indexOf('== after the workers: 0 points'));
    expect(phase8).toMatch(/worker-\w: .*\d+ deleted tools' points removed/);
    expect(phase8).toMatch(/nothing left to do after [1-9]\d* rounds? of work/);
    expect(result.stdout).not.toMatch(/after 0 rounds/);
    // Only public names: what the package exports, its model's statics, Mongoose's methods.
    const names = [...new Set(result.stdout.match(/\b([a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*)\b/g) ?? [])];
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) expect(await isPublicName(name), name).toBe(true);
    expect(result.stdout).not.toContain('SimulatedSyncTarget');
    // Never silent for long: the workers' rounds say how far they are every few seconds.
    const gaps = result.timeline.slice(1).map((write, i) => write.at - (result.timeline[i]?.at ?? write.at));
    expect(Math.max(...gaps), 'the longest silence, in ms').toBeLessThan(8_000);
    const demo = mongoose.connection.useDb('tool_sync_demo', { useCache: false });
    try {
      const stats = await demo.collection('tools').aggregate<{ _id: string; n: number }>([{ $group: { _id: '$syncMetadata.overallStatus', n: { $sum: 1 } } }]).toArray();
      const counts = Object.fromEntries(stats.map((group) => [group._id, group.n]));
      expect(counts).toEqual({ synced: 56, failed: 1 });
      expect(await demo.collection('tool_sync_tombstones').countDocuments({})).toBe(0);
      const models = await demo.collection('tools').distinct('syncMetadata.collections.usecases.embeddingModel', { 'syncMetadata.collections.usecases.status': 'synced' });
      expect(models).toEqual(['simulated-embedder-v2']);
      const failed = (await demo.collection('tools').findOne({ 'syncMetadata.overallStatus': 'failed' })) as { syncMetadata: { collections: { tools: { errorCode: string } } } } | null;
      expect(failed?.syncMetadata.collections.tools.errorCode).toBe('VALIDATION_ERROR');
    } finally {
      await demo.dropDatabase();
    }
  });
});

describe('an authentication failure', () => {
  it.runIf(ferretDbBuilt)('is one line naming it, and the right password works', { timeout: 60_000 }, async () => {
    const credentials = ['--test-enable-new-auth', '--setup-database=admin', '--setup-username=operator', '--setup-password=right-password'];
    const server = await startFerretDb(ferretDbBinaryPath(), { extraArgs: credentials });
    try {
      const base = server.uri.replace('mongodb://', '');
      // The collection exists: status reads tools that are there.
      const seeded = await runCli(['seed', '--count', '2', '--uri', `mongodb://operator:right-password@${base}tools?authSource=admin`]);
      expect(seeded.code, seeded.stderr).toBe(0);
      const wrong = await runCli(['status', '--uri', `mongodb://operator:wrong-password@${base}tools?authSource=admin`]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^tool-sync: authentication failed/m);
      expect(wrong.stderr).not.toContain('wrong-password');
      expect(hasStackTrace(wrong.stderr)).toBe(false);
      const right = await runCli(['status', '--json', '--uri', `mongodb://operator:right-password@${base}tools?authSource=admin`]);
      expect(right.code, right.stderr).toBe(0);
      expect(right.stderr).toContain('operator:***@');
      expect(right.stderr).not.toContain('right-password');
      expect(right.stderr).toMatch(/^tool-sync: server mongodb:\/\/operator:\*\*\*@127\.0\.0\.1:\d+ \(FerretDB [^,]+, from --uri\), database tools, collection tools$/m);
      expect((JSON.parse(right.stdout) as SyncStats).total).toBe(2);
    } finally {
      await server.stop();
    }
  });
});

describe('a server that goes away mid-backfill', () => {
  let dataDir = '';
  afterAll(async () => { if (dataDir !== '') await rm(dataDir, { recursive: true, force: true }); });

  it.runIf(ferretDbBuilt)('gives a clear one-line error, and a re-run finishes the job', { timeout: 120_000 }, async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tool-sync-away-'));
    let server = await startFerretDb(ferretDbBinaryPath(), { dataDir });
    const port = Number(new URL(server.uri).port);
    const target = uriWithDatabase(server.uri, 'away');
    const connection = await mongoose.createConnection(target).asPromise();
    // Thirty batches; the server goes away as soon as the first is done, so always mid-run. Few tools:
    // the re-run's conditional writes each scan the collection on SQLite.
    await connection.collection('tools').insertMany(generateTools(150, seededRandom(9), 'away-'));
    await connection.close();

    const run = startCli(['backfill', '--batch-size', '5', '--uri', target]);
    const deadline = Date.now() + 60_000;
    while (!/scanned|updated/.test(run.output()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    await server.stop();
    const failed = await run.done;
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^tool-sync: (cannot reach the database server|.*(ECONNREFUSED|closed|connection))/m);
    expect(hasStackTrace(failed.stderr)).toBe(false);

    server = await startFerretDb(ferretDbBinaryPath(), { dataDir, port });
    try {
      const rerun = await runCli(['backfill', '--uri', target]);
      expect(rerun.code, rerun.stderr).toBe(0);
      const check = await mongoose.createConnection(target).asPromise();
      try {
        expect(await check.collection('tools').countDocuments({ syncMetadata: { $exists: false } })).toBe(0);
        expect(await check.collection('tools').countDocuments({})).toBe(150);
      } finally {
        await check.close();
      }
    } finally {
      await server.stop();
    }
  });
});

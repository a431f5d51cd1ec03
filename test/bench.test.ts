import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import mongoose from 'mongoose';
import { CursorRecorder, documentsIn, examinedBy } from '../bench/commands.js';
import { BULK_MIX } from '../bench/write-path.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueDatabaseName } from './helpers/database.js';
import { hasStackTrace } from './helpers/cli.js';

const run = promisify(execFile);
let dir = '';

/** `npm run bench` against the test server (MONGODB_URI). */
async function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('npm', ['run', '--silent', 'bench', '--', ...args], {
      env: { ...process.env, MONGODB_URI: inject('mongoUri') },
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

interface PerWrite { writes: number; commandsPerWrite: number; commandsByName: Record<string, number>; msPerWrite: number; clientCpuMsPerWrite: number }
interface WritePath {
  tools: number;
  settleUpdatesPerBulk: number;
  cpuPerDocument: { packageMs: number; plainMs: number; ratio: number };
  insertMany: { documents: number; perSecond: Record<string, number>; ratio: { plain: number; raw: number } };
  writes: { name: string; sides: Record<'package' | 'plain' | 'raw', PerWrite>; commandRatio: { plain: number; raw: number } }[];
  skipped: { name: string; reason: string }[];
}

/**
 * The write path's figures were measured, not assumed: the commands each side sent, as the
 * design has them (a single-document content write: the caller's write, returning what it stored,
 * and one conditional update; a multi-document one: the write, one find per 1,000 tools, the
 * settle's bulks; a non-content write: the caller's command alone), and a time for every write.
 */
function checkWritePath(writePath: WritePath): void {
  expect(writePath.tools).toBe(100);
  expect(writePath.insertMany.documents).toBe(100);
  expect(writePath.insertMany.ratio.plain).toBeGreaterThan(0);
  expect(writePath.insertMany.ratio.raw).toBeGreaterThan(0);
  expect(writePath.cpuPerDocument.packageMs).toBeGreaterThan(0);
  expect(writePath.cpuPerDocument.plainMs).toBeGreaterThan(0);
  const byName = new Map(writePath.writes.map((figure) => [figure.name, figure]));
  const commands = (name: string): { package: number; plain: number; raw: number } => {
    const figure = byName.get(name);
    if (figure === undefined) throw new Error(`no figure for ${name}; got ${[...byName.keys()].join(', ')}`);
    for (const side of Object.values(figure.sides)) {
      expect(side.writes).toBeGreaterThanOrEqual(1);
      expect(side.msPerWrite).toBeGreaterThan(0);
    }
    return { package: figure.sides.package.commandsPerWrite, plain: figure.sides.plain.commandsPerWrite, raw: figure.sides.raw.commandsPerWrite };
  };
  expect(commands('updateOne, content')).toEqual({ package: 2, plain: 1, raw: 1 });
  expect(byName.get('updateOne, content')?.sides.package.commandsByName).toEqual({ findAndModify: 1, update: 1 });
  expect(commands("findOneAndUpdate (returnDocument: 'after'), content")).toEqual({ package: 2, plain: 1, raw: 1 });
  expect(commands('updateOne, non-content')).toEqual({ package: 1, plain: 1, raw: 1 });
  expect(commands('doc.save(), content changed')).toEqual({ package: 2, plain: 1, raw: 1 });
  expect(byName.get('doc.save(), content changed')?.sides.package.commandsByName).toEqual({ update: 2 });
  expect(commands('doc.save(), non-content changed')).toEqual({ package: 1, plain: 1, raw: 1 });
  const bulk = commands('bulkWrite of 100 mixed operations');
  expect(bulk.plain).toBe(bulk.raw);
  const perBulk = writePath.settleUpdatesPerBulk;
  expect([25, 1000]).toContain(perBulk);
  // The caller's commands, one read, and the settle's bulks (one, where the engine takes 1,000 updates in one);
  // and for its deletes, one read of the tools they delete, the bulks of their tombstones and one read after
  // (none of those when no tool deleted had vectors).
  const settled = bulk.raw + 1 + Math.ceil((BULK_MIX.contentUpdate + BULK_MIX.replaceOne) / perBulk);
  expect(bulk.package).toBeGreaterThanOrEqual(settled + 1);
  expect(bulk.package).toBeLessThanOrEqual(settled + 1 + Math.ceil(BULK_MIX.deleteOne / perBulk) + 1);
  // updateMany: one write, one read, and one bulk per settleUpdatesPerBulk tools, at every size measured.
  const updateMany = writePath.writes.filter((figure) => figure.name.startsWith('updateMany of'));
  expect(updateMany.length).toBeGreaterThanOrEqual(2);
  for (const figure of updateMany) {
    const size = Number(/updateMany of (\d+) tools/.exec(figure.name)?.[1]);
    expect(commands(figure.name)).toEqual({ package: 2 + Math.ceil(size / perBulk), plain: 1, raw: 1 });
  }
  // Sizes not measured say why (the collection is too small here, or the engine cannot take the settle).
  for (const skipped of writePath.skipped) expect(skipped.reason).not.toBe('');
}

const QUEUES = ['claimSyncWork({ limit: 100 })', 'findNeedingSync({ limit: 100 })', 'findRetryable()'];

interface Examined { finds: number; totalDocsExamined: number; totalKeysExamined: number }
interface QueueReads { returned: number; documentsRead: { median: number; max: number }; examined: Examined | null }
interface Queries {
  sizes: { tools: number; latency: Record<string, { samples: number; medianMs: number; p95Ms: number }>; reads: Record<string, QueueReads> }[];
  growth: { factor: Record<string, number>; documentsRead: Record<string, number | null>; docsExamined: Record<string, number | null> }[];
  examinedBy: string;
}

/**
 * The queues' figures at the smoke test's sizes: latency for the four queries; for the three
 * queues, what a call returned and read, and what the server examined where explain says so.
 */
function checkQueries(queries: Queries, engine: string): void {
  expect(queries.sizes.map((size) => size.tools)).toEqual([10, 100]);
  for (const size of queries.sizes) {
    expect(Object.keys(size.latency).sort()).toEqual([...QUEUES, 'getSyncStats()'].sort());
    for (const latency of Object.values(size.latency)) expect(latency.samples).toBeGreaterThanOrEqual(2);
    expect(Object.keys(size.reads).sort()).toEqual([...QUEUES].sort());
    for (const reads of Object.values(size.reads)) {
      expect(reads.documentsRead.max).toBeGreaterThanOrEqual(reads.documentsRead.median);
      // Every tool a queue returns was read; a call reads at most a batch per queue beyond it.
      expect(reads.documentsRead.median).toBeGreaterThanOrEqual(reads.returned > 0 ? 1 : 0);
      if (engine === 'MongoDB') expect(reads.examined?.finds).toBeGreaterThanOrEqual(1);
      if (reads.examined === null) continue;
      expect(reads.examined.totalDocsExamined).toBeGreaterThanOrEqual(0);
    }
  }
  // At 100 tools the mix holds work of every kind: pairs to claim, tools waiting, retries due.
  const larger = queries.sizes[1]?.reads;
  expect(larger?.['claimSyncWork({ limit: 100 })']?.returned).toBeGreaterThan(0);
  expect(larger?.['findNeedingSync({ limit: 100 })']?.returned).toBeGreaterThan(0);
  expect(larger?.['findRetryable()']?.returned).toBeGreaterThan(0);
  const growth = queries.growth[0];
  expect(Object.keys(growth?.factor ?? {})).toHaveLength(4);
  expect(Object.keys(growth?.documentsRead ?? {}).sort()).toEqual([...QUEUES].sort());
  expect(Object.keys(growth?.docsExamined ?? {}).sort()).toEqual([...QUEUES].sort());
  expect(queries.examinedBy).not.toBe('');
}

interface Worker {
  tools: number;
  embedMs: number;
  runs: {
    workers: number; waitingPairs: number; synced: number; syncedAgain: number; seconds: number; pairsPerSecond: number; speedup: number;
  }[];
}

/** The worker's throughput, for 1, 2 and 4 workers over the same tools (figures, not verdicts). */
function checkWorker(worker: Worker): void {
  expect(worker.tools).toBe(40);
  expect(worker.embedMs).toBeGreaterThan(0);
  expect(worker.runs.map((run) => run.workers)).toEqual([1, 2, 4]);
  for (const run of worker.runs) {
    expect(run.waitingPairs).toBeGreaterThan(0);
    expect(run.synced).toBeGreaterThan(0);
    expect(run.syncedAgain).toBeGreaterThanOrEqual(0);
    expect(run.seconds).toBeGreaterThan(0);
    expect(run.pairsPerSecond).toBeGreaterThan(0);
  }
  expect(worker.runs[0]?.speedup).toBe(1);
}

beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'tool-sync-bench-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('npm run bench', () => {
  it('runs every section side by side and writes every figure to its results file', async () => {
    const out = join(dir, 'results.json');
    // 0.1 % of the sizes: FerretDB's SQLite backend scans on every write (see the README's Performance).
    const result = await bench(['--scale', '0.001', '--out', out, '--db-name', uniqueDatabaseName(import.meta.url)]);
    expect(result.stderr).not.toMatch(/bench: /);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('this package');
    const report = JSON.parse(await readFile(out, 'utf8')) as {
      engine: { name: string; version: string };
      machine: { cpu: string; cores: number };
      results: {
        hashing: { packageHashesPerSecond: number; rawSha256PerSecond: number; ratio: number };
        writePath: WritePath;
        backfill: { documents: number; package: { processed: number; docsPerSecond: number; peakRssMb: number; completed: boolean }; raw: { processed: number; peakRssMb: number }; ratio: number; verifiedSample: number };
        queries: Queries;
        worker: Worker;
      };
      table: { figure: string }[];
    };
    expect(report.engine.name).toBe(inject('dbEngine'));
    expect(report.engine.version).toBe(inject('dbEngineVersion'));
    expect(report.machine.cores).toBeGreaterThan(0);
    const { hashing, writePath, backfill, queries, worker } = report.results;
    expect(hashing.packageHashesPerSecond).toBeGreaterThan(0);
    expect(hashing.rawSha256PerSecond).toBeGreaterThan(0);
    checkWritePath(writePath);
    expect(backfill).toMatchObject({ documents: 100, package: { processed: 100, completed: true }, raw: { processed: 100 } });
    expect(backfill.verifiedSample).toBeGreaterThan(0);
    expect(backfill.package.peakRssMb).toBeGreaterThan(0);
    checkQueries(queries, report.engine.name);
    checkWorker(worker);
    expect(report.table.length).toBeGreaterThanOrEqual(25);
    expect(report.table.some((row) => row.figure.startsWith('updateOne, content: commands per write'))).toBe(true);
  }, 600_000);

  it('refuses a bad option with one line naming it', async () => {
    const result = await bench(['--only', 'hashing,nope']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--only: unknown section "nope"/);
    expect(hasStackTrace(result.stderr)).toBe(false);
  }, 120_000);
});

type Client = ReturnType<mongoose.Connection['getClient']>;
const { Long } = mongoose.mongo;

describe("the bench's documents per call", () => {
  it('counts what each find and its getMores returned, and whether the server ran it to its end', () => {
    const client = new EventEmitter();
    const recorder = new CursorRecorder(client as unknown as Client);
    const started = (requestId: number, commandName: string, command: Record<string, unknown>): void => {
      client.emit('commandStarted', { requestId, commandName, command, databaseName: 'bench' });
    };
    const succeeded = (requestId: number, cursor: Record<string, unknown>): void => {
      client.emit('commandSucceeded', { requestId, reply: { cursor } });
    };
    started(1, 'find', { find: 'tools', filter: { a: 1 } });
    recorder.begin();
    started(2, 'find', { find: 'tools', filter: { b: 1 }, batchSize: 2 });
    started(3, 'find', { find: 'tools', filter: { c: 1 }, limit: 5 });
    succeeded(2, { id: Long.fromNumber(77), firstBatch: [{}, {}] });
    succeeded(3, { id: Long.fromNumber(0), firstBatch: [{}] });
    started(4, 'getMore', { getMore: Long.fromNumber(77), collection: 'tools' });
    succeeded(4, { id: Long.fromNumber(77), nextBatch: [{}, {}] });
    started(5, 'update', { update: 'tools' });
    const reads = recorder.end();
    started(6, 'getMore', { getMore: Long.fromNumber(77), collection: 'tools' });
    succeeded(6, { id: Long.fromNumber(0), nextBatch: [{}] });
    recorder.detach();
    expect(reads.map(({ command, returned, exhausted }) => ({ filter: command.filter as unknown, returned, exhausted }))).toEqual([
      { filter: { b: 1 }, returned: 4, exhausted: false },
      { filter: { c: 1 }, returned: 1, exhausted: true },
    ]);
    expect(documentsIn(reads)).toBe(5);
    expect(client.listenerCount('commandStarted')).toBe(0);
  });

  it("replays each find as explain, limited to what a cursor closed early returned, and adds up the server's counts", async () => {
    const sent: Record<string, unknown>[] = [];
    const explaining = (reply: Record<string, unknown>): Client => ({
      db: () => ({ command: (command: Record<string, unknown>) => { sent.push(command); return Promise.resolve(reply); } }),
    }) as unknown as Client;
    const reads = [
      {
        command: { find: 'tools', filter: { b: 1 }, sort: { x: 1 }, batchSize: 16, lsid: {} }, databaseName: 'bench', returned: 16, exhausted: false,
      },
      { command: { find: 'tools', filter: { c: 1 }, limit: 100 }, databaseName: 'bench', returned: 40, exhausted: true },
    ];
    const examined = await examinedBy(explaining({ executionStats: { totalDocsExamined: 20, totalKeysExamined: 30 } }), reads);
    expect(examined).toEqual({ finds: 2, totalDocsExamined: 40, totalKeysExamined: 60 });
    expect(sent).toEqual([
      { explain: { find: 'tools', filter: { b: 1 }, sort: { x: 1 }, limit: 16 }, verbosity: 'executionStats' },
      { explain: { find: 'tools', filter: { c: 1 }, limit: 100 }, verbosity: 'executionStats' },
    ]);
    // An engine whose explain has no executionStats (FerretDB v1) gives no figure, not a zero.
    expect(await examinedBy(explaining({ queryPlanner: {} }), reads)).toBeNull();
  });
});

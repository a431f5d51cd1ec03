import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import mongoose from 'mongoose';
import { afterAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { describeServer } from '../../src/cli/target.js';
import { generateTools, seededRandom } from '../../src/cli/seed-data.js';
import { createToolModel, ToolModel, type SyncStats } from '../../src/index.js';
import { CHECKPOINT_COLLECTION } from '../../src/migrations/batch-migration.js';
import { CLI_PATH, hasStackTrace, runCli, spawnCli, startCli, uriWithDatabase, type CliResult } from '../helpers/cli.js';
import { uniqueDatabaseName, useTestDatabase } from '../helpers/database.js';

// "A CLI that cannot surprise" (issue 10): against the test server, through the built bin.
const database = useTestDatabase(import.meta.url);
const uri = (dbName = database.name): string => uriWithDatabase(inject('mongoUri'), dbName);
/** The test server with no database in the URI. */
const bareServer = (): string => uriWithDatabase(inject('mongoUri'), '');

const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '');
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const ESC = '\u001b[';

/** The line every command prints on stderr before it does anything: server, database, collection. */
function targetLine(dbName: string, collection: string, from: '--uri' | 'MONGODB_URI' = '--uri'): RegExp {
  return new RegExp(`^tool-sync: server ${escape(describeServer(inject('mongoUri')))} \\((MongoDB|FerretDB) [^,]+, from ${from}\\), database ${dbName}, collection ${collection}$`, 'm');
}

/** A usage error: one line, a hint to --help, exit 1, nothing on stdout, no usage text, no stack trace. */
function expectUsageError(result: CliResult, message: RegExp): void {
  expect(result.code, result.stderr).toBe(1);
  expect(result.stdout).toBe('');
  expect(lines(result.stderr), result.stderr).toHaveLength(1);
  expect(result.stderr).toMatch(/^tool-sync: .+ \(see tool-sync( [a-z]+)? --help\)\n$/);
  expect(result.stderr).toMatch(message);
  expect(result.stderr).not.toContain('Usage:');
  expect(hasStackTrace(result.stderr)).toBe(false);
}

const collectionNames = async (dbName = database.name): Promise<string[]> => {
  const db = mongoose.connection.useDb(dbName, { useCache: true }).db;
  if (db === undefined) throw new Error('not connected');
  return (await db.listCollections({}, { nameOnly: true }).toArray()).map((info) => info.name);
};

async function resetDatabase(): Promise<void> {
  for (const name of await collectionNames()) await mongoose.connection.db?.dropCollection(name);
}

describe('an empty or unparsable connection string', () => {
  // Never the embedded database: no server starts ([tool-sync db] lines) and no target line is printed.
  it.each([
    ['--uri \'\'', ['status', '--uri', ''], {}, /--uri is empty/],
    ['--uri of spaces', ['backfill', '--uri', '   '], {}, /--uri is empty/],
    ['MONGODB_URI=', ['status'], { MONGODB_URI: '' }, /MONGODB_URI is set but empty/],
    ['--uri \'\' beside a good MONGODB_URI', ['seed', '--count', '3', '--uri', ''], { MONGODB_URI: 'mongodb://127.0.0.1:1/x' }, /--uri is empty/],
    ['unparsable --uri', ['seed', '--count', '3', '--uri', 'localhost:27017/tools'], {}, /invalid connection string \(--uri\): .*scheme/],
    ['unparsable MONGODB_URI', ['status'], { MONGODB_URI: 'mongodb://' }, /invalid connection string \(MONGODB_URI\)/],
  ] as const)('%s is a one-line error, never the embedded database', async (_name, args, env, message) => {
    const result = await runCli([...args], env);
    expectUsageError(result, message);
    expect(result.stderr).not.toContain('[tool-sync db]');
    expect(result.stderr).not.toContain('server ');
  });
});

describe('the database', () => {
  const other = uniqueDatabaseName('cli_db_flag');
  afterAll(async () => { await mongoose.connection.useDb(other, { useCache: false }).dropDatabase(); });

  it('is an error when the URI names none and there is no --db; nothing is written', async () => {
    const before = await mongoose.connection.useDb('test', { useCache: false }).collection('tools').countDocuments();
    const result = await runCli(['seed', '--count', '3', '--uri', bareServer()]);
    expectUsageError(result, /the connection string \(--uri\) names no database: .*--db <name>/);
    expect(await mongoose.connection.useDb('test', { useCache: false }).collection('tools').countDocuments()).toBe(before);
    const fromEnv = await runCli(['status'], { MONGODB_URI: bareServer() });
    expectUsageError(fromEnv, /the connection string \(MONGODB_URI\) names no database/);
  });

  it('comes from --db when the URI names none, and the CLI says where it works before writing', async () => {
    const seeded = await runCli(['seed', '--count', '4', '--seed', '11', '--uri', bareServer(), '--db', other]);
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(seeded.stderr).toMatch(targetLine(other, 'tools'));
    expect(await mongoose.connection.useDb(other, { useCache: false }).collection('tools').countDocuments()).toBe(4);
    const status = await runCli(['status', '--json', '--db', other], { MONGODB_URI: bareServer() });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stderr).toMatch(targetLine(other, 'tools', 'MONGODB_URI'));
    expect((JSON.parse(status.stdout) as SyncStats).total).toBe(4);
  });

  it('is named once: the URI\'s and --db must agree', async () => {
    const same = await runCli(['status', '--json', '--uri', uri(other), '--db', other]);
    expect(same.code, same.stderr).toBe(0);
    const different = await runCli(['status', '--uri', uri(other), '--db', 'elsewhere']);
    expectUsageError(different, new RegExp(`names database "${other}" and --db names "elsewhere": give one`));
    expectUsageError(await runCli(['status', '--uri', bareServer(), '--db', 'a.b']), /--db <name>.*cannot contain "\."/);
  });
});

describe('--collection', () => {
  beforeEach(resetDatabase);

  it('puts every command on that collection, and leaves the tools collection alone', async () => {
    await ToolModel.insertMany(generateTools(2, seededRandom(1), 'own-').map((input) => new ToolModel(input)));
    const seeded = await runCli(['seed', '--count', '6', '--seed', '3', '--collection', 'catalog', '--uri', uri()]);
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(seeded.stderr).toMatch(targetLine(database.name, 'catalog'));
    const catalog = mongoose.connection.collection('catalog');
    expect(await catalog.countDocuments({ 'syncMetadata.overallStatus': 'pending' })).toBe(6);
    expect(await ToolModel.countDocuments()).toBe(2);

    const status = await runCli(['status', '--json', '--collection', 'catalog', '--uri', uri()]);
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as SyncStats).total).toBe(6);
    expect((JSON.parse((await runCli(['status', '--json', '--uri', uri()])).stdout) as SyncStats).total).toBe(2);

    // A legacy document in each: backfill --collection catalog completes only catalog's.
    await catalog.insertOne({ id: 'legacy-catalog', name: 'Legacy', description: 'd', category: 'c' });
    await ToolModel.collection.insertOne({ id: 'legacy-tools', name: 'Legacy', description: 'd', category: 'c' });
    const backfilled = await runCli(['backfill', '--collection', 'catalog', '--uri', uri()]);
    expect(backfilled.code, backfilled.stderr).toBe(0);
    expect(backfilled.stdout).toMatch(/scanned: +7/);
    expect(backfilled.stdout).toMatch(/updated: +1/);
    expect(await catalog.countDocuments({ syncMetadata: { $exists: false } })).toBe(0);
    expect(await ToolModel.collection.countDocuments({ syncMetadata: { $exists: false } })).toBe(1);
    for (const command of ['rehash', 'settle']) {
      const result = await runCli([command, '--collection', 'catalog', '--uri', uri()]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(command === 'rehash' ? /scanned: +7/ : /scanned: +0/);
    }

    // seed made catalog's indexes; the tools collection has none of them.
    const catalogIndexes = await runCli(['indexes', '--collection', 'catalog', '--uri', uri()]);
    expect(catalogIndexes.code, catalogIndexes.stdout).toBe(0);
    expect(catalogIndexes.stdout).not.toContain('MISSING');
    expect((await runCli(['indexes', '--uri', uri()])).code).toBe(2);

    const Catalog = createToolModel(mongoose.connection, { collection: 'catalog', modelName: 'CatalogTool' });
    const failing = await Catalog.findOne({ id: 'legacy-catalog' }).orFail();
    await Catalog.markCollectionFailed(failing._id, 'usecases', new Error('bad'), 'validation');
    const requeued = await runCli(['requeue', '--collection', 'catalog', '--vector-collection', 'usecases', '--uri', uri()]);
    expect(requeued.code, requeued.stderr).toBe(0);
    expect(requeued.stdout).toContain('requeued 1 failed collection');
    expect((await Catalog.findById(failing._id).orFail()).syncMetadata.collections.usecases.status).toBe('pending');
  });

  it('that does not exist is an error naming the collections there, except for indexes --apply, which creates it', async () => {
    await ToolModel.insertMany(generateTools(1, seededRandom(2), 'own-').map((input) => new ToolModel(input)));
    for (const command of ['status', 'backfill', 'rehash', 'settle', 'requeue', 'indexes']) {
      const result = await runCli([command, '--collection', 'toolz', '--uri', uri()]);
      expect(result.code, `${command}: ${result.stderr}`).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(targetLine(database.name, 'toolz'));
      expect(result.stderr).toContain(`tool-sync: database ${database.name} has no collection "toolz" (it has tools): check --uri, --db and --collection`);
    }
    expect(await collectionNames()).not.toContain('toolz');
    // `requeue --collection usecases` once meant the vector collection: the error says what to use now.
    const old = await runCli(['requeue', '--collection', 'usecases', '--uri', uri()]);
    expect(old.code).toBe(1);
    expect(old.stderr).toContain('to requeue one vector collection, use --vector-collection usecases');

    const applied = await runCli(['indexes', '--apply', '--collection', 'fresh', '--uri', uri()]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('created tool_id_unique');
    expect(await collectionNames()).toContain('fresh');
  });

  it.each([[''], ['a$b'], ['system.views']])('%j is a usage error', async (name) => {
    expectUsageError(await runCli(['status', '--collection', name, '--uri', uri()]), /--collection <name>.* is invalid/);
  });
});

describe('tool-sync seed', () => {
  beforeEach(resetDatabase);

  it('fills an empty collection with its indexes, and refuses one that holds tools unless --force', async () => {
    const first = await runCli(['seed', '--count', '5', '--seed', '21', '--uri', uri()]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe('inserted 5 tools\n');
    expect((await runCli(['indexes', '--uri', uri()])).code).toBe(0);
    const before = await ToolModel.collection.find({}).sort({ _id: 1 }).toArray();

    const refused = await runCli(['seed', '--count', '5', '--seed', '22', '--uri', uri()]);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    const [where, refusal, ...rest] = lines(refused.stderr);
    expect(where).toMatch(targetLine(database.name, 'tools'));
    expect(refusal).toBe(`tool-sync: collection tools in database ${database.name} already holds tools (about 5); `
      + 'seed only fills an empty collection: pass --force to add 5 fake tools anyway');
    expect(rest).toEqual([]);
    expect(await ToolModel.collection.find({}).sort({ _id: 1 }).toArray()).toEqual(before);

    const forced = await runCli(['seed', '--count', '5', '--seed', '22', '--force', '--uri', uri()]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toContain('its indexes are left as they are');
    expect(await ToolModel.countDocuments()).toBe(10);
  });

  it('keeps the indexes of a collection that held tools as they are (--force)', async () => {
    await ToolModel.collection.insertOne({ id: 'legacy', name: 'Legacy', description: 'd', category: 'c' });
    const forced = await runCli(['seed', '--count', '2', '--seed', '23', '--force', '--uri', uri()]);
    expect(forced.code, forced.stderr).toBe(0);
    const names = ((await ToolModel.collection.listIndexes().toArray()) as { name: string }[]).map((index) => index.name);
    expect(names).toEqual(['_id_']);
  });
});

describe('tables', () => {
  const hasScript = spawnSync('script', ['--version']).status === 0;
  if (!hasScript) console.log('[skip reason] the terminal colour test runs the CLI under `script` (util-linux) for a pseudo-terminal, and there is no `script` here.');

  beforeEach(async () => {
    await resetDatabase();
    await ToolModel.insertMany(generateTools(3, seededRandom(4), 'colour-').map((input) => new ToolModel(input)));
  });

  it('carry no colour codes into a pipe', async () => {
    const result = await spawnCli(['status', '--uri', uri()], { NO_COLOR: undefined, FORCE_COLOR: undefined });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/overall .*0 .*3 .*0 .*0 .*3/);
    expect(result.stdout).not.toContain(ESC);
  });

  it('stop quietly when the reader goes away (`tool-sync status | head -1`)', async () => {
    const run = startCli(['status', '--uri', uri()]);
    run.child.stdout.destroy();
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(targetLine(database.name, 'tools'));
    expect(hasStackTrace(result.stderr)).toBe(false);
    expect(result.stderr).not.toContain('EPIPE');
  });

  it.runIf(hasScript)('are coloured on a terminal only while NO_COLOR is unset or empty', () => {
    const onTerminal = (env: string): string => {
      const command = ['env', ...(env === '' ? [] : [env]), process.execPath, CLI_PATH, 'status', '--uri', uri()].map((part) => `'${part}'`).join(' ');
      // Without CI too: colour libraries turn colour off on CI whatever the terminal (as CI=true runs this suite).
      const childEnv = { ...process.env, NO_COLOR: undefined, CI: undefined, FORCE_COLOR: undefined };
      const result = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 60_000, env: childEnv });
      expect(result.status, result.stdout).toBe(0);
      expect(result.stdout).toMatch(/overall .*3/);
      return result.stdout;
    };
    expect(onTerminal('')).toContain(ESC);
    expect(onTerminal('NO_COLOR=')).toContain(ESC);
    expect(onTerminal('NO_COLOR=1')).not.toContain(ESC);
  });
});

describe('--version', () => {
  it('prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const result = await runCli([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`${version}\n`);
      expect(result.stderr).toBe('');
    }
  });
});

describe('a usage error', () => {
  it.each([
    [[], /no command given: one of backfill, rehash, settle, reembed, indexes, requeue, status, seed, demo, db \(see tool-sync --help\)/],
    [['nonsense'], /unknown command 'nonsense' \(see tool-sync --help\)/],
    [['--frobnicate'], /unknown option '--frobnicate' \(see tool-sync --help\)/],
    [['status', '--frobnicate'], /unknown option '--frobnicate' \(see tool-sync status --help\)/],
    [['seed', '--count', '3', '--forse'], /unknown option '--forse' \(Did you mean --force\?\) \(see tool-sync seed --help\)/],
    [['seed', '--count', 'many'], /--count <n>.*expected a whole number/],
    [['seed'], /required option '--count <n>' not specified/],
    [['backfill', '--batch-size', '0'], /--batch-size <n>.*expected a whole number from 1/],
    [['requeue', '--vector-collection', 'vectors'], /Allowed choices are tools, functionality, usecases, interface/],
    [['requeue', '--error-code', 'OOPS'], /Allowed choices are/],
    [['status', 'extra'], /too many arguments for 'status'/],
    [['demo', '--db', 'x'], /unknown option '--db'/],
    [['status', '--data-dir', ''], /--data-dir <dir>.*cannot be empty/],
    [['status', '--data-dir', '/tmp/x', '--uri', 'mongodb://127.0.0.1:1/x'], /--data-dir is for the embedded database/],
  ])('%j is one line and a hint, never the whole usage', async (args, message) => {
    expectUsageError(await runCli(args), message);
  });

  it('is told apart from help, which prints the usage and the exit codes', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tool-sync');
    expect(help.stdout).toMatch(/Exit codes:\n +0 +done\n +1 +an error[\s\S]*\n +2 +needs the operator[\s\S]*\n +130 +interrupted/);
    for (const command of ['backfill', 'settle', 'rehash', 'indexes', 'requeue', 'status', 'seed', 'demo']) {
      const sub = await runCli([command, '--help']);
      expect(sub.stdout, command).toContain('--collection <name>');
      expect(sub.stdout, command).toContain('--data-dir <dir>');
      if (command !== 'demo') expect(sub.stdout, command).toContain('--db <name>');
    }
  });
});

describe('exit codes', () => {
  beforeEach(resetDatabase);

  // The process's own exit codes: the bin, run as a process.
  it('are 0 done, 1 an error, 2 needs the operator', async () => {
    await ToolModel.insertMany(generateTools(2, seededRandom(8), 'exit-').map((input) => new ToolModel(input)));
    expect((await spawnCli(['status', '--uri', uri()])).code).toBe(0);
    expect((await spawnCli(['status', '--uri', 'mongodb://127.0.0.1:1/nothing'])).code).toBe(1);
    expect((await spawnCli(['nonsense'])).code).toBe(1);
    // Needs the operator: missing indexes, a refused seed, a migration that left a document failed.
    expect((await spawnCli(['indexes', '--uri', uri()])).code).toBe(2);
    expect((await spawnCli(['seed', '--count', '1', '--uri', uri()])).code).toBe(2);
    await ToolModel.collection.insertOne({ id: 'broken', name: 'B', description: 'd', category: 'c', syncMetadata: { overallStatus: 'done' } });
    expect((await spawnCli(['backfill', '--uri', uri()])).code).toBe(2);
  });

  it('are 2 when Ctrl-C stops a migration after its batch (checkpoint kept), 130 on a second Ctrl-C', { timeout: 120_000 }, async () => {
    // A few batches are enough: what is tested is where the run stops, not how much it does.
    await ToolModel.collection.insertMany(generateTools(120, seededRandom(12), 'int-'));
    const run = startCli(['backfill', '--batch-size', '10', '--uri', uri()]);
    const checkpoints = mongoose.connection.collection(CHECKPOINT_COLLECTION);
    const deadline = Date.now() + 60_000;
    while ((await checkpoints.countDocuments()) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    run.child.kill('SIGINT');
    const stopped = await run.done;
    expect(stopped.code, stopped.stderr).toBe(2);
    expect(stopped.stderr).toContain('backfill: stopping after this batch (Ctrl-C again to stop now)');
    expect(stopped.stdout).toMatch(/stopped: +after a batch, on request; run it again to resume/);
    expect(await ToolModel.collection.countDocuments({ syncMetadata: { $exists: false } }), 'stopped too late to test anything').toBeGreaterThan(0);

    // One batch of all that is left: the second Ctrl-C comes while it is written, as soon as the first is taken.
    const twice = startCli(['backfill', '--batch-size', '1000', '--uri', uri()]);
    const waitFor = async (text: string): Promise<void> => {
      while (!twice.output().includes(text) && Date.now() < deadline + 30_000) await new Promise((resolve) => setTimeout(resolve, 5));
    };
    await waitFor('documents to scan');
    twice.child.kill('SIGINT');
    await waitFor('stopping after this batch');
    twice.child.kill('SIGINT');
    const killed = await twice.done;
    expect(killed.code).toBe(130);
    expect(killed.stderr).toContain('tool-sync: interrupted');

    const rerun = await runCli(['backfill', '--uri', uri()]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/resumed after _id [0-9a-f]{24}/);
    expect(await ToolModel.collection.countDocuments({ syncMetadata: { $exists: false } })).toBe(0);
  });
});

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ferretDbBinaryPath, FERRETDB_VERSION } from '../../src/db/index.js';
import { SYNC_COLLECTION_NAMES, type SyncStats } from '../../src/index.js';
import { hasStackTrace, runCli, spawnCli } from '../helpers/cli.js';

/**
 * The embedded database (neither --uri nor MONGODB_URI) kept between commands. It is the engine
 * the test run itself could start: mongodb-memory-server where global setup used it, else FerretDB.
 */
const memoryServer = inject('dbEngine') === 'MongoDB' && (process.env.MONGODB_URI ?? '') === '';
const ferretDbBuilt = existsSync(ferretDbBinaryPath());
const engine = memoryServer ? 'mongodb-memory-server' : ferretDbBuilt ? 'ferretdb' : undefined;
if (engine === undefined) {
  console.log(`[skip reason] the embedded-database tests need an engine the CLI can start: mongodb-memory-server did not start MongoDB in this run and FerretDB is not built at ${ferretDbBinaryPath()} (npm run db:prepare).`);
}
const engineFolder = engine === 'mongodb-memory-server' ? 'mongodb' : 'ferretdb';

/** The CLI with no connection string at all, on the engine above; FerretDB on SQLite, whose files are in the data folder. */
const embeddedEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  MONGODB_URI: undefined,
  TOOL_SYNC_DB: engine === 'ferretdb' ? 'ferretdb' : undefined,
  TOOL_SYNC_FERRETDB_BACKEND: undefined,
  ...extra,
});

let work = '';
beforeAll(async () => { work = await mkdtemp(join(tmpdir(), 'tool-sync-embedded-')); });
afterAll(async () => { if (work !== '') await rm(work, { recursive: true, force: true }); });

const total = (stdout: string): number => (JSON.parse(stdout) as SyncStats).total;

describe.runIf(engine !== undefined)('the embedded database', () => {
  it('keeps its data in --data-dir: seed then status, in two processes, see the same tools', { timeout: 120_000 }, async () => {
    const dataDir = join(work, 'kept');
    const seeded = await runCli(['seed', '--count', '12', '--seed', '5', '--data-dir', dataDir], embeddedEnv());
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(seeded.stderr).toMatch(new RegExp(`^tool-sync: server embedded (MongoDB|FerretDB) .*data kept in ${dataDir}/${engineFolder}\\), database tool_sync, collection tools$`, 'm'));
    expect(readdirSync(join(dataDir, engineFolder)).length).toBeGreaterThan(0);

    const status = await runCli(['status', '--json', '--data-dir', dataDir], embeddedEnv());
    expect(status.code, status.stderr).toBe(0);
    expect(total(status.stdout)).toBe(12);
    // And seed, now, refuses: the collection holds the tools of the first run.
    const again = await runCli(['seed', '--count', '3', '--data-dir', dataDir], embeddedEnv());
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already holds tools');
    // --db and --collection work there too; the lock is gone after each command.
    const other = await runCli(['seed', '--count', '2', '--db', 'elsewhere', '--collection', 'catalog', '--data-dir', dataDir], embeddedEnv());
    expect(other.code, other.stderr).toBe(0);
    expect(other.stderr).toMatch(/database elsewhere, collection catalog$/m);
    expect(total((await runCli(['status', '--json', '--db', 'elsewhere', '--collection', 'catalog', '--data-dir', dataDir], embeddedEnv())).stdout)).toBe(2);
    expect(existsSync(join(dataDir, 'tool-sync.lock'))).toBe(false);
  });

  it('keeps it by default in $XDG_CACHE_HOME/tool-sync/data', { timeout: 120_000 }, async () => {
    const cache = join(work, 'xdg');
    if (engine === 'ferretdb') {
      // The FerretDB build lives in the same user cache: the test's cache gets a link to the one built.
      const binary = join(cache, 'tool-sync', `ferretdb-${FERRETDB_VERSION}`, 'ferretdb');
      await mkdir(join(binary, '..'), { recursive: true });
      await symlink(ferretDbBinaryPath(), binary);
    }
    const env = embeddedEnv({ XDG_CACHE_HOME: cache, TOOL_SYNC_CACHE_DIR: undefined });
    const seeded = await runCli(['seed', '--count', '7', '--seed', '6'], env);
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(seeded.stderr).toContain(`data kept in ${join(cache, 'tool-sync', 'data', engineFolder)}`);
    const status = await runCli(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(total(status.stdout)).toBe(7);
  });

  it('is used by one command at a time; a lock left by a dead process is taken over', { timeout: 120_000 }, async () => {
    const dataDir = join(work, 'locked');
    expect((await runCli(['seed', '--count', '1', '--data-dir', dataDir], embeddedEnv())).code).toBe(0);
    const lock = join(dataDir, 'tool-sync.lock');

    // A lock held by a live process (this one), seen by a command in a process of its own.
    await writeFile(lock, `${process.pid}\n`);
    const busy = await spawnCli(['status', '--data-dir', dataDir], embeddedEnv());
    expect(busy.code).toBe(1);
    expect(busy.stderr).toBe(`tool-sync: the embedded database in ${dataDir} is in use by another tool-sync command (process ${process.pid}); wait for it, or pass another --data-dir\n`);
    expect(await readFile(lock, 'utf8')).toBe(`${process.pid}\n`);

    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    await writeFile(lock, `${dead}\n`);
    const status = await runCli(['status', '--json', '--data-dir', dataDir], embeddedEnv());
    expect(status.code, status.stderr).toBe(0);
    expect(total(status.stdout)).toBe(1);
    expect(existsSync(lock)).toBe(false);
  });

  it('runs the demo end to end, --quiet: the phase headings and the final state, plain tables in a pipe', { timeout: 180_000 }, async () => {
    const dataDir = join(work, 'demo');
    const demo = await runCli(['demo', '--quiet', '--data-dir', dataDir], embeddedEnv());
    expect(demo.code, demo.stderr).toBe(0);
    expect(demo.stderr).toMatch(/database tool_sync_demo, collection tools$/m);
    const headings = ['phase 1', 'phase 2', 'phase 3', 'after the backfill', 'phase 4', 'after the workers', 'phase 5', 'phase 6', 'phase 7', 'phase 8',
      'phase 9', 'phase 10', 'final'];
    for (const phase of headings) expect(demo.stdout).toContain(`== ${phase}`);
    // Quiet: every line before the final state is a heading (or the blank line before it); then one table.
    const [beforeFinal = '', finalState = ''] = demo.stdout.split(/^== final.*$/m);
    expect(beforeFinal.split('\n').filter((line) => line !== '' && !line.startsWith('== '))).toEqual([]);
    expect(finalState).toMatch(/overall .*56 .*1 .*57/);
    expect(demo.stdout).not.toContain('workers round');
    expect(demo.stdout).not.toContain('\u001b[');
    const status = await runCli(['status', '--json', '--db', 'tool_sync_demo', '--data-dir', dataDir], embeddedEnv());
    expect(status.code, status.stderr).toBe(0);
    const stats = JSON.parse(status.stdout) as SyncStats;
    // Three of the sixty were deleted, their points removed.
    expect(stats.byOverallStatus).toMatchObject({ synced: 56, failed: 1, pending: 0, stale: 0 });
    for (const name of SYNC_COLLECTION_NAMES) expect(stats.deletions[name]).toEqual({ pending: 0, failed: 0 });
    expect(stats.vectorsByEmbeddingModel?.usecases.map(({ model }) => model)).toEqual(['simulated-embedder-v2']);
  });
});

/** Prints why a test is skipped (the suite's `[skip reason]` convention: never a silent skip) and gives the reason. */
function skipBecause(reason: string): string {
  const line = `[skip reason] ${reason}`;
  console.log(line);
  return line;
}

describe('no embedded engine', () => {
  /** This PATH without any folder that holds a `go` command: no Go toolchain to build FerretDB with. */
  const pathWithoutGo = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '' && !existsSync(join(dir, 'go'))).join(delimiter);

  /**
   * A machine with neither engine: every cache and data folder an empty temporary one (the FerretDB
   * build cache, mongodb-memory-server's download folder, HOME, and the working folder, where it
   * also looks), no download at run time (so a machine with internet access cannot fetch one), and
   * no Go on PATH.
   */
  async function bareMachine(name: string): Promise<{ root: string; cwd: string; cache: string; env: NodeJS.ProcessEnv }> {
    const root = join(work, name);
    const cwd = join(root, 'cwd');
    const home = join(root, 'home');
    const cache = join(root, 'cache');
    const downloads = join(root, 'mongodb-binaries');
    for (const dir of [cwd, home, cache, downloads]) await mkdir(dir, { recursive: true });
    const env: NodeJS.ProcessEnv = {
      PATH: pathWithoutGo,
      HOME: home,
      TOOL_SYNC_CACHE_DIR: cache,
      XDG_CACHE_HOME: join(home, '.cache'),
      MONGOMS_DOWNLOAD_DIR: downloads,
      MONGOMS_RUNTIME_DOWNLOAD: 'false',
    };
    return { root, cwd, cache, env };
  }

  const cases = [
    { command: 'status', where: '--data-dir (an empty folder)', args: (root: string) => ['status', '--data-dir', join(root, 'data')], dataDir: (root: string) => join(root, 'data') },
    { command: 'seed', where: 'the default data folder (in the empty cache)', args: () => ['seed', '--count', '3'], dataDir: (root: string) => join(root, 'cache', 'data') },
  ];

  for (const { command, where, args, dataDir } of cases) it(`${command} with ${where} fails with one line saying to pass --uri or set MONGODB_URI, exit 1`, { timeout: 60_000 }, async () => {
    const machine = await bareMachine(`bare-${command}`);
    // The premise: there is no `go` to run here.
    expect(spawnSync('go', ['version'], { env: machine.env }).error).toMatchObject({ code: 'ENOENT' });

    const result = await spawnCli(args(machine.root), machine.env, { cwd: machine.cwd, replaceEnv: true });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toBe('');
    expect(hasStackTrace(result.stderr)).toBe(false);
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^tool-sync: no database to work on: pass --uri <connection string> or set MONGODB_URI \(neither is set, and no embedded database can be started here: /);
    // Why, for each engine.
    expect(lines[0]).toContain('mongodb-memory-server has no MongoDB binary here');
    expect(lines[0]).toContain(`FerretDB is not built (${join(machine.cache, `ferretdb-${FERRETDB_VERSION}`, 'ferretdb')}) and building it needs Go 1.24 or newer, which is not on PATH`);
    // Nothing was built, and the data folder is not left locked.
    expect(existsSync(join(machine.cache, `ferretdb-${FERRETDB_VERSION}`))).toBe(false);
    expect(existsSync(join(dataDir(machine.root), 'tool-sync.lock'))).toBe(false);
  });
});

/** Whether mongodb-memory-server can start MongoDB here (it may download it first); the reason when it cannot. */
async function memoryServerProblem(): Promise<string | undefined> {
  try {
    const { MongoBinary, MongoMemoryServer } = await import('mongodb-memory-server');
    await MongoBinary.getPath();
    const server = await MongoMemoryServer.create();
    await server.stop();
    return undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return message.split('\n').map((line) => line.trim()).filter((line) => line !== '').join(' ').slice(0, 300);
  }
}

describe('the embedded database on mongodb-memory-server', () => {
  it('keeps its data in --data-dir/mongodb: seed then status, in two processes, see the same tools', { timeout: 300_000 }, async (context) => {
    const problem = await memoryServerProblem();
    if (problem !== undefined) {
      skipBecause(`mongodb-memory-server cannot start MongoDB on this machine (tried: ${problem}); the test needs it (the FerretDB path of --data-dir is tested above)`);
      context.skip();
    }
    const dataDir = join(work, 'memory');
    const env = { MONGODB_URI: undefined, TOOL_SYNC_DB: undefined };
    const seeded = await runCli(['seed', '--count', '9', '--seed', '8', '--data-dir', dataDir], env);
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(seeded.stderr).toMatch(new RegExp(`^tool-sync: server embedded MongoDB \\S+ \\(mongodb-memory-server, data kept in ${dataDir}/mongodb\\), database tool_sync, collection tools$`, 'm'));
    expect(readdirSync(join(dataDir, 'mongodb'))).toContain('WiredTiger');
    expect(existsSync(join(dataDir, 'ferretdb'))).toBe(false);

    const status = await runCli(['status', '--json', '--data-dir', dataDir], env);
    expect(status.code, status.stderr).toBe(0);
    expect(total(status.stdout)).toBe(9);
    expect(existsSync(join(dataDir, 'tool-sync.lock'))).toBe(false);
  });
});

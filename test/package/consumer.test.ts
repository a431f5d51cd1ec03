import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FERRETDB_VERSION } from '../../src/db/index.js';
import { uniqueDatabaseName } from '../helpers/database.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
/** The package's own TypeScript (the one its declarations are emitted with) compiles the consumer app. */
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** A TypeScript service has @types/node; it gets the version the package is built against. */
const TYPES_NODE = (JSON.parse(await readFile(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }).version;

/** The range the package declares for mongoose (`~9.7.3`): its lowest and its highest published version. */
const SUPPORTED_MONGOOSE = ['9.7.3', '9.7.4'];
const TYPEGOOSE = '13.4.0';

let work = '';
let tarball = '';

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tool-sync-consumer-'));
  // The dist/ global setup built (or found fresh), as it is: `prepare` (npm run build) would delete
  // and rebuild it while other test files run the bin from it.
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new Error('no dist/ to pack: run npm run build');
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  if (packed === undefined) throw new Error('npm pack produced nothing');
  tarball = join(work, packed.filename);
}, 120_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A fresh app that depends on the packed package and on `deps`, installed as a user would. */
async function app(name: string, deps: string[]): Promise<{ dir: string; install: Promise<{ stdout: string; stderr: string }> }> {
  const dir = join(work, name);
  await run('mkdir', ['-p', dir]);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }));
  // What npm has cached is used without asking the registry again (a fresh clone has just installed the same packages).
  const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, ...deps], { cwd: dir, timeout: 240_000 });
  return { dir, install };
}

/**
 * What a service does, in TypeScript: its own connection through createToolModel (with the
 * migrations from code), and the default connection's ToolModel. It is compiled by tsc and the
 * emitted JavaScript is what runs.
 */
const SERVICE = `
import 'reflect-metadata';
import mongoose from 'mongoose';
import { backfill, checkIndexes, createToolModel, ToolModel, type ITool, type MigrationSummary, type SyncStats, type ToolModelType } from 'tool-sync';

const uri = process.env.URI ?? '';
const db = process.env.DB ?? 'consumer';
const connection = await mongoose.createConnection(uri, { dbName: db + '_own' }).asPromise();
const Tools: ToolModelType = createToolModel(connection, { collection: 'catalog' });
const tool = await Tools.create({ id: 'vscode', name: 'VS Code', description: 'An editor.', category: 'editor', useCases: ['edit'] });
await Tools.markCollectionSynced(tool._id, 'usecases', { contentHash: tool.syncMetadata.collections.usecases.contentHash });
await Tools.updateOne({ _id: tool._id }, { $push: { useCases: 'debug' } });
const own: ITool = await Tools.findById(tool._id).orFail();
const indexes = await checkIndexes(Tools);
const summary: MigrationSummary = await backfill(Tools, { dryRun: true, onProgress: (progress: MigrationSummary) => { void progress.scanned; } });

await mongoose.connect(uri, { dbName: db + '_default' });
await ToolModel.create({ id: 'vim', name: 'Vim', description: 'Another editor.', category: 'editor' });
const stats: SyncStats = await ToolModel.getSyncStats();

console.log(JSON.stringify({
  status: own.syncMetadata.collections.usecases.status,
  total: stats.total,
  collection: Tools.collection.collectionName,
  missingIndexes: indexes.missing.length > 0,
  scanned: summary.scanned,
}));
await connection.dropDatabase();
await connection.close();
await mongoose.connection.dropDatabase();
await mongoose.disconnect();
`;

/**
 * The consumer's compiler options: strict, no unused locals or parameters, and every declaration
 * file checked (skipLibCheck off), ours, mongoose's and typegoose's alike.
 */
const CONSUMER_TSCONFIG = {
  compilerOptions: {
    strict: true,
    noUnusedLocals: true,
    noUnusedParameters: true,
    skipLibCheck: false,
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    types: ['node'],
    outDir: 'build',
  },
  files: ['service.ts'],
};

/** Compiles the consumer app with tsc: its errors (one per line) and the files the program holds. */
async function compile(dir: string): Promise<{ errors: string[]; files: string[] }> {
  const output = await run(process.execPath, [TSC, '-p', dir, '--pretty', 'false', '--listFiles'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 })
    .then(({ stdout }) => stdout, (error: unknown) => String((error as { stdout?: string }).stdout ?? error));
  const lines = output.split('\n').filter((line) => line !== '');
  return {
    errors: lines.filter((line) => /error TS\d+/.test(line)).map((line) => line.replace(`${dir}/`, '')),
    files: lines.filter((line) => line.startsWith('/')).map((line) => line.replace(`${dir}/`, '')),
  };
}

describe('the packed package in a fresh app', () => {
  it('holds dist, the README and the LICENSE, no sources and no source maps', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball]);
    const files = stdout.split('\n').filter((line) => line !== '');
    expect(files).toContain('package/LICENSE');
    expect(files).toContain('package/README.md');
    expect(files).toContain('package/dist/index.js');
    expect(files.filter((file) => !file.startsWith('package/dist/') && !['package/LICENSE', 'package/README.md', 'package/package.json'].includes(file))).toEqual([]);
    expect(files.filter((file) => file.endsWith('.map'))).toEqual([]);
  });

  it.each(SUPPORTED_MONGOOSE)(
    'installs beside mongoose %s as its one copy; a TypeScript service compiles with skipLibCheck off and runs on it',
    { timeout: 300_000 },
    async (version) => {
      const { dir, install } = await app(`service-${version.replaceAll('.', '-')}`, [`mongoose@${version}`, `@typegoose/typegoose@${TYPEGOOSE}`, `@types/node@${TYPES_NODE}`]);
      await install;
      const { stdout: tree } = await run('npm', ['ls', 'mongoose', '--all', '--parseable'], { cwd: dir });
      expect(tree.split('\n').filter((line) => line.endsWith('/mongoose'))).toEqual([join(dir, 'node_modules', 'mongoose')]);
      expect(await readdir(join(dir, 'node_modules'))).not.toContain('mongodb-memory-server');

      await writeFile(join(dir, 'service.ts'), SERVICE);
      await writeFile(join(dir, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG, null, 2));
      const { errors, files } = await compile(dir);
      expect(errors).toEqual([]);
      // The check covered the declarations: ours (every one the entry reaches), mongoose's and typegoose's.
      expect(files).toContain('node_modules/tool-sync/dist/index.d.ts');
      expect(files).toContain('node_modules/tool-sync/dist/models/tool.d.ts');
      expect(files.some((file) => file.startsWith('node_modules/mongoose/types/'))).toBe(true);
      expect(files.some((file) => file.startsWith('node_modules/@typegoose/typegoose/'))).toBe(true);

      const { stdout } = await run(process.execPath, [join('build', 'service.js')], {
        cwd: dir,
        timeout: 60_000,
        env: { ...process.env, URI: inject('mongoUri'), DB: uniqueDatabaseName(`consumer-${version}`) },
      });
      expect(JSON.parse(stdout)).toEqual({ status: 'stale', total: 1, collection: 'catalog', missingIndexes: true, scanned: 1 });

      // Its CLI with nothing to work on (no --uri or MONGODB_URI, no mongodb-memory-server in an
      // install, no FerretDB built and no Go): one line saying what to pass, exit 1.
      const bare = await mkdtemp(join(work, 'bare-'));
      const cli = await run(process.execPath, [join('node_modules', 'tool-sync', 'dist', 'cli', 'main.js'), 'status'], {
        cwd: dir,
        env: { PATH: (process.env.PATH ?? '').split(delimiter).filter((entry) => entry !== '' && !existsSync(join(entry, 'go'))).join(delimiter), HOME: bare, TOOL_SYNC_CACHE_DIR: bare },
      }).then(() => ({ code: 0, stderr: '' }), (error: unknown) => error as { code: number; stderr: string });
      expect(cli.code).toBe(1);
      expect(cli.stderr).toBe('tool-sync: no database to work on: pass --uri <connection string> or set MONGODB_URI (neither is set, and no embedded database can be started here: '
        + `mongodb-memory-server is not installed (a development dependency of tool-sync); FerretDB is not built (${join(bare, `ferretdb-${FERRETDB_VERSION}`, 'ferretdb')}) `
        + 'and building it needs Go 1.24 or newer, which is not on PATH)\n');
    },
  );

  it('is refused by npm beside an unsupported mongoose (a peer conflict), never installed as a second copy', { timeout: 300_000 }, async () => {
    const { install } = await app('unsupported', ['mongoose@8.9.5', `@typegoose/typegoose@${TYPEGOOSE}`]);
    const error: unknown = await install.then(() => null, (e: unknown) => e);
    expect(error, 'npm installed the package beside mongoose 8').not.toBeNull();
    expect(String((error as { stderr?: string }).stderr)).toMatch(/ERESOLVE/);
  });
});

import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueDatabaseName } from '../helpers/database.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;

/** The range the package declares for mongoose (`~9.7.3`): its lowest and its highest published version. */
const SUPPORTED_MONGOOSE = ['9.7.3', '9.7.4'];
const TYPEGOOSE = '13.4.0';

let work = '';
let tarball = '';

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tool-sync-consumer-'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT });
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
  const install = run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball, ...deps], { cwd: dir, timeout: 240_000 });
  return { dir, install };
}

/** What a service does: its own connection through createToolModel, and the default connection's ToolModel. */
const SERVICE = `
import 'reflect-metadata';
import mongoose from 'mongoose';
import { createToolModel, ToolModel } from 'tool-sync';

const uri = process.env.URI;
const connection = await mongoose.createConnection(uri, { dbName: process.env.DB + '_own' }).asPromise();
const Tools = createToolModel(connection, { collection: 'catalog' });
const tool = await Tools.create({ id: 'vscode', name: 'VS Code', description: 'An editor.', category: 'editor', useCases: ['edit'] });
await Tools.markCollectionSynced(tool._id, 'usecases', { contentHash: tool.syncMetadata.collections.usecases.contentHash });
await Tools.updateOne({ _id: tool._id }, { $push: { useCases: 'debug' } });
const own = await Tools.findById(tool._id).orFail();

await mongoose.connect(uri, { dbName: process.env.DB + '_default' });
await ToolModel.create({ id: 'vim', name: 'Vim', description: 'Another editor.', category: 'editor' });
const stats = await ToolModel.getSyncStats();

console.log(JSON.stringify({ status: own.syncMetadata.collections.usecases.status, total: stats.total, collection: Tools.collection.collectionName }));
await connection.dropDatabase();
await connection.close();
await mongoose.connection.dropDatabase();
await mongoose.disconnect();
`;

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

  it.each(SUPPORTED_MONGOOSE)('installs beside mongoose %s as its one copy, and a service runs on it', { timeout: 300_000 }, async (version) => {
    const { dir, install } = await app(`service-${version.replaceAll('.', '-')}`, [`mongoose@${version}`, `@typegoose/typegoose@${TYPEGOOSE}`]);
    await install;
    const { stdout: tree } = await run('npm', ['ls', 'mongoose', '--all', '--parseable'], { cwd: dir });
    expect(tree.split('\n').filter((line) => line.endsWith('/mongoose'))).toEqual([join(dir, 'node_modules', 'mongoose')]);
    expect(await readdir(join(dir, 'node_modules'))).not.toContain('mongodb-memory-server');
    await writeFile(join(dir, 'service.mjs'), SERVICE);
    const { stdout } = await run(process.execPath, ['service.mjs'], {
      cwd: dir,
      timeout: 60_000,
      env: { ...process.env, URI: inject('mongoUri'), DB: uniqueDatabaseName(`consumer-${version}`) },
    });
    expect(JSON.parse(stdout)).toEqual({ status: 'stale', total: 1, collection: 'catalog' });
  });

  it('is refused by npm beside an unsupported mongoose (a peer conflict), never installed as a second copy', { timeout: 300_000 }, async () => {
    const { install } = await app('unsupported', ['mongoose@8.9.5', `@typegoose/typegoose@${TYPEGOOSE}`]);
    const error: unknown = await install.then(() => null, (e: unknown) => e);
    expect(error, 'npm installed the package beside mongoose 8').not.toBeNull();
    expect(String((error as { stderr?: string }).stderr)).toMatch(/ERESOLVE/);
  });
});

import { execFile, spawn } from 'node:child_process';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import mongoose from 'mongoose';
import { describe, expect, inject, it } from 'vitest';
import {
  DATA_DIR_LOCK_FILE,
  DEFAULT_POSTGRESQL_URL,
  engineFromBuildInfo,
  ferretDbBinaryPath,
  projectCacheDir,
  FERRETDB_VERSION,
  postgresqlReachable,
  redactUri,
  resolveDatabase,
} from '../../src/db/index.js';

const execFileAsync = promisify(execFile);

function portIsOpen(uri: string): Promise<boolean> {
  const { hostname, port } = new URL(uri);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { resolve(false); });
  });
}

async function waitUntilClosed(uri: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!(await portIsOpen(uri))) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

async function roundTrip(uri: string): Promise<unknown> {
  const connection = await mongoose.createConnection(uri, { dbName: 'db_module_probe' }).asPromise();
  try {
    await connection.collection('probe').insertOne({ ok: 1 });
    const found = await connection.collection('probe').findOne({ ok: 1 });
    await connection.dropDatabase();
    return found?.ok;
  } finally {
    await connection.close();
  }
}

const ferretDbAvailable = existsSync(ferretDbBinaryPath());
if (!ferretDbAvailable) {
  console.log(`[skip reason] FerretDB tests of the db module need ${ferretDbBinaryPath()}; this run uses ${inject('dbEngine')} and built none.`);
}
const postgresqlUrl = process.env.TOOL_SYNC_POSTGRESQL_URL ?? DEFAULT_POSTGRESQL_URL;
const postgresqlAvailable = ferretDbAvailable && (await postgresqlReachable(postgresqlUrl)) && (await execFileAsync('psql', ['--version']).then(() => true, () => false));
if (ferretDbAvailable && !postgresqlAvailable) {
  console.log(`[skip reason] the PostgreSQL backend test needs a PostgreSQL at ${redactUri(postgresqlUrl)} and psql; not both are here.`);
}

/** The schemas of the PostgreSQL database FerretDB writes to (one per MongoDB database). */
async function postgresqlSchemas(url: string): Promise<string[]> {
  const { hostname, port, username, pathname } = new URL(url);
  const { stdout } = await execFileAsync('psql', ['-h', hostname, '-p', port === '' ? '5432' : port, '-U', username, '-d', pathname.slice(1), '-Atc', 'select nspname from pg_namespace']);
  return stdout.split('\n').filter((line) => line !== '');
}

describe('resolveDatabase', () => {
  it('uses MONGODB_URI when it is set, and names the engine', async () => {
    const lines: string[] = [];
    const database = await resolveDatabase({ env: { MONGODB_URI: inject('mongoUri') }, log: (line) => lines.push(line) });
    expect(database.source).toBe('MONGODB_URI');
    expect(database.uri).toBe(inject('mongoUri'));
    expect(database.engine).toEqual({ name: inject('dbEngine'), version: inject('dbEngineVersion') });
    expect(lines.join('\n')).toContain(`${inject('dbEngine')} ${inject('dbEngineVersion')}`);
    await database.stop();
    expect(await roundTrip(database.uri)).toBe(1);
  });

  it('tries mongodb-memory-server before FerretDB when MONGODB_URI is not set, never silent for 5 s', { timeout: 120_000 }, async () => {
    const lines: string[] = [];
    const times = [Date.now()];
    const database = await resolveDatabase({ env: {}, log: (line) => { lines.push(line); times.push(Date.now()); } });
    try {
      // A download that fails (its retries take about 7 s where the host cannot be reached) says it is at it.
      const gaps = times.slice(1).map((at, i) => at - (times[i] ?? at));
      expect(Math.max(...gaps), lines.join('\n')).toBeLessThan(5_000);
      if (database.source === 'ferretdb') {
        expect(lines.some((line) => line.startsWith('mongodb-memory-server has no MongoDB binary here'))).toBe(true);
      } else {
        expect(database.source).toBe('mongodb-memory-server');
      }
      expect(lines.at(-1)).toContain(`using ${database.engine.name} ${database.engine.version}`);
      expect(await roundTrip(database.uri)).toBe(1);
    } finally {
      await database.stop();
    }
  });

  it.runIf(ferretDbAvailable)('starts FerretDB on a free local port, says which version, and stops it', async () => {
    const lines: string[] = [];
    const database = await resolveDatabase({ env: { TOOL_SYNC_DB: 'ferretdb' }, log: (line) => lines.push(line) });
    expect(database.source).toBe('ferretdb');
    expect(database.engine).toEqual({ name: 'FerretDB', version: FERRETDB_VERSION });
    expect(database.uri).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/$/);
    expect(database.uri).not.toBe(inject('mongoUri'));
    expect(await roundTrip(database.uri)).toBe(1);
    await database.stop();
    expect(await portIsOpen(database.uri)).toBe(false);
  });

  it('MONGODB_URI wins over dataDir: nothing is started, created or locked there', async () => {
    const dataDir = join(tmpdir(), `tool-sync-never-${process.pid}-${Date.now()}`);
    const database = await resolveDatabase({ env: { MONGODB_URI: inject('mongoUri') }, dataDir, log: () => undefined });
    expect(database.source).toBe('MONGODB_URI');
    expect(database.uri).toBe(inject('mongoUri'));
    expect(database.dataDir).toBeUndefined();
    expect(existsSync(dataDir)).toBe(false);
    await database.stop();
  });

  it.runIf(ferretDbAvailable)('with dataDir, keeps FerretDB\'s data in <dataDir>/ferretdb for the next server, and locks the folder while in use', { timeout: 60_000 }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tool-sync-db-data-'));
    const lock = join(dataDir, DATA_DIR_LOCK_FILE);
    try {
      const first = await resolveDatabase({ env: { TOOL_SYNC_DB: 'ferretdb' }, dataDir, log: () => undefined });
      try {
        expect(first.source).toBe('ferretdb');
        expect(first.dataDir).toBe(join(dataDir, 'ferretdb'));
        expect(first.where).toBe(`SQLite backend, data kept in ${join(dataDir, 'ferretdb')}`);
        expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
        const connection = await mongoose.createConnection(first.uri, { dbName: 'kept' }).asPromise();
        await connection.collection('probe').insertOne({ kept: 'yes' });
        await connection.close();
      } finally {
        await first.stop();
      }
      expect(existsSync(lock)).toBe(false);

      // No TOOL_SYNC_DB now: a folder holding FerretDB's data (and no MongoDB data) goes straight to FerretDB.
      const lines: string[] = [];
      const second = await resolveDatabase({ env: {}, dataDir, log: (line) => lines.push(line) });
      try {
        expect(second.source).toBe('ferretdb');
        expect(second.uri).not.toBe(first.uri);
        expect(lines.filter((line) => line.includes('mongodb-memory-server'))).toEqual([]);
        const connection = await mongoose.createConnection(second.uri, { dbName: 'kept' }).asPromise();
        expect(await connection.collection('probe').findOne({}, { projection: { _id: 0 } })).toEqual({ kept: 'yes' });
        await connection.close();
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses an unknown FerretDB backend, naming the value', async () => {
    await expect(resolveDatabase({ env: { TOOL_SYNC_DB: 'ferretdb', TOOL_SYNC_FERRETDB_BACKEND: 'mysql' }, log: () => undefined }))
      .rejects.toThrow('TOOL_SYNC_FERRETDB_BACKEND must be one of sqlite, postgresql; got "mysql"');
  });

  it.runIf(postgresqlAvailable)('gives FerretDB a PostgreSQL backend when asked, and the data lands there', async () => {
    const lines: string[] = [];
    const database = await resolveDatabase({ env: { TOOL_SYNC_DB: 'ferretdb', TOOL_SYNC_FERRETDB_BACKEND: 'postgresql' }, log: (line) => lines.push(line) });
    try {
      expect(database.ferretDbBackend).toBe('postgresql');
      expect(lines.join('\n')).toContain(`FerretDB ${FERRETDB_VERSION} (PostgreSQL backend, ${redactUri(postgresqlUrl)})`);
      const connection = await mongoose.createConnection(database.uri, { dbName: 'db_module_pg_probe' }).asPromise();
      try {
        await connection.collection('probe').insertOne({ ok: 1 });
        expect(await postgresqlSchemas(postgresqlUrl)).toContain('db_module_pg_probe');
        await connection.dropDatabase();
        expect(await postgresqlSchemas(postgresqlUrl)).not.toContain('db_module_pg_probe');
      } finally {
        await connection.close();
      }
    } finally {
      await database.stop();
    }
  });

  it.runIf(ferretDbAvailable)('stops FerretDB when the process that started it is killed with SIGKILL', async () => {
    const script = `import('./dist/db/index.js').then(async (db) => {
      const server = await db.startFerretDb(db.ferretDbBinaryPath());
      console.log(server.uri);
      setInterval(() => {}, 1000);
    });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const uri = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (chunk: Buffer) => { resolve(chunk.toString().trim()); });
      child.once('exit', (code) => { reject(new Error(`child exited with ${String(code)}`)); });
    });
    expect(await portIsOpen(uri)).toBe(true);
    child.kill('SIGKILL');
    expect(await waitUntilClosed(uri, 10_000)).toBe(true);
  });
});

describe('redactUri', () => {
  it('hides the password and keeps the rest', () => {
    expect(redactUri('mongodb://admin:s3cret@db.example.org:27017/tools')).toBe('mongodb://admin:***@db.example.org:27017/tools');
    expect(redactUri('mongodb://127.0.0.1:27017/')).toBe('mongodb://127.0.0.1:27017/');
  });
});

describe('engineFromBuildInfo', () => {
  it('tells FerretDB 1.x, FerretDB 2.x and MongoDB apart from what buildInfo answers', () => {
    expect(engineFromBuildInfo({ version: '7.0.42', ferretdbVersion: 'v1.24.2' })).toEqual({ name: 'FerretDB', version: 'v1.24.2' });
    // FerretDB 2 on DocumentDB reports a MongoDB version and its own under `ferretdb`.
    expect(engineFromBuildInfo({ version: '7.0.77', ferretdb: { version: 'v2.7.0' } })).toEqual({ name: 'FerretDB', version: 'v2.7.0' });
    expect(engineFromBuildInfo({ version: '8.0.4' })).toEqual({ name: 'MongoDB', version: '8.0.4' });
    expect(engineFromBuildInfo(undefined)).toEqual({ name: 'MongoDB', version: 'unknown' });
  });
});

describe('projectCacheDir', () => {
  it('is a user cache folder, never the package folder: TOOL_SYNC_CACHE_DIR, else XDG_CACHE_HOME/tool-sync, else ~/.cache/tool-sync', () => {
    expect(projectCacheDir({ TOOL_SYNC_CACHE_DIR: '/srv/cache' })).toBe('/srv/cache');
    expect(projectCacheDir({ XDG_CACHE_HOME: '/home/u/.xdg' })).toBe('/home/u/.xdg/tool-sync');
    expect(projectCacheDir({})).toBe(join(homedir(), '.cache', 'tool-sync'));
    expect(ferretDbBinaryPath().startsWith(join(process.cwd(), 'node_modules'))).toBe(false);
  });
});

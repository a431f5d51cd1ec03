import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import mongoose from 'mongoose';
import { describe, expect, inject, it } from 'vitest';
import { ferretDbBinaryPath, FERRETDB_VERSION, redactUri, resolveDatabase } from '../src/db/index.js';

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

  it('tries mongodb-memory-server before FerretDB when MONGODB_URI is not set', { timeout: 120_000 }, async () => {
    const lines: string[] = [];
    const database = await resolveDatabase({ env: {}, log: (line) => lines.push(line) });
    try {
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

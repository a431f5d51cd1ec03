import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DEFAULT_DB_PORT } from '../../src/cli/db-command.js';
import { ferretDbBinaryPath } from '../../src/db/index.js';
import { createToolModel, SYNC_COLLECTION_NAMES } from '../../src/index.js';
import { hasStackTrace, runCli, startCli } from '../helpers/cli.js';
import { toolInput } from '../helpers/tools.js';

/** The engine the test run itself could start (as in embedded.test.ts): mongodb-memory-server where global setup used it, else FerretDB. */
const memoryServer = inject('dbEngine') === 'MongoDB' && (process.env.MONGODB_URI ?? '') === '';
const ferretDbBuilt = existsSync(ferretDbBinaryPath());
const engine = memoryServer ? 'mongodb-memory-server' : ferretDbBuilt ? 'ferretdb' : undefined;
if (engine === undefined) {
  console.log(`[skip reason] tool-sync db needs an engine it can start: mongodb-memory-server did not start MongoDB in this run and FerretDB is not built at ${ferretDbBinaryPath()} (npm run db:prepare).`);
}
const env: NodeJS.ProcessEnv = { MONGODB_URI: undefined, TOOL_SYNC_DB: engine === 'ferretdb' ? 'ferretdb' : undefined, TOOL_SYNC_FERRETDB_BACKEND: undefined };

let work = '';
beforeAll(async () => { work = await mkdtemp(join(tmpdir(), 'tool-sync-db-command-')); });
afterAll(async () => { if (work !== '') await rm(work, { recursive: true, force: true }); });

/** A port nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0); });
    });
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { resolve(false); });
  });
}

/** `tool-sync db` as a process of its own, once it has printed the URI to use. */
async function startDb(port: number, dataDir: string): Promise<{ run: ReturnType<typeof startCli>; uri: string }> {
  const run = startCli(['db', '--port', String(port), '--data-dir', dataDir], env);
  const deadline = Date.now() + 60_000;
  let uri: string | undefined;
  for (;;) {
    uri = /^MONGODB_URI=(\S+)$/m.exec(run.stdout())?.[1];
    if (uri !== undefined || Date.now() > deadline || run.child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (uri === undefined) {
    run.child.kill('SIGKILL');
    throw new Error(`tool-sync db printed no MONGODB_URI: ${run.output()}`);
  }
  return { run, uri };
}

describe.runIf(engine !== undefined)('tool-sync db', () => {
  it('serves the embedded database on --port, prints the MONGODB_URI, keeps the data in --data-dir, and stops on Ctrl-C (exit 0, port free)', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const dataDir = join(work, 'data');
    const first = await startDb(port, dataDir);
    expect(first.uri).toBe(`mongodb://127.0.0.1:${port}/tool_sync`);
    expect(first.run.output()).toMatch(new RegExp(`^tool-sync: (MongoDB|FerretDB) \\S+ \\(.*data kept in ${dataDir}/(mongodb|ferretdb)\\) on 127\\.0\\.0\\.1:${port}; Ctrl-C stops it$`, 'm'));

    // A service writes a tool through the package, as it would beside its own code.
    const connection = await mongoose.createConnection(first.uri).asPromise();
    try {
      const tools = createToolModel(connection);
      const tool = await tools.create(toolInput({ id: 'served-tool' }));
      for (const name of SYNC_COLLECTION_NAMES) await tools.markCollectionSynced(tool._id, name, { contentHash: tool.syncMetadata.collections[name].contentHash });
      expect((await tools.findById(tool._id).orFail()).syncMetadata.overallStatus).toBe('synced');
    } finally {
      await connection.close();
    }

    first.run.child.kill('SIGINT');
    const stopped = await first.run.done;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.signal).toBeNull();
    expect(stopped.stderr).toMatch(/tool-sync: stopped$/m);
    expect(hasStackTrace(stopped.stderr)).toBe(false);
    expect(await answers(port)).toBe(false);
    expect(existsSync(join(dataDir, 'tool-sync.lock'))).toBe(false);

    // Started again on the same folder: the tool is there.
    const second = await startDb(port, dataDir);
    try {
      const again = await mongoose.createConnection(second.uri).asPromise();
      try {
        expect(await again.collection('tools').countDocuments({ id: 'served-tool', 'syncMetadata.overallStatus': 'synced' })).toBe(1);
      } finally {
        await again.close();
      }
    } finally {
      second.run.child.kill('SIGINT');
      expect((await second.run.done).code).toBe(0);
    }
    expect(await answers(port)).toBe(false);
  });

  it('refuses a port another server holds, saying so in one line', async () => {
    const holder: Server = createServer();
    const port = await new Promise<number>((resolve) => {
      holder.listen(0, '127.0.0.1', () => {
        const address = holder.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    try {
      const result = await runCli(['db', '--port', String(port), '--data-dir', join(work, 'refused')], env);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(`tool-sync: port ${port} on 127.0.0.1 is in use (another MongoDB, or tool-sync db already running?): pass --port <n>`);
      expect(existsSync(join(work, 'refused', 'tool-sync.lock'))).toBe(false);
    } finally {
      holder.close();
    }
  });
});

describe('tool-sync db --help', () => {
  it('names the port\'s default, the data folder and Ctrl-C', async () => {
    const help = await runCli(['db', '--help']);
    expect(help.code).toBe(0);
    expect(DEFAULT_DB_PORT).toBe(27017);
    expect(help.stdout).toMatch(/--port <n> +the port on 127\.0\.0\.1 \(default: 27017\)/);
    expect(help.stdout).toContain('--data-dir <dir>');
    expect(help.stdout).toMatch(/Ctrl-C\s+stops it/);
    expect(help.stdout).toMatch(/MONGODB_URI/);
  });
});

import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_POSTGRESQL_URL, ensureFerretDbBinary, FERRETDB_BACKENDS, redactUri, startFerretDb, type FerretDbBackend } from '../db/index.js';

/** The embedded database, started on a free local port over a data folder that outlives the command. */
export interface EmbeddedServer {
  uri: string;
  /** Where its data is kept, for the line that says where a command works. */
  where: string;
  stop(): Promise<void>;
}

type Log = (line: string) => void;

const LOCK_FILE = 'tool-sync.lock';

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, and belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One command at a time on a data folder: two servers over the same files would corrupt them or
 * fail obscurely. The lock holds this process's id; a lock left by a process that died is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      const release = (): void => {
        process.off('exit', release);
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true });
        } catch { /* already gone */ }
      };
      // process.exit() (Ctrl-C) skips the stop: the lock goes anyway.
      process.on('exit', release);
      return release;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder = Number.NaN;
      try { holder = Number(readFileSync(path, 'utf8').trim()); } catch { /* removed meanwhile: try again */ }
      if (processAlive(holder) && holder !== process.pid) {
        throw new Error(`the embedded database in ${dataDir} is in use by another tool-sync command (process ${holder}); wait for it, or pass another --data-dir`);
      }
      rmSync(path, { force: true });
    }
  }
  throw new Error(`could not lock the embedded database in ${dataDir} (${path} keeps coming back)`);
}

function hasFiles(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}

async function startMemoryServer(dbPath: string, log: Log): Promise<EmbeddedServer | undefined> {
  try {
    const { MongoBinary, MongoMemoryServer } = await import('mongodb-memory-server');
    // Resolving (or downloading) the binary first fails quietly; create() would print a stack trace.
    await MongoBinary.getPath();
    await mkdir(dbPath, { recursive: true });
    // A dbPath of ours is never removed by stop(); wiredTiger keeps the data on disk.
    const server = await MongoMemoryServer.create({ instance: { dbPath, storageEngine: 'wiredTiger' } });
    return { uri: server.getUri(), where: `MongoDB (mongodb-memory-server), data kept in ${dbPath}`, async stop() { await server.stop(); } };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      log('mongodb-memory-server is not installed (a development dependency of tool-sync); using FerretDB');
      return undefined;
    }
    const reason = error instanceof Error ? error.message.split('\n').slice(0, 2).join(' ') : String(error);
    log(`no MongoDB from mongodb-memory-server here (${reason.slice(0, 300)}); using FerretDB`);
    return undefined;
  }
}

function ferretDbBackend(env: NodeJS.ProcessEnv): FerretDbBackend {
  const configured = env.TOOL_SYNC_FERRETDB_BACKEND;
  if (configured === undefined || configured === '') return 'sqlite';
  if ((FERRETDB_BACKENDS as readonly string[]).includes(configured)) return configured as FerretDbBackend;
  throw new Error(`TOOL_SYNC_FERRETDB_BACKEND must be one of ${FERRETDB_BACKENDS.join(', ')}; got "${configured}"`);
}

async function startFerret(dataDir: string, env: NodeJS.ProcessEnv, log: Log): Promise<EmbeddedServer> {
  const backend = ferretDbBackend(env);
  const binary = await ensureFerretDbBinary(log);
  const postgresqlUrl = backend === 'postgresql' ? env.TOOL_SYNC_POSTGRESQL_URL ?? DEFAULT_POSTGRESQL_URL : undefined;
  // A folder we give is kept on stop: SQLite's files stay there for the next command.
  const server = await startFerretDb(binary, { dataDir, postgresqlUrl });
  const where = postgresqlUrl === undefined ? `data kept in ${dataDir}` : `data kept in PostgreSQL ${redactUri(postgresqlUrl)}`;
  return { uri: server.uri, where, stop: () => server.stop() };
}

/**
 * Starts the embedded database over `dataDir`, which outlives the command, so that `seed` then
 * `status` see the same tools: MongoDB from mongodb-memory-server (in `dataDir/mongodb`) where a
 * MongoDB binary can be had, else FerretDB (SQLite in `dataDir/ferretdb`). A folder that already
 * holds FerretDB's data and no MongoDB data goes straight to FerretDB; `TOOL_SYNC_DB=ferretdb`
 * always does.
 */
export async function startEmbedded(dataDir: string, log: Log, env: NodeJS.ProcessEnv = process.env): Promise<EmbeddedServer> {
  await mkdir(dataDir, { recursive: true });
  const release = lockDataDir(dataDir);
  try {
    const mongoDir = join(dataDir, 'mongodb');
    const ferretDir = join(dataDir, 'ferretdb');
    const ferretOnly = env.TOOL_SYNC_DB === 'ferretdb' || (hasFiles(ferretDir) && !hasFiles(mongoDir));
    let server = ferretOnly ? undefined : await startMemoryServer(mongoDir, log);
    if (server === undefined) {
      if (hasFiles(mongoDir)) log(`the MongoDB data in ${mongoDir} needs MongoDB, which cannot be started here; FerretDB does not see it`);
      server = await startFerret(ferretDir, env, log);
    }
    const started = server;
    return {
      ...started,
      async stop() {
        try {
          await started.stop();
        } finally {
          release();
        }
      },
    };
  } catch (error) {
    release();
    throw error;
  }
}

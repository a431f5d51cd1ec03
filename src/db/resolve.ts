import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { hasFiles, lockDataDir } from './data-dir.js';
import { detectEngine, redactUri, type EngineInfo } from './engine.js';
import { ensureFerretDbBinary, ferretDbBinaryPath, goAvailable, startFerretDb } from './ferretdb.js';

export const FERRETDB_BACKENDS = ['sqlite', 'postgresql'] as const;
export type FerretDbBackend = (typeof FERRETDB_BACKENDS)[number];

/**
 * The PostgreSQL FerretDB uses when asked to (`TOOL_SYNC_POSTGRESQL_URL` overrides it). Each
 * MongoDB database becomes a schema of it. Commits are not waited for on disk: it holds scratch
 * data for tests and benchmarks, and a synchronous commit per write would measure the disk.
 */
export const DEFAULT_POSTGRESQL_URL = 'postgres://postgres@127.0.0.1:5432/postgres?synchronous_commit=off';

export type DatabaseSource = 'MONGODB_URI' | 'mongodb-memory-server' | 'ferretdb';

export interface ResolvedDatabase {
  uri: string;
  source: DatabaseSource;
  engine: EngineInfo;
  /**
   * Where the server and its data are, as it may be printed (no password): `MONGODB_URI …`,
   * `mongodb-memory-server, data kept in <dir>`, `SQLite backend, temporary folder`, …
   */
  where: string;
  /** The folder that keeps the engine's data after stop(), when `dataDir` was given: `<dataDir>/mongodb` or `<dataDir>/ferretdb`. */
  dataDir?: string;
  /** FerretDB's backend, when this module started FerretDB. */
  ferretDbBackend?: FerretDbBackend;
  /** Stops the server this module started (nothing for MONGODB_URI) and releases the data folder. */
  stop(): Promise<void>;
}

export interface ResolveOptions {
  /** Where progress lines go; stderr by default so that stdout stays clean for data. */
  log?: (line: string) => void;
  /** The configuration variables (`MONGODB_URI`, `TOOL_SYNC_DB`, `TOOL_SYNC_FERRETDB_BACKEND`, `TOOL_SYNC_POSTGRESQL_URL`); process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** FerretDB's backend when it is the fallback; `TOOL_SYNC_FERRETDB_BACKEND`, else SQLite. */
  ferretDbBackend?: FerretDbBackend;
  /**
   * A folder whose data outlives the server, so that the next run sees it: MongoDB from
   * mongodb-memory-server keeps its files in `<dataDir>/mongodb`, FerretDB on SQLite in
   * `<dataDir>/ferretdb`. One process at a time uses it (a lock file, taken over from a process
   * that died). Without it, the embedded server works in a temporary folder removed on stop.
   * Ignored when `MONGODB_URI` is set: that always wins.
   */
  dataDir?: string;
  /** Whether to log the line naming the server chosen (default true; the CLI prints its own). */
  announce?: boolean;
  /** The port of the embedded server on 127.0.0.1 (default: a free one). Ignored when `MONGODB_URI` is set. */
  port?: number;
}

/** Neither `MONGODB_URI` nor an embedded engine: `reasons` says, for each engine, why it cannot be had here. */
export class NoDatabaseEngineError extends Error {
  override name = 'NoDatabaseEngineError';
  readonly reasons: readonly string[];

  constructor(reasons: readonly string[]) {
    super(`MONGODB_URI is not set, and no embedded database can be started here (${reasons.join('; ')}): set MONGODB_URI to a MongoDB server`);
    this.reasons = reasons;
  }
}

function ferretDbBackend(options: ResolveOptions, env: NodeJS.ProcessEnv): FerretDbBackend {
  if (options.ferretDbBackend !== undefined) return options.ferretDbBackend;
  const configured = env.TOOL_SYNC_FERRETDB_BACKEND;
  if (configured === undefined || configured === '') return 'sqlite';
  if ((FERRETDB_BACKENDS as readonly string[]).includes(configured)) return configured as FerretDbBackend;
  throw new Error(`TOOL_SYNC_FERRETDB_BACKEND must be one of ${FERRETDB_BACKENDS.join(', ')}; got "${configured}"`);
}

const logToStderr = (line: string): void => { process.stderr.write(`[tool-sync db] ${line}\n`); };

function firstLines(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n').map((line) => line.trim()).filter((line) => line !== '').slice(0, 2).join(' ').slice(0, 300);
}

type Started = Omit<ResolvedDatabase, 'engine'>;

/** MongoDB from mongodb-memory-server over `dbPath` (kept on stop), or a temporary folder; else why not. */
async function tryMemoryServer(dbPath: string | undefined, port: number | undefined, log: (line: string) => void): Promise<Started | string> {
  let memory;
  try {
    memory = await import('mongodb-memory-server');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND'
      ? 'mongodb-memory-server is not installed (a development dependency of tool-sync)'
      : `mongodb-memory-server cannot be loaded (${firstLines(error)})`;
  }
  // A download (or its retries, about 7 s where the host cannot be reached) is not silent.
  const startedAt = Date.now();
  const slow = setInterval(() => {
    log(`mongodb-memory-server is getting MongoDB (downloaded on first use; network errors are retried): ${Math.round((Date.now() - startedAt) / 1000)} s so far…`);
  }, 3_000);
  try {
    // Resolving (or downloading) the binary first fails quietly; create() would print a stack trace.
    await memory.MongoBinary.getPath();
  } catch (error) {
    return `mongodb-memory-server has no MongoDB binary here (${firstLines(error)})`;
  } finally {
    clearInterval(slow);
  }
  try {
    if (dbPath !== undefined) await mkdir(dbPath, { recursive: true });
    // A dbPath of ours is never removed by stop() (only its own temporary folder is); wiredTiger keeps the data on disk.
    const server = await memory.MongoMemoryServer.create({
      instance: { ...(port === undefined ? {} : { port, ip: '127.0.0.1' }), ...(dbPath === undefined ? {} : { dbPath, storageEngine: 'wiredTiger' as const }) },
    });
    return {
      uri: server.getUri(),
      source: 'mongodb-memory-server',
      where: dbPath === undefined ? 'mongodb-memory-server, temporary folder' : `mongodb-memory-server, data kept in ${dbPath}`,
      ...(dbPath === undefined ? {} : { dataDir: dbPath }),
      async stop() { await server.stop({ doCleanup: true, force: false }); },
    };
  } catch (error) {
    return `mongodb-memory-server could not start MongoDB (${firstLines(error)})`;
  }
}

/** Asks the started server what it is, says so, and stops it if it does not answer. */
async function identify(started: Started, announce: (line: string) => void): Promise<ResolvedDatabase> {
  try {
    const engine = await detectEngine(started.uri);
    announce(`using ${engine.name} ${engine.version} (${started.where}) at ${started.uri}`);
    return { ...started, engine };
  } catch (error) {
    await started.stop();
    throw error;
  }
}

interface EngineChoice {
  dataDir: string | undefined;
  port: number | undefined;
  backend: FerretDbBackend;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  announce: (line: string) => void;
}

/** The one place that chooses the embedded engine: mongodb-memory-server, else FerretDB, else a NoDatabaseEngineError. */
async function startEmbeddedEngine({ dataDir, port, backend, env, log, announce }: EngineChoice): Promise<ResolvedDatabase> {
  const mongoDir = dataDir === undefined ? undefined : join(dataDir, 'mongodb');
  const ferretDir = dataDir === undefined ? undefined : join(dataDir, 'ferretdb');
  // A folder that holds FerretDB's data and no MongoDB data goes straight to FerretDB.
  const ferretOnly = env.TOOL_SYNC_DB === 'ferretdb'
    || (mongoDir !== undefined && ferretDir !== undefined && hasFiles(ferretDir) && !hasFiles(mongoDir));
  const reasons: string[] = [];
  if (!ferretOnly) {
    const memory = await tryMemoryServer(mongoDir, port, log);
    if (typeof memory !== 'string') return identify(memory, announce);
    reasons.push(memory);
  }

  // FerretDB is built once with Go: with neither its binary nor Go there is no embedded engine here.
  if (!existsSync(ferretDbBinaryPath(env)) && !(await goAvailable())) {
    reasons.push(`FerretDB is not built (${ferretDbBinaryPath(env)}) and building it needs Go 1.24 or newer, which is not on PATH`);
    throw new NoDatabaseEngineError(reasons);
  }
  if (reasons.length > 0) log(`${reasons.join('; ')}; falling back to FerretDB`);
  if (mongoDir !== undefined && hasFiles(mongoDir)) log(`the MongoDB data in ${mongoDir} needs MongoDB, which cannot be started here; FerretDB does not see it`);
  let binary: string;
  try {
    binary = await ensureFerretDbBinary(log, { env });
  } catch (error) {
    throw new NoDatabaseEngineError([...reasons, `FerretDB could not be built: ${firstLines(error)}`]);
  }
  const postgresqlUrl = backend === 'postgresql' ? env.TOOL_SYNC_POSTGRESQL_URL ?? DEFAULT_POSTGRESQL_URL : undefined;
  // A folder we give is kept on stop: SQLite's files stay there for the next run.
  const ferret = await startFerretDb(binary, { dataDir: ferretDir, postgresqlUrl, port });
  const where = postgresqlUrl !== undefined
    ? `PostgreSQL backend, ${redactUri(postgresqlUrl)}`
    : ferretDir === undefined ? 'SQLite backend, temporary folder' : `SQLite backend, data kept in ${ferretDir}`;
  return identify({
    uri: ferret.uri,
    source: 'ferretdb',
    where,
    ...(ferretDir === undefined ? {} : { dataDir: ferretDir }),
    ferretDbBackend: backend,
    stop: () => ferret.stop(),
  }, announce);
}

/**
 * The database the tests, the CLI and the demo use, in this order: `MONGODB_URI` if set (always:
 * `dataDir` does not change that); else MongoDB from mongodb-memory-server (downloaded on first
 * use); else, where no MongoDB binary can be had, FerretDB built with Go and started on a free
 * local port. Where neither can be had, a `NoDatabaseEngineError` saying why, with nothing logged.
 * `TOOL_SYNC_DB=ferretdb` skips the memory-server attempt (and its download retries);
 * `TOOL_SYNC_FERRETDB_BACKEND=postgresql` gives FerretDB a PostgreSQL backend instead of SQLite.
 * With `dataDir`, the embedded server's data outlives it (see ResolveOptions.dataDir).
 */
export async function resolveDatabase(options: ResolveOptions = {}): Promise<ResolvedDatabase> {
  const log = options.log ?? logToStderr;
  const announce = (line: string): void => { if (options.announce !== false) log(line); };
  const env = options.env ?? process.env;
  const backend = ferretDbBackend(options, env);

  const configured = env.MONGODB_URI;
  if (configured !== undefined && configured !== '') {
    const engine = await detectEngine(configured);
    announce(`using MONGODB_URI ${redactUri(configured)}: ${engine.name} ${engine.version}`);
    return { uri: configured, source: 'MONGODB_URI', engine, where: `MONGODB_URI ${redactUri(configured)}`, async stop() { /* not ours to stop */ } };
  }

  const { dataDir, port } = options;
  if (dataDir === undefined) return startEmbeddedEngine({ dataDir, port, backend, env, log, announce });
  await mkdir(dataDir, { recursive: true });
  const release = lockDataDir(dataDir);
  try {
    const started = await startEmbeddedEngine({ dataDir, port, backend, env, log, announce });
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

import { detectEngine, redactUri, type EngineInfo } from './engine.js';
import { ensureFerretDbBinary, startFerretDb } from './ferretdb.js';

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
  /** FerretDB's backend, when this module started FerretDB. */
  ferretDbBackend?: FerretDbBackend;
  /** Stops the server this module started (nothing for MONGODB_URI). */
  stop(): Promise<void>;
}

export interface ResolveOptions {
  /** Where progress lines go; stderr by default so that stdout stays clean for data. */
  log?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** FerretDB's backend when it is the fallback; `TOOL_SYNC_FERRETDB_BACKEND`, else SQLite. */
  ferretDbBackend?: FerretDbBackend;
}

function ferretDbBackend(options: ResolveOptions, env: NodeJS.ProcessEnv): FerretDbBackend {
  if (options.ferretDbBackend !== undefined) return options.ferretDbBackend;
  const configured = env.TOOL_SYNC_FERRETDB_BACKEND;
  if (configured === undefined || configured === '') return 'sqlite';
  if ((FERRETDB_BACKENDS as readonly string[]).includes(configured)) return configured as FerretDbBackend;
  throw new Error(`TOOL_SYNC_FERRETDB_BACKEND must be one of ${FERRETDB_BACKENDS.join(', ')}; got "${configured}"`);
}

const logToStderr = (line: string): void => { process.stderr.write(`[tool-sync db] ${line}\n`); };

async function tryMemoryServer(log: (line: string) => void): Promise<{ uri: string; stop(): Promise<void> } | Error> {
  try {
    const { MongoBinary, MongoMemoryServer } = await import('mongodb-memory-server');
    // Resolving (or downloading) the binary first fails quietly; create() would print a stack trace.
    await MongoBinary.getPath();
    const server = await MongoMemoryServer.create();
    return {
      uri: server.getUri(),
      async stop() { await server.stop(); },
    };
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n').slice(0, 2).join(' ') : String(error);
    log(`mongodb-memory-server has no MongoDB binary here (${reason.slice(0, 300)}); falling back to FerretDB`);
    return error instanceof Error ? error : new Error(reason);
  }
}

/**
 * The database the tests and the embedded default use, in this order: `MONGODB_URI` if set;
 * else MongoDB from mongodb-memory-server (downloaded on first use); else, where no MongoDB
 * binary can be had, FerretDB built with Go and started on a free local port.
 * `TOOL_SYNC_DB=ferretdb` skips the memory-server attempt (and its download retries);
 * `TOOL_SYNC_FERRETDB_BACKEND=postgresql` gives FerretDB a PostgreSQL backend instead of SQLite.
 */
export async function resolveDatabase(options: ResolveOptions = {}): Promise<ResolvedDatabase> {
  const log = options.log ?? logToStderr;
  const env = options.env ?? process.env;
  const backend = ferretDbBackend(options, env);

  const configured = env.MONGODB_URI;
  if (configured !== undefined && configured !== '') {
    const engine = await detectEngine(configured);
    log(`using MONGODB_URI ${redactUri(configured)}: ${engine.name} ${engine.version}`);
    return { uri: configured, source: 'MONGODB_URI', engine, async stop() { /* not ours to stop */ } };
  }

  if (env.TOOL_SYNC_DB !== 'ferretdb') {
    const memory = await tryMemoryServer(log);
    if (!(memory instanceof Error)) {
      const engine = await detectEngine(memory.uri);
      log(`using mongodb-memory-server: ${engine.name} ${engine.version} at ${memory.uri}`);
      return { ...memory, source: 'mongodb-memory-server', engine };
    }
  }

  const binary = await ensureFerretDbBinary(log);
  const postgresqlUrl = backend === 'postgresql' ? env.TOOL_SYNC_POSTGRESQL_URL ?? DEFAULT_POSTGRESQL_URL : undefined;
  const ferret = await startFerretDb(binary, { postgresqlUrl });
  try {
    const engine = await detectEngine(ferret.uri);
    const where = postgresqlUrl === undefined ? 'SQLite backend, temporary folder' : `PostgreSQL backend, ${redactUri(postgresqlUrl)}`;
    log(`using ${engine.name} ${engine.version} (${where}) at ${ferret.uri}`);
    return { ...ferret, source: 'ferretdb', engine, ferretDbBackend: backend };
  } catch (error) {
    await ferret.stop();
    throw error;
  }
}

export { resolveDatabase, FERRETDB_BACKENDS, DEFAULT_POSTGRESQL_URL, NoDatabaseEngineError } from './resolve.js';
export type { DatabaseSource, FerretDbBackend, ResolvedDatabase, ResolveOptions } from './resolve.js';
export { detectEngine, engineFromBuildInfo, redactUri } from './engine.js';
export type { EngineInfo } from './engine.js';
export { ensureFerretDbBinary, startFerretDb, postgresqlReachable, ferretDbBinaryPath, goAvailable, FERRETDB_VERSION } from './ferretdb.js';
export { projectCacheDir } from './paths.js';
export { DATA_DIR_LOCK_FILE } from './data-dir.js';

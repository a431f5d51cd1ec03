export { resolveDatabase, FERRETDB_BACKENDS, DEFAULT_POSTGRESQL_URL } from './resolve.js';
export type { DatabaseSource, FerretDbBackend, ResolvedDatabase, ResolveOptions } from './resolve.js';
export { detectEngine, engineFromBuildInfo, redactUri } from './engine.js';
export type { EngineInfo } from './engine.js';
export { ensureFerretDbBinary, startFerretDb, postgresqlReachable, ferretDbBinaryPath, FERRETDB_VERSION } from './ferretdb.js';
export { projectCacheDir } from './paths.js';

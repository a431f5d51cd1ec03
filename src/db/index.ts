export { resolveDatabase } from './resolve.js';
export type { DatabaseSource, ResolvedDatabase, ResolveOptions } from './resolve.js';
export { detectEngine, redactUri } from './engine.js';
export type { EngineInfo } from './engine.js';
export { ensureFerretDbBinary, startFerretDb, ferretDbBinaryPath, FERRETDB_VERSION } from './ferretdb.js';

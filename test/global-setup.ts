import { type TestProject } from 'vitest/node';
import { resolveDatabase } from '../src/db/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mongoUri: string;
    dbEngine: 'MongoDB' | 'FerretDB';
    dbEngineVersion: string;
  }
}

/** One server for the whole run (the db module's choice); each test file uses its own database on it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const database = await resolveDatabase();
  project.provide('mongoUri', database.uri);
  project.provide('dbEngine', database.engine.name);
  project.provide('dbEngineVersion', database.engine.version);
  return () => database.stop();
}

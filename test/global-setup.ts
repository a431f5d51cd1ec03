import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type TestProject } from 'vitest/node';
import { resolveDatabase } from '../src/db/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mongoUri: string;
    dbEngine: 'MongoDB' | 'FerretDB';
    dbEngineVersion: string;
  }
}

const ROOT = new URL('..', import.meta.url).pathname;

/** The newest modification time of the files below `dir` (0 for none). */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/**
 * The tests that run the bin, pack the package or compile against it use `dist/`: built here when
 * it is missing or older than a source file, once, before any test file starts (so no file can see
 * it half-built). After `npm ci` (whose `prepare` builds it) there is nothing to do.
 */
async function buildIfStale(): Promise<void> {
  let built = 0;
  try {
    built = statSync(join(ROOT, 'dist', 'index.js')).mtimeMs;
  } catch { /* not built */ }
  const sources = Math.max(newest(join(ROOT, 'src')), statSync(join(ROOT, 'tsconfig.build.json')).mtimeMs);
  if (built >= sources) return;
  process.stdout.write(`[tool-sync test] dist/ is ${built === 0 ? 'missing' : 'older than src/'}: npm run build\n`);
  await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: ROOT });
}

/** One server for the whole run (the db module's choice); each test file uses its own database on it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const building = buildIfStale();
  const database = await resolveDatabase();
  try {
    await building;
  } catch (error) {
    await database.stop();
    throw error;
  }
  project.provide('mongoUri', database.uri);
  project.provide('dbEngine', database.engine.name);
  project.provide('dbEngineVersion', database.engine.version);
  return () => database.stop();
}

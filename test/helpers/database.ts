import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import mongoose from 'mongoose';
import { afterAll, beforeAll, inject } from 'vitest';

export const engine = (): 'MongoDB' | 'FerretDB' => inject('dbEngine');

/** A database name of this test file's own, unique per run, so files can run in parallel and twice. */
export function uniqueDatabaseName(testFile: string): string {
  const stem = basename(testFile).replace(/\.test\.ts$/, '').replace(/[^a-zA-Z0-9]/g, '_');
  return `t_${stem}_${randomBytes(4).toString('hex')}`.slice(0, 60);
}

/**
 * Connects the default Mongoose connection (the one ToolModel uses) to a fresh database for
 * this test file, initializes the models (indexes), and drops the database afterwards.
 */
export function useTestDatabase(testFile: string): { name: string; uri: () => string } {
  const name = uniqueDatabaseName(testFile);
  beforeAll(async () => {
    await mongoose.connect(inject('mongoUri'), { dbName: name });
  });
  afterAll(async () => {
    await mongoose.connection.dropDatabase();
    await mongoose.disconnect();
  });
  return { name, uri: () => inject('mongoUri') };
}

/**
 * Like useTestDatabase, with the driver's command monitoring on: for tests that count the commands
 * a write sends, or check which session each carries.
 */
export function useMonitoredTestDatabase(testFile: string): { name: string } {
  const name = uniqueDatabaseName(testFile);
  beforeAll(async () => {
    await mongoose.connect(inject('mongoUri'), { dbName: name, monitorCommands: true });
  });
  afterAll(async () => {
    await mongoose.connection.dropDatabase();
    await mongoose.disconnect();
  });
  return { name };
}

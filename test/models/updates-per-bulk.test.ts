import mongoose from 'mongoose';
import { describe, expect, inject, it } from 'vitest';
import { FERRETDB_V1_UPDATES_PER_BULK, UPDATES_PER_BULK, updatesPerBulk, updatesPerBulkOn } from '../../src/models/updates-per-bulk.js';
import { commandNamesDuring } from '../helpers/commands.js';
import { engine, useMonitoredTestDatabase } from '../helpers/database.js';

describe('updatesPerBulkOn', () => {
  it('sends 25 updates per command to FerretDB 1.x, which hangs on more than its connection pool, and 1,000 elsewhere', () => {
    expect(updatesPerBulkOn({ name: 'FerretDB', version: 'v1.24.2' })).toBe(FERRETDB_V1_UPDATES_PER_BULK);
    expect(updatesPerBulkOn({ name: 'FerretDB', version: '1.10.0' })).toBe(FERRETDB_V1_UPDATES_PER_BULK);
    expect(updatesPerBulkOn({ name: 'FerretDB', version: 'v2.5.0' })).toBe(UPDATES_PER_BULK);
    expect(updatesPerBulkOn({ name: 'MongoDB', version: '8.0.4' })).toBe(UPDATES_PER_BULK);
    expect(updatesPerBulkOn({ name: 'MongoDB', version: '1.0.0' })).toBe(UPDATES_PER_BULK);
  });
});

describe('updatesPerBulk', () => {
  useMonitoredTestDatabase(import.meta.url);

  it('asks the server only for a bulk larger than every engine takes, once per client', async () => {
    let size = 0;
    expect(await commandNamesDuring(async () => {
      expect(await updatesPerBulk(mongoose.connection, FERRETDB_V1_UPDATES_PER_BULK)).toBe(FERRETDB_V1_UPDATES_PER_BULK);
    })).toEqual([]);
    expect(await commandNamesDuring(async () => { size = await updatesPerBulk(mongoose.connection, 1000); })).toEqual(['buildInfo']);
    expect(await commandNamesDuring(async () => { expect(await updatesPerBulk(mongoose.connection, 5000)).toBe(size); })).toEqual([]);
    expect(size).toBe(updatesPerBulkOn({ name: engine(), version: inject('dbEngineVersion') }));
  });
});

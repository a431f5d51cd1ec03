import mongoose from 'mongoose';
import { describe, expect, inject, it } from 'vitest';
import { FERRETDB_V1_UPDATES_PER_BULK, inBulkTurn, UPDATES_PER_BULK, updatesPerBulk, updatesPerBulkOn } from '../../src/models/updates-per-bulk.js';
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

describe('inBulkTurn', () => {
  it("sends one of a client's bulks at a time (FerretDB 1.x: two bulks of 25 at once hold 50 connections), in order, whatever one throws", async () => {
    const client = {};
    const collection = (): mongoose.mongo.Collection => ({ client }) as unknown as mongoose.mongo.Collection;
    let inFlight = 0;
    let most = 0;
    const order: number[] = [];
    const bulk = (index: number, fail = false) => async (): Promise<number> => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight -= 1;
      order.push(index);
      if (fail) throw new Error(`bulk ${index}`);
      return index;
    };
    const results = await Promise.allSettled([0, 1, 2, 3].map((index) => inBulkTurn(collection(), bulk(index, index === 1))));
    expect(most).toBe(1);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    // Another client's bulks do not wait for these.
    inFlight = 0;
    most = 0;
    await Promise.all([inBulkTurn(collection(), bulk(4)), inBulkTurn({ client: {} } as unknown as mongoose.mongo.Collection, bulk(5))]);
    expect(most).toBe(2);
  });
});

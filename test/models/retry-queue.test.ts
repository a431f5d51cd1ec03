import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { ToolModel } from '../../src/index.js';
import { documentsRead } from '../helpers/commands.js';
import { useMonitoredTestDatabase } from '../helpers/database.js';
import { toolInput } from '../helpers/tools.js';

useMonitoredTestDatabase(import.meta.url);

describe('findRetryable reads about as many tools as it returns', () => {
  it('at most limit plus a batch per collection queue, out of hundreds of failed tools', async () => {
    const ids = Array.from({ length: 300 }, () => new mongoose.Types.ObjectId());
    await ToolModel.insertMany(ids.map((_id) => toolInput({ _id })));
    const now = Date.now();
    // Failed in two collections each, due at spread-out times in the past.
    const writes: mongoose.mongo.AnyBulkWriteOperation[] = ids.map((_id, index) => ({
      updateOne: {
        filter: { _id },
        update: {
          $set: Object.fromEntries(['tools', 'usecases'].flatMap((name): [string, unknown][] => [
            [`syncMetadata.collections.${name}.status`, 'failed'],
            [`syncMetadata.collections.${name}.errorCode`, 'UNKNOWN'],
            [`syncMetadata.collections.${name}.retryCount`, 1],
            [`syncMetadata.collections.${name}.nextRetryAt`, new Date(now - 1000 * (index + 1))],
          ]).concat([['syncMetadata.overallStatus', 'failed']])),
        },
      },
    }));
    // In bulks of 25: FerretDB 1.x hangs on an update command of more statements than its pool.
    for (let i = 0; i < writes.length; i += 25) await ToolModel.collection.bulkWrite(writes.slice(i, i + 25));
    let found: Awaited<ReturnType<typeof ToolModel.findRetryable>> = [];
    const read = await documentsRead(async () => { found = await ToolModel.findRetryable({ limit: 10 }); });
    expect(found).toHaveLength(10);
    // Earliest due first: the last tools were due longest ago.
    expect(found.map(({ tool }) => String(tool._id))).toEqual(ids.slice(-10).reverse().map(String));
    for (const entry of found) expect(entry.collections).toEqual(['tools', 'usecases']);
    expect(read).toBeLessThanOrEqual(10 + 4 * 16);
  });
});

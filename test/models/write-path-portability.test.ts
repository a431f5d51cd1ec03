import mongoose, { Types } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { SyncArgumentError, ToolModel } from '../../src/index.js';
import { afterQueryWriteError, beforeQueryUpdate } from '../../src/models/change-tracking/query-writes.js';
import { eventsDuring } from '../helpers/commands.js';
import { useMonitoredTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';
import { expectTruthful, statusesOf } from './stored-sync-state.js';

/*
 * Issue 17, point 14: the package decides by error codes and by reading the stored document,
 * never by a server's message text, and needs nothing some engine lacks. (The tests of a
 * duplicate key and of a save near 16 MB decide the same way: test/models/indexes.test.ts,
 * write-path-bookkeeping.test.ts, test/migrations/unwritable-documents.test.ts.)
 */

useMonitoredTestDatabase(import.meta.url);

type ToolQuery = mongoose.Query<unknown, unknown>;

/** A server's refusal as an engine words it (the code is what every engine shares). */
const refusal = (code: number, errmsg: string): mongoose.mongo.MongoServerError => new mongoose.mongo.MongoServerError({ code, errmsg, message: errmsg });

/** What the package does with an error the server gave a content updateOne, once its hooks have prepared the query. */
async function outcomeOfError(filter: Record<string, unknown>, error: unknown): Promise<unknown> {
  const query = ToolModel.updateOne(filter, { $set: { description: 'Content on legacy metadata.' } }) as unknown as ToolQuery;
  await beforeQueryUpdate('updateOne').call(query);
  return afterQueryWriteError.call(query, error).then(() => undefined, (thrown: unknown) => thrown);
}

describe('a write refused on a tool stored with syncMetadata: null is recognised by reading the stored tool', () => {
  it('on this server: the SyncArgumentError says to backfill and names the tool, nothing is written', async () => {
    const id = new Types.ObjectId();
    await insertRaw({ _id: id, ...toolInput(), syncMetadata: null });
    const before = await rawTool({ _id: id });
    const error = await ToolModel.updateOne({ _id: id }, { $set: { description: 'Refused on null metadata.' } }).then(() => undefined, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SyncArgumentError);
    expect((error as Error).message).toMatch(/^syncMetadata: expected an object .*tool-sync backfill/);
    expect((error as Error).message).toContain(id.toHexString());
    expect(await rawTool({ _id: id })).toEqual(before);
  });

  it('whatever the words: FerretDB 2\'s "{syncMetadata : null}" is recognised, and MongoDB\'s words on a tool with metadata are not', async () => {
    const legacy = new Types.ObjectId();
    await insertRaw({ _id: legacy, ...toolInput(), syncMetadata: null });
    const ferret2 = refusal(28, "Cannot create field 'lastModifiedFields' in element {syncMetadata : null}");
    const recognised = await outcomeOfError({ _id: legacy }, ferret2);
    expect(recognised).toBeInstanceOf(SyncArgumentError);
    expect((recognised as Error).message).toContain(legacy.toHexString());

    // The stored tool has metadata: the server's error reaches the caller as it is, whatever its text says.
    const tool = await createSyncedTool();
    const mongoWords = refusal(28, "Cannot create field 'lastModifiedFields' in element {syncMetadata: null}");
    expect(await outcomeOfError({ _id: tool._id }, mongoWords)).toBeUndefined();
  });
});

describe('updateOne with a hint', () => {
  it('goes as an update with the caller\'s hint (some engines refuse a hint on findAndModify), answers as the raw driver, and is settled', async () => {
    const tool = await createSyncedTool();
    const copies = mongoose.connection.collection(`hint_copy_${new Types.ObjectId().toHexString()}`);
    const copyId = new Types.ObjectId();
    await copies.insertOne({ ...(await rawTool({ _id: tool._id })), _id: copyId });
    const update = { $set: { functionality: ['formats code', 'hinted'] } };
    const raw = await copies.updateOne({ _id: copyId }, structuredClone(update), { hint: { _id: 1 } });

    let result: unknown;
    const started = await eventsDuring('commandStarted', async () => {
      result = await ToolModel.updateOne({ _id: tool._id }, structuredClone(update), { hint: { _id: 1 } });
    });
    expect(result).toEqual(raw);
    const names = started.map((event) => event.commandName);
    expect(names).not.toContain('findAndModify');
    const sent = started.find((event) => event.commandName === 'update')?.command as { updates?: { hint?: unknown }[] } | undefined;
    expect(sent?.updates?.[0]?.hint).toEqual({ _id: 1 });

    const after = await expectTruthful({ _id: tool._id });
    expect(after.functionality).toEqual(['formats code', 'hinted']);
    expect(statusesOf(after)).toEqual(['synced', 'stale', 'synced', 'synced']);
  });
});

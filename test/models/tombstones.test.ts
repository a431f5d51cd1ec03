import mongoose from 'mongoose';
import { beforeEach, describe, expect, it } from 'vitest';
import { SyncArgumentError, SYNC_COLLECTION_NAMES, ToolModel, type SyncCollectionName } from '../../src/index.js';
import { pointIdOf } from '../../src/models/point-id.js';
import { recordTombstones, VOID_TOMBSTONE_AFTER_MS } from '../../src/models/tombstones.js';
import { skipReason } from '../helpers/capabilities.js';
import { embeddedTool, tombstoneOf, tombstones } from '../helpers/tombstones.js';
import { engine, useTestDatabase } from '../helpers/database.js';
import { toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);


beforeEach(async () => {
  await ToolModel.deleteMany({});
  await tombstones().deleteMany({});
});

describe('every delete path leaves a tombstone for a tool with vectors, none for one never embedded', () => {
  const paths: [string, (id: mongoose.Types.ObjectId) => Promise<unknown>][] = [
    ['deleteOne', (id) => ToolModel.deleteOne({ _id: id })],
    ['deleteMany', (id) => ToolModel.deleteMany({ _id: id })],
    ['findOneAndDelete', (id) => ToolModel.findOneAndDelete({ _id: id })],
    ['findByIdAndDelete', (id) => ToolModel.findByIdAndDelete(id)],
    ['doc.deleteOne()', async (id) => (await ToolModel.findById(id).orFail()).deleteOne()],
    ['bulkWrite deleteOne', (id) => ToolModel.bulkWrite([{ deleteOne: { filter: { _id: id } } }])],
    ['bulkWrite deleteMany', (id) => ToolModel.bulkWrite([{ deleteMany: { filter: { _id: id } } }])],
  ];

  for (const [name, remove] of paths) {
    it(name, async () => {
      const embedded = await embeddedTool(['tools', 'usecases']);
      const stored = await ToolModel.findById(embedded).orFail();
      const never = await ToolModel.create(toolInput());
      await remove(embedded);
      await remove(never._id);
      expect(await ToolModel.countDocuments({ _id: { $in: [embedded, never._id] } })).toBe(0);
      const tombstone = await tombstoneOf(embedded);
      expect(tombstone).toMatchObject({ id: stored.id, toolsCollection: 'tools' });
      expect(tombstone?.deletedAt).toBeInstanceOf(Date);
      // Only the collections that hold its points.
      expect(Object.keys(tombstone?.collections ?? {}).sort()).toEqual(['tools', 'usecases']);
      expect(tombstone?.collections.tools).toMatchObject({ status: 'pending', retryCount: 0, errorCode: null });
      expect(await tombstoneOf(never._id)).toBeNull();
    });
  }

  it('a deleteOne whose filter matches several tools leaves the tombstone of the one it deleted only', async () => {
    const ids = [await embeddedTool(['tools'], { category: 'shared' }), await embeddedTool(['tools'], { category: 'shared' })];
    const result = await ToolModel.deleteOne({ category: 'shared' });
    expect(result.deletedCount).toBe(1);
    const left = await ToolModel.find({ _id: { $in: ids } }, { _id: 1 }).lean();
    expect(left).toHaveLength(1);
    const deleted = ids.find((id) => String(id) !== String(left[0]?._id));
    expect(await tombstones().countDocuments({})).toBe(1);
    expect(await tombstoneOf(deleted ?? new mongoose.Types.ObjectId())).not.toBeNull();
  });

  it('a tool in flight (claimed, never embedded) gets a tombstone for the claimed collection', async () => {
    const tool = await ToolModel.create(toolInput());
    await ToolModel.claimSyncWork({ workerId: 'w', limit: 1 });
    await ToolModel.deleteOne({ _id: tool._id });
    expect(Object.keys((await tombstoneOf(tool._id))?.collections ?? {})).toEqual(['tools']);
  });
});

describe('a crash between the tombstone and the delete', () => {
  it('leaves the tombstone and the tool; the tombstone never gives work, and is void once old enough', async () => {
    const id = await embeddedTool();
    // What a delete that never reached the server leaves: its tombstone, written first.
    expect((await recordTombstones(ToolModel, { _id: id }, {})).ids).toEqual([id]);
    expect(await ToolModel.exists({ _id: id })).not.toBeNull();
    expect(await tombstoneOf(id)).not.toBeNull();
    // Its delete may not have been sent yet (a large deleteMany tombstones everything first): kept.
    expect(await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 })).toEqual([]);
    expect(await tombstoneOf(id)).not.toBeNull();
    // Old enough, and the tool still there: the delete never happened.
    const later = new Date(Date.now() + VOID_TOMBSTONE_AFTER_MS + 1000);
    expect(await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10, now: later })).toEqual([]);
    expect(await tombstoneOf(id)).toBeNull();
  });
});

describe('a delete the server refuses', () => {
  it('leaves the tool, and no tombstone once it has failed (the tool still holds its points)', async (context) => {
    const id = await embeddedTool(['tools']);
    // A hint naming no index: MongoDB refuses such a delete, after the tombstone was written.
    const refuses = await ToolModel.collection.deleteOne({ _id: new mongoose.Types.ObjectId() }, { hint: { no_such_field: 1 } }).then(() => false, () => true);
    if (!refuses) {
      context.skip(skipReason('refusing a delete whose hint names no index', engine()));
      return;
    }
    const error = await ToolModel.deleteOne({ _id: id }).setOptions({ hint: { no_such_field: 1 } }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(Error);
    expect(await ToolModel.exists({ _id: id })).not.toBeNull();
    expect(await tombstoneOf(id)).toBeNull();
  });
});

describe('removing the points of deleted tools', () => {
  it('a worker claims the removals, marks each collection, and the tombstone disappears', async () => {
    const id = await embeddedTool();
    await ToolModel.deleteOne({ _id: id });
    const [claimed, ...rest] = await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 });
    expect(rest).toEqual([]);
    expect(claimed?.toolObjectId).toEqual(id);
    expect(claimed?.collections).toEqual([...SYNC_COLLECTION_NAMES]);
    // Held: no other worker gets them.
    expect(await ToolModel.claimVectorDeletions({ workerId: 'other', limit: 10 })).toEqual([]);
    expect((await ToolModel.getSyncStats()).deletions.tools).toEqual({ pending: 1, failed: 0 });
    expect(await ToolModel.markVectorDeleted(id, 'tools', { workerId: 'other' })).toEqual({ done: false, reason: 'claim-lost', claimedBy: 'w' });
    for (const name of SYNC_COLLECTION_NAMES) expect(await ToolModel.markVectorDeleted(id, name, { workerId: 'w' })).toEqual({ done: true });
    expect(await tombstoneOf(id)).toBeNull();
    expect((await ToolModel.getSyncStats()).deletions.tools).toEqual({ pending: 0, failed: 0 });
  });

  it('a failed removal is retried after its backoff, counted as failed meanwhile, and requeued on request', async () => {
    const id = await embeddedTool(['interface']);
    await ToolModel.deleteOne({ _id: id });
    await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 });
    const failed = await ToolModel.markVectorDeleteFailed(id, 'interface', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), { workerId: 'w' });
    expect(failed).toMatchObject({ recorded: true, errorCode: 'QDRANT_UNAVAILABLE', retryCount: 1 });
    const stored = await tombstoneOf(id);
    expect(stored?.collections.interface?.nextRetryAt?.getTime()).toBeGreaterThan(Date.now());
    expect((await ToolModel.getSyncStats()).deletions.interface).toEqual({ pending: 0, failed: 1 });
    expect(await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 })).toEqual([]);
    const later = new Date(Date.now() + 24 * 60 * 60 * 1000);
    const retried = await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10, now: later });
    expect(retried.map(({ collections }) => collections)).toEqual([['interface']]);
    await ToolModel.markVectorDeleteFailed(id, 'interface', new Error('still down'), { workerId: 'w' });
    expect(await ToolModel.requeueFailedDeletions()).toBe(1);
    expect((await tombstoneOf(id))?.collections.interface).toMatchObject({ status: 'pending', retryCount: 0, nextRetryAt: null });
  });

  it('a tool re-created with the same id is another document: the first one\'s removal stays owed (its points are keyed by its own _id)', async () => {
    const id = await embeddedTool(['tools']);
    const slug = (await ToolModel.findById(id).orFail()).id;
    await ToolModel.deleteOne({ _id: id });
    const again = await ToolModel.create(toolInput({ id: slug }));
    // Deleted again before it synced: nothing of it to remove, and the first removal is still there.
    await ToolModel.deleteOne({ _id: again._id });
    expect(await tombstoneOf(again._id)).toBeNull();
    const claimed = await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 });
    expect(claimed).toEqual([{ toolObjectId: id, pointId: pointIdOf(id), id: slug, deletedAt: expect.any(Date) as Date, collections: ['tools'] }]);
    expect(pointIdOf(id)).not.toBe(pointIdOf(again._id));
  });

  it('a tool whose id changed keeps its point key: its removal names the same point', async () => {
    const id = await embeddedTool(['usecases']);
    await ToolModel.updateOne({ _id: id }, { $set: { id: 'renamed-tool' } });
    await ToolModel.deleteOne({ _id: id });
    const [claimed] = await ToolModel.claimVectorDeletions({ workerId: 'w', limit: 10 });
    expect(claimed).toMatchObject({ pointId: pointIdOf(id), id: 'renamed-tool', collections: ['usecases'] });
  });

  it('refuses bad arguments, naming them', async () => {
    const bad: [() => Promise<unknown>, string][] = [
      [() => ToolModel.markVectorDeleted('nope', 'tools'), 'toolObjectId'],
      [() => ToolModel.markVectorDeleted(new mongoose.Types.ObjectId(), 'vectors' as SyncCollectionName), 'collection'],
      [() => ToolModel.markVectorDeleteFailed({ $ne: null } as unknown as string, 'tools', new Error('x')), 'toolObjectId'],
      [() => ToolModel.claimVectorDeletions({ workerId: '' }), 'workerId'],
      [() => ToolModel.claimVectorDeletions({ workerId: 'w', limit: -1 }), 'limit'],
      [() => ToolModel.requeueFailedDeletions({ errorCodes: ['NOPE' as never] }), 'errorCodes[0]'],
    ];
    for (const [call, argument] of bad) {
      const error = await call().catch((thrown: unknown) => thrown);
      expect(error, argument).toBeInstanceOf(SyncArgumentError);
      expect((error as Error).message).toContain(argument);
    }
  });
});

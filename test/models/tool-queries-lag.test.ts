import { describe, expect, it } from 'vitest';
import { ToolModel } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

const HOUR = 3_600_000;

describe('getSyncStats().oldestWaitingAgeMs', () => {
  // Not fixed (a known limit, stated in the README under getSyncStats): the lag is read from the tool's syncMetadata.updatedAt (the head of
  // sync_<collection>_waiting_idx), which every claim and mark of ANY collection of the tool moves
  // to now. A pair waiting for an hour looks fresh as soon as another collection of its tool is
  // synced, claimed or failed, so tool_sync.lag and the page's lag under-report a collection that
  // is starved while the others move. A fix needs a per-collection "waiting since" (and its index).
  it.fails('is the age of the oldest waiting pair, not reset when another collection of its tool is synced', async () => {
    const tool = await ToolModel.create(toolInput());
    // The tool has waited an hour in every collection.
    await ToolModel.collection.updateOne({ _id: tool._id }, { $set: { 'syncMetadata.updatedAt': new Date(Date.now() - HOUR) } });
    const before = await ToolModel.getSyncStats();
    expect(before.oldestWaitingAgeMs.functionality).toBeGreaterThanOrEqual(HOUR);

    await ToolModel.markCollectionSynced(tool._id, 'tools', { contentHash: tool.syncMetadata.collections.tools.contentHash, embeddingModel: 'm' });
    const after = await ToolModel.getSyncStats();
    expect(after.byCollection.functionality.pending).toBe(1);
    // Still waiting since an hour ago: nothing happened to its functionality pair.
    expect(after.oldestWaitingAgeMs.functionality).toBeGreaterThanOrEqual(HOUR);
  });
});

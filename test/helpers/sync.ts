import { ToolModel, SYNC_COLLECTION_NAMES, type ITool } from '../../src/index.js';
import { toolInput } from './tools.js';

/** A tool whose four collections the worker has embedded. */
export async function createSyncedTool(overrides: Record<string, unknown> = {}): Promise<ITool> {
  const tool = await ToolModel.create(toolInput(overrides));
  for (const name of SYNC_COLLECTION_NAMES) {
    await ToolModel.markCollectionSynced(tool._id, name, { contentHash: tool.syncMetadata.collections[name].contentHash });
  }
  return ToolModel.findById(tool._id).orFail();
}

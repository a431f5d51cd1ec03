import type mongoose from 'mongoose';
import { SYNC_COLLECTION_NAMES, ToolModel, type SyncCollectionName } from '../../src/index.js';
import { TOMBSTONE_COLLECTION } from '../../src/models/tombstones.js';
import { toolInput } from './tools.js';

/** A stored tombstone, as the tests read it. */
export interface StoredTombstone {
  _id: string;
  toolObjectId: mongoose.Types.ObjectId;
  id: string | null;
  toolsCollection: string;
  deletedAt: Date;
  collections: Record<string, { status: string; retryCount: number; nextRetryAt: Date | null; errorCode: string | null }>;
}

export const tombstones = (): mongoose.mongo.Collection => ToolModel.db.collection(TOMBSTONE_COLLECTION);

export const tombstoneOf = async (id: mongoose.Types.ObjectId): Promise<StoredTombstone | null> => tombstones().findOne<StoredTombstone>({ toolObjectId: id });

/** A tool embedded in `collections` (the others never), by model `m`. */
export async function embeddedTool(collections: readonly SyncCollectionName[] = SYNC_COLLECTION_NAMES, overrides: Record<string, unknown> = {}): Promise<mongoose.Types.ObjectId> {
  const tool = await ToolModel.create(toolInput(overrides));
  for (const name of collections) {
    await ToolModel.markCollectionSynced(tool._id, name, { contentHash: tool.syncMetadata.collections[name].contentHash, embeddingModel: 'm' });
  }
  return tool._id;
}

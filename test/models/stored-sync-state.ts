import mongoose from 'mongoose';
import { expect } from 'vitest';
import { aggregateSyncStatus, computeContentHashes, SYNC_COLLECTION_NAMES, type StoredTool, type SyncStatus } from '../../src/index.js';
import { rawTool } from '../helpers/tools.js';

/** What the write-path tests read of a stored tool's sync metadata. */
export interface StoredMeta {
  overallStatus: SyncStatus;
  pendingHashCheck: unknown;
  lastModifiedFields: string[];
  collections: Record<string, { status: SyncStatus; contentHash: string }>;
}
export type Stored = Record<string, unknown> & { syncMetadata: StoredMeta };

/** The stored tool matching `filter` (an `_id` or a filter), exactly as the server has it. */
export async function storedTool(filter: Record<string, unknown>): Promise<Stored> {
  const found = await rawTool(filter);
  if (found === null) throw new Error(`no tool matches ${JSON.stringify(filter)}`);
  return found as Stored;
}

/** The stored tool byte for byte, as the server sends it. */
export async function storedBytes(filter: Record<string, unknown>): Promise<Buffer> {
  return Buffer.from(mongoose.mongo.BSON.serialize(await storedTool(filter)));
}

export const statusesOf = (tool: { syncMetadata: StoredMeta }): SyncStatus[] =>
  SYNC_COLLECTION_NAMES.map((name) => tool.syncMetadata.collections[name]?.status ?? 'pending');

/** The stored sync state is the package's: hashes of the stored content, the aggregate status, no pending check. */
export async function expectTruthful(filter: Record<string, unknown>): Promise<Stored> {
  const tool = await storedTool(filter);
  const hashes = computeContentHashes(tool as StoredTool);
  for (const name of SYNC_COLLECTION_NAMES) expect(tool.syncMetadata.collections[name]?.contentHash, name).toBe(hashes[name]);
  expect(tool.syncMetadata.overallStatus).toBe(aggregateSyncStatus(statusesOf(tool)));
  expect(tool.syncMetadata.pendingHashCheck ?? null).toBeNull();
  return tool;
}

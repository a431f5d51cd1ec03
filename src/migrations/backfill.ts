import { type ReturnModelType } from '@typegoose/typegoose';
import mongoose from 'mongoose';
import { collectionPath, defaultCollectionSyncStatus, type CollectionSyncStatus } from '../models/collection-sync-status.js';
import { contentAsRead } from '../models/sync-conditions.js';
import { defaultSyncMetadata } from '../models/sync-metadata.js';
import { type Tool } from '../models/tool.js';
import { computeContentHashes, type ToolContent } from '../sync/content-hash.js';
import { aggregateSyncStatus } from '../sync/status-order.js';
import { SYNC_COLLECTION_NAMES, type SyncStatus } from '../sync/vocabulary.js';
import { runBatchMigration, type MigrationProgress, type MigrationSummary, type Plan, type RawTool } from './batch-migration.js';

type ToolModelType = ReturnModelType<typeof Tool>;

export const BACKFILL_OUTCOMES = { updated: 'updated', repaired: 'repaired', complete: 'already complete' } as const;

const METADATA_KEYS = Object.keys(defaultSyncMetadata()).filter((key) => key !== 'collections') as (keyof ReturnType<typeof defaultSyncMetadata>)[];
const STATUS_KEYS = Object.keys(defaultCollectionSyncStatus()) as (keyof CollectionSyncStatus)[];

/** Existing metadata is kept only if the model accepts it; what is invalid is reported, not guessed. */
async function invalidMetadata(model: ToolModelType, doc: RawTool): Promise<string | null> {
  try {
    await model.hydrate(doc).validate(['syncMetadata']);
    return null;
  } catch (error) {
    if (error instanceof mongoose.Error.ValidationError) return error.message;
    throw error;
  }
}

/**
 * A tool without metadata gets the complete defaults with its real content hashes (`updated`);
 * partial metadata (such as the spec's backfill snippet's) gets what is missing while its
 * statuses, retry counts and vector versions stay (`repaired`); complete metadata is left alone.
 */
export function backfillPlan(model: ToolModelType) {
  return async function plan(doc: RawTool, now: Date): Promise<Plan> {
    const hashes = computeContentHashes(doc as ToolContent);
    const content = contentAsRead(doc as ToolContent);
    const meta = doc.syncMetadata as Record<string, unknown> | null | undefined;

    if (meta === undefined || meta === null) {
      const complete = defaultSyncMetadata(now);
      for (const name of SYNC_COLLECTION_NAMES) complete.collections[name].contentHash = hashes[name];
      return {
        outcome: BACKFILL_OUTCOMES.updated,
        write: { filter: { _id: doc._id, syncMetadata: null, ...content }, update: { $set: { syncMetadata: complete } } },
      };
    }
    if (typeof meta !== 'object' || Array.isArray(meta)) return { outcome: 'failed', reason: `syncMetadata is not an object: ${JSON.stringify(meta)}` };
    const invalid = await invalidMetadata(model, doc);
    if (invalid !== null) return { outcome: 'failed', reason: invalid };

    const defaults = defaultSyncMetadata(now);
    const set: Record<string, unknown> = {};
    for (const key of METADATA_KEYS) if (meta[key] === undefined) set[`syncMetadata.${key}`] = defaults[key];
    const collections = (meta.collections ?? {}) as Record<string, Record<string, unknown> | undefined>;
    const statuses = [] as SyncStatus[];
    for (const name of SYNC_COLLECTION_NAMES) {
      const state = collections[name];
      if (state === undefined) {
        set[`syncMetadata.collections.${name}`] = Object.assign(defaultCollectionSyncStatus(), { contentHash: hashes[name] });
        statuses.push(defaults.collections[name].status);
        continue;
      }
      for (const key of STATUS_KEYS) {
        if (key === 'contentHash' ? state.contentHash === undefined || state.contentHash === '' : state[key] === undefined) {
          set[collectionPath(name, key)] = key === 'contentHash' ? hashes[name] : defaults.collections[name][key];
        }
      }
      statuses.push((state.status ?? defaults.collections[name].status) as SyncStatus);
    }
    const overallStatus = aggregateSyncStatus(statuses);
    if (meta.overallStatus !== overallStatus) set['syncMetadata.overallStatus'] = overallStatus;
    if (Object.keys(set).length === 0) return { outcome: BACKFILL_OUTCOMES.complete };
    set['syncMetadata.updatedAt'] = now;
    return {
      outcome: BACKFILL_OUTCOMES.repaired,
      write: { filter: { _id: doc._id, syncMetadata: meta, ...content }, update: { $set: set } },
    };
  };
}

export interface BatchOptions {
  batchSize: number;
  dryRun: boolean;
  progress?: MigrationProgress;
}

export function backfill(model: ToolModelType, options: BatchOptions): Promise<MigrationSummary> {
  return runBatchMigration(model, {
    name: 'backfill',
    plan: backfillPlan(model),
    ...options,
  });
}

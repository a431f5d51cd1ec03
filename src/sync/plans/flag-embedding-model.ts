import { parseSyncState, type StoredTool } from '../stored-tool.js';
import { aggregateSyncStatus } from '../status-order.js';
import { collectionPath, METADATA_UPDATED_AT, OVERALL_STATUS } from '../sync-state.js';
import { type SyncCollectionName } from '../vocabulary.js';
import { settledStatuses } from './settled-statuses.js';
import { type PlannedWrite } from './plan.js';
import { unchangedSince } from './settle.js';

export type FlagModelPlan =
  | { kind: 'flag'; write: PlannedWrite }
  | { kind: 'none' }
  | { kind: 'invalid'; reason: string };

/**
 * The embedding model changed: a `synced` collection whose vector another model made (or an
 * unrecorded one) goes `stale`, the ordinary way back to the worker, which re-embeds it and
 * records the new model. Conditioned on the statuses, hashes and model as read, so an edit or a
 * sync meanwhile is planned again, never overwritten.
 */
export function planFlagEmbeddingModel(tool: StoredTool, collection: SyncCollectionName, embeddingModel: string, now: Date): FlagModelPlan {
  const parsed = parseSyncState(tool);
  if (parsed.invalid !== undefined) return { kind: 'invalid', reason: parsed.invalid };
  const state = parsed.collections[collection];
  if (state?.status !== 'synced' || state.embeddingModel === embeddingModel) return { kind: 'none' };
  const statuses = settledStatuses(tool);
  statuses[collection] = 'stale';
  return {
    kind: 'flag',
    write: {
      filter: { ...unchangedSince(tool._id, parsed), [collectionPath(collection, 'embeddingModel')]: { $eq: state.storedEmbeddingModel ?? null } },
      update: {
        $set: {
          [collectionPath(collection, 'status')]: 'stale',
          [OVERALL_STATUS]: aggregateSyncStatus(Object.values(statuses)),
          [METADATA_UPDATED_AT]: now,
        },
      },
    },
  };
}

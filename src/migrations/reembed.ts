import { type ReturnModelType } from '@typegoose/typegoose';
import { type IdempotentPlan } from '../models/conditional-write.js';
import { SyncArgumentError } from '../models/errors.js';
import { collectionName, embeddingModelArgument, integerInRange } from '../models/sync-arguments.js';
import { MAX_QUERY_LIMIT } from '../models/tool-queries.js';
import { type Tool } from '../models/tool.js';
import { planFlagEmbeddingModel } from '../sync/plans/flag-embedding-model.js';
import { collectionPath } from '../sync/sync-state.js';
import { batchOptions, type BatchOptions } from './backfill.js';
import { runBatchMigration, type MigrationSummary } from './batch-migration.js';

type ToolModelType = ReturnModelType<typeof Tool>;

export const REEMBED_OUTCOMES = { flagged: 'flagged stale', unchanged: 'unchanged' } as const;

/**
 * Flags for re-embedding every `synced` vector of `collection` that another embedding model made
 * (or one made before models were recorded): `stale`, in batches, resumable, each write
 * conditioned on what it read. Edits meanwhile keep their usual transitions.
 */
export function reembed(
  model: ToolModelType,
  options: BatchOptions & { collection: unknown; embeddingModel: unknown },
): Promise<MigrationSummary> {
  const collection = collectionName(options.collection);
  const embeddingModel = embeddingModelArgument(options.embeddingModel);
  const plan = (tool: Parameters<typeof planFlagEmbeddingModel>[0], now: Date): IdempotentPlan => {
    const decided = planFlagEmbeddingModel(tool, collection, embeddingModel, now);
    if (decided.kind === 'invalid') return decided;
    if (decided.kind === 'none') return { kind: 'none', outcome: REEMBED_OUTCOMES.unchanged };
    return { kind: 'write', outcome: REEMBED_OUTCOMES.flagged, write: decided.write };
  };
  // Only the candidates are read; a flagged tool no longer matches, so a rerun picks up where one stopped.
  const filter = { [collectionPath(collection, 'status')]: 'synced', [collectionPath(collection, 'embeddingModel')]: { $ne: embeddingModel } };
  return runBatchMigration(model, { name: `reembed:${collection}:${embeddingModel}`, plan, filter, ...batchOptions(options) });
}

/** `ToolModel.flagEmbeddingModelChange`: the arguments checked, the count of collections flagged. */
export async function flagEmbeddingModelChange(
  model: ToolModelType,
  collection: unknown,
  embeddingModel: unknown,
  options: { batchSize?: unknown; dryRun?: unknown } = {},
): Promise<number> {
  const given: { batchSize?: unknown; dryRun?: unknown } = typeof options === 'object' && (options as unknown) !== null ? options : {};
  const batchSize = integerInRange(given.batchSize ?? 1000, 'batchSize', 1, MAX_QUERY_LIMIT);
  if (given.dryRun !== undefined && typeof given.dryRun !== 'boolean') throw new SyncArgumentError('dryRun', given.dryRun, 'true or false');
  const summary = await reembed(model, { collection, embeddingModel, batchSize, dryRun: given.dryRun ?? false });
  return summary.outcomes[REEMBED_OUTCOMES.flagged] ?? 0;
}

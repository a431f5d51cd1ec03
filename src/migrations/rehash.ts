import { type ReturnModelType } from '@typegoose/typegoose';
import { type IdempotentPlan } from '../models/conditional-write.js';
import { type Tool } from '../models/tool.js';
import { planSettle } from '../sync/plans/settle.js';
import { isSettled, parseSyncState, type StoredTool } from '../sync/stored-tool.js';
import { batchOptions, type BatchOptions } from './backfill.js';
import { runBatchMigration, type MigrationSummary } from './batch-migration.js';

type ToolModelType = ReturnModelType<typeof Tool>;

export const REHASH_OUTCOMES = { flagged: 'flagged', unchanged: 'unchanged', needsBackfill: 'needs backfill first' } as const;

/**
 * Recomputes a tool's hashes under the current field lists and hashing scheme; each collection
 * whose hash changed goes through `afterContentChange` (`synced` → `stale`). Tools without
 * complete, settled metadata are left to `backfill`.
 */
export function rehashPlan(tool: StoredTool, now: Date): IdempotentPlan {
  if (!isSettled(parseSyncState(tool))) return { kind: 'none', outcome: REHASH_OUTCOMES.needsBackfill };
  const plan = planSettle(tool, now);
  if (plan.kind === 'invalid') return plan;
  if (plan.kind === 'settled') return { kind: 'none', outcome: REHASH_OUTCOMES.unchanged };
  return { kind: 'write', outcome: REHASH_OUTCOMES.flagged, write: plan.write };
}

export function rehash(model: ToolModelType, options: BatchOptions = {}): Promise<MigrationSummary> {
  return runBatchMigration(model, { name: 'rehash', plan: rehashPlan, ...batchOptions(options) });
}

import { type ReturnModelType } from '@typegoose/typegoose';
import { type Tool } from '../models/tool.js';
import { planSettle } from '../sync/plans/settle.js';
import { parseSyncState, type StoredTool } from '../sync/stored-tool.js';
import { runBatchMigration, type MigrationProgress, type MigrationSummary } from './batch-migration.js';
import { type IdempotentPlan } from '../models/conditional-write.js';

type ToolModelType = ReturnModelType<typeof Tool>;

export const BACKFILL_OUTCOMES = { updated: 'updated', repaired: 'repaired', complete: 'already complete' } as const;

/**
 * Settles every tool: one without metadata gets the complete defaults with its real content
 * hashes (`updated`); partial metadata (such as the spec's backfill snippet's) gets what is
 * missing while its statuses, retry counts and vector versions stay, and a tool left unsettled by
 * an interrupted write is settled (`repaired`); metadata with an invalid value is reported, not
 * guessed (failed, with the path and the value).
 */
export function backfillPlan(tool: StoredTool, now: Date): IdempotentPlan {
  const plan = planSettle(tool, now);
  if (plan.kind === 'invalid') return plan;
  if (plan.kind === 'settled') return { kind: 'none', outcome: BACKFILL_OUTCOMES.complete };
  const outcome = parseSyncState(tool).absent ? BACKFILL_OUTCOMES.updated : BACKFILL_OUTCOMES.repaired;
  return { kind: 'write', outcome, write: plan.write };
}

export interface BatchOptions {
  /** Documents read and written per batch (default 1000). */
  batchSize?: number;
  /** Write nothing; count what would change (default false). */
  dryRun?: boolean;
  progress?: MigrationProgress;
  /** Told the summary so far after every batch. */
  onProgress?: (summary: MigrationSummary) => void;
  /** Stops the run after the batch in progress; the next run resumes where it stopped. */
  signal?: AbortSignal;
}

/** The options of a migration run, with the defaults filled in. */
export function batchOptions(options: BatchOptions = {}): BatchOptions & { batchSize: number; dryRun: boolean } {
  return { ...options, batchSize: options.batchSize ?? 1000, dryRun: options.dryRun ?? false };
}

export function backfill(model: ToolModelType, options: BatchOptions = {}): Promise<MigrationSummary> {
  return runBatchMigration(model, { name: 'backfill', plan: backfillPlan, ...batchOptions(options) });
}

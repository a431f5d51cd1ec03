import { type ReturnModelType } from '@typegoose/typegoose';
import { type mongo } from 'mongoose';
import { bulkSizeOf } from '../models/change-tracking/settle-after-write.js';
import { applyIdempotentPlans, type IdempotentPlan } from '../models/conditional-write.js';
import { describeId, idsAfter } from '../models/keyset.js';
import { type Tool } from '../models/tool.js';
import { type StoredTool } from '../sync/stored-tool.js';

type ToolModelType = ReturnModelType<typeof Tool>;

export interface MigrationSummary {
  migration: string;
  dryRun: boolean;
  /** The `_id` after which this run started (a checkpoint of an interrupted run), if any. */
  resumedAfter: string | null;
  scanned: number;
  /** Documents per outcome: written, or that would be written with `--dry-run`. */
  outcomes: Record<string, number>;
  /** Writes that a concurrent edit invalidated, planned again from what is stored now. */
  replanned: number;
  /**
   * Documents left as they were, by `_id` (hex) and business `id` (null when it has none), with the
   * reason: metadata no rule can use, a write the server or the driver refused (such as a document
   * too close to the 16 MB limit to take its metadata), or one that kept changing.
   */
  failed: MigrationFailure[];
  /** The run was stopped by its AbortSignal after a batch: its checkpoint is kept, a next run resumes. */
  aborted: boolean;
  elapsedMs: number;
}

export interface MigrationFailure {
  _id: string;
  id: string | null;
  reason: string;
}

export interface MigrationProgress {
  start(total: number): void;
  update(done: number, summary: MigrationSummary): void;
  stop(): void;
}

export interface MigrationOptions {
  /** Names the checkpoint: one interrupted run of this migration is resumed by the next. */
  name: string;
  /** An idempotent plan: planned again on what its own write produced, it writes nothing. */
  plan: (doc: StoredTool, now: Date) => IdempotentPlan;
  /** Only the tools matching this are read (all by default). */
  filter?: mongo.Filter<mongo.Document>;
  batchSize: number;
  dryRun: boolean;
  progress?: MigrationProgress;
  /** Told the summary so far after every batch. */
  onProgress?: (summary: MigrationSummary) => void;
  /** Stops the run after the batch in progress (nothing is left half-written). */
  signal?: AbortSignal;
  now?: () => Date;
}

/** Where interrupted runs leave their place: one document per migration, in its own collection. */
export const CHECKPOINT_COLLECTION = 'tool_sync_checkpoints';

interface Checkpoint { _id: string; lastId: unknown; updatedAt: Date }

/**
 * Walks the tools collection in `_id` order, a batch at a time, planning each document and writing
 * a batch with one unordered bulk write. Each write is conditioned on what the plan read, so a
 * concurrent edit is never overwritten: such a document is read and planned again. Memory holds
 * one batch. After each batch the last `_id` is checkpointed, so a run that is killed resumes
 * where it stopped; and because a plan for a document that needs nothing writes nothing, running
 * again, or over a batch already done, changes nothing.
 */
export async function runBatchMigration(model: ToolModelType, options: MigrationOptions): Promise<MigrationSummary> {
  const started = Date.now();
  const now = options.now ?? (() => new Date());
  const tools = model.collection;
  const checkpoints = model.db.collection<Checkpoint>(CHECKPOINT_COLLECTION);
  // One checkpoint per migration and collection: two tool collections in one database never share one.
  const checkpointId = `${options.name}:${tools.collectionName}`;
  const checkpoint = options.dryRun ? null : await checkpoints.findOne({ _id: checkpointId });
  const base = options.filter ?? {};
  // Across `_id` types too (a legacy tool's may be a number or a string): see idsAfter.
  const after = (id: unknown): mongo.Filter<mongo.Document> => (id === undefined ? base : { $and: [base, idsAfter(id)] });
  const filter = after(checkpoint?.lastId);
  const summary: MigrationSummary = {
    migration: options.name,
    dryRun: options.dryRun,
    resumedAfter: checkpoint === null ? null : describeId(checkpoint.lastId),
    scanned: 0,
    outcomes: {},
    replanned: 0,
    failed: [],
    aborted: false,
    elapsedMs: 0,
  };
  options.progress?.start(await tools.countDocuments(filter));

  const migrate = async (batch: StoredTool[]): Promise<void> => {
    // A document that cannot be written is recorded and skipped: one bad document never stops the run.
    const result = await applyIdempotentPlans(tools, batch, options.plan, { bulkSize: bulkSizeOf(model), dryRun: options.dryRun, now, recordRefused: true });
    for (const [outcome, n] of Object.entries(result.outcomes)) summary.outcomes[outcome] = (summary.outcomes[outcome] ?? 0) + n;
    summary.replanned += result.replanned;
    const businessIds = new Map(batch.map((tool) => [String(tool._id), typeof tool.id === 'string' ? tool.id : null]));
    const failure = ({ id, reason }: { id: string; reason: string }): MigrationFailure => ({ _id: id, id: businessIds.get(id) ?? null, reason });
    summary.failed.push(
      ...result.invalid.map(failure),
      ...result.refused.map(failure),
      ...result.conflicted.map((id) => failure({ id, reason: 'kept changing during the migration; run it again' })),
    );
    const last = batch[batch.length - 1];
    if (!options.dryRun && last !== undefined) {
      await checkpoints.updateOne({ _id: checkpointId }, { $set: { lastId: last._id, updatedAt: new Date() } }, { upsert: true });
    }
    summary.scanned += batch.length;
    options.progress?.update(summary.scanned, summary);
    options.onProgress?.({ ...summary, elapsedMs: Date.now() - started });
  };

  // Keyset pagination: each batch is its own query, read whole before anything is written. No
  // cursor stays open across the writes (FerretDB's SQLite backend blocks writes behind one).
  let last: unknown = checkpoint?.lastId;
  try {
    for (;;) {
      if (options.signal?.aborted === true) {
        summary.aborted = true;
        break;
      }
      const batch = (await tools.find(after(last), { sort: { _id: 1 }, limit: options.batchSize }).toArray()) as StoredTool[];
      if (batch.length === 0) break;
      await migrate(batch);
      last = batch[batch.length - 1]?._id;
    }
  } finally {
    options.progress?.stop();
  }
  if (!options.dryRun && !summary.aborted) await checkpoints.deleteOne({ _id: checkpointId });
  summary.elapsedMs = Date.now() - started;
  return summary;
}

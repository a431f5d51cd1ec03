import { type ReturnModelType } from '@typegoose/typegoose';
import { type mongo } from 'mongoose';
import { type Tool } from '../models/tool.js';

type ToolModelType = ReturnModelType<typeof Tool>;
export type RawTool = mongo.WithId<mongo.Document>;

/** A conditional write: it matches only while the document is as the plan read it. */
export interface PlannedWrite { filter: mongo.Filter<mongo.Document>; update: mongo.UpdateFilter<mongo.Document> }

/** What a migration decides for one document: an outcome, with a write, without one, or a failure. */
export type Plan =
  | { outcome: string; write: PlannedWrite; reason?: undefined }
  | { outcome: string; write?: undefined; reason?: undefined }
  | { outcome: 'failed'; reason: string; write?: undefined };

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
  failed: { id: string; reason: string }[];
  elapsedMs: number;
}

export interface MigrationProgress {
  start(total: number): void;
  update(done: number, summary: MigrationSummary): void;
  stop(): void;
}

export interface MigrationOptions {
  /** Names the checkpoint: one interrupted run of this migration is resumed by the next. */
  name: string;
  plan: (doc: RawTool, now: Date) => Plan | Promise<Plan>;
  batchSize: number;
  dryRun: boolean;
  progress?: MigrationProgress;
  now?: () => Date;
}

/** Where interrupted runs leave their place: one document per migration, in its own collection. */
export const CHECKPOINT_COLLECTION = 'tool_sync_checkpoints';

interface Checkpoint { _id: string; lastId: mongo.ObjectId; updatedAt: Date }

/** How often one document is planned again when concurrent edits keep invalidating its write. */
const MAX_REPLANS = 5;

/**
 * Writes per bulk command. MongoDB takes thousands at once, but FerretDB's cost per operation
 * grows with the size of the bulk (measured on v1.24/SQLite: 9 ms each in a bulk of 20, 59 ms each
 * in a bulk of 70); a few more round trips cost MongoDB little.
 */
const WRITES_PER_BULK = 25;

async function bulkUpdate(tools: mongo.Collection, writes: PlannedWrite[]): Promise<number> {
  let matched = 0;
  for (let i = 0; i < writes.length; i += WRITES_PER_BULK) {
    const chunk = writes.slice(i, i + WRITES_PER_BULK);
    const result = await tools.bulkWrite(chunk.map(({ filter, update }) => ({ updateOne: { filter, update } })), { ordered: false });
    matched += result.matchedCount;
  }
  return matched;
}

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
  const checkpoint = options.dryRun ? null : await checkpoints.findOne({ _id: options.name });
  const filter: mongo.Filter<mongo.Document> = checkpoint === null ? {} : { _id: { $gt: checkpoint.lastId } };
  const summary: MigrationSummary = {
    migration: options.name,
    dryRun: options.dryRun,
    resumedAfter: checkpoint === null ? null : checkpoint.lastId.toHexString(),
    scanned: 0,
    outcomes: {},
    replanned: 0,
    failed: [],
    elapsedMs: 0,
  };
  const count = (outcome: string): void => { summary.outcomes[outcome] = (summary.outcomes[outcome] ?? 0) + 1; };

  options.progress?.start(await tools.countDocuments(filter));

  const migrate = async (batch: RawTool[]): Promise<void> => {
    let pending = batch;
    /** Outcomes planned earlier for documents whose write may have landed before a re-read. */
    const earlier = new Map<string, string>();
    for (let attempt = 0; pending.length > 0; attempt += 1) {
      const writes: { doc: RawTool; outcome: string; write: PlannedWrite }[] = [];
      for (const doc of pending) {
        const plan = await options.plan(doc, now());
        const id = String(doc._id);
        if (plan.reason !== undefined) summary.failed.push({ id, reason: plan.reason });
        else if (plan.write === undefined) count(earlier.get(id) ?? plan.outcome);
        else if (options.dryRun) count(plan.outcome);
        else writes.push({ doc, outcome: plan.outcome, write: plan.write });
      }
      if (writes.length === 0) break;
      const matched = await bulkUpdate(tools, writes.map(({ write }) => write));
      if (matched === writes.length) {
        for (const { outcome } of writes) count(outcome);
        break;
      }
      // Some writes matched nothing: their documents changed since they were read. Read the group
      // again and plan it afresh; a document that now needs nothing got this run's write.
      if (attempt >= MAX_REPLANS) {
        for (const { doc } of writes) summary.failed.push({ id: String(doc._id), reason: 'kept changing during the migration; run it again' });
        break;
      }
      summary.replanned += writes.length - matched;
      for (const { doc, outcome } of writes) earlier.set(String(doc._id), outcome);
      pending = await tools.find({ _id: { $in: writes.map(({ doc }) => doc._id) } }).toArray();
    }
    const last = batch[batch.length - 1];
    if (!options.dryRun && last !== undefined) {
      await checkpoints.updateOne({ _id: options.name }, { $set: { lastId: last._id, updatedAt: new Date() } }, { upsert: true });
    }
    summary.scanned += batch.length;
    options.progress?.update(summary.scanned, summary);
  };

  // Keyset pagination: each batch is its own query, read whole before anything is written. No
  // cursor stays open across the writes (FerretDB's SQLite backend blocks writes behind one).
  let after = checkpoint?.lastId;
  try {
    for (;;) {
      const batch = await tools.find(after === undefined ? {} : { _id: { $gt: after } }, { sort: { _id: 1 }, limit: options.batchSize }).toArray();
      if (batch.length === 0) break;
      await migrate(batch);
      after = batch[batch.length - 1]?._id;
    }
  } finally {
    options.progress?.stop();
  }
  if (!options.dryRun) await checkpoints.deleteOne({ _id: options.name });
  summary.elapsedMs = Date.now() - started;
  return summary;
}

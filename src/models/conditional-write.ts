import { type mongo } from 'mongoose';
import { type Decision, type PlannedWrite } from '../sync/plans/plan.js';
import { planSettle, type SettleOptions } from '../sync/plans/settle.js';
import { type StoredTool } from '../sync/stored-tool.js';
import { SyncConflictError, SyncStateError, ToolNotFoundError } from './errors.js';

/**
 * The one place where the package writes sync state: a plan's conditional write, and the one
 * retry loop. A write that did not match (the tool changed since it was read) is planned again
 * from a fresh read; only the package's own write is ever retried, never a user's.
 */

/** The tools collection as the driver sees it: documents of any shape (see StoredTool). */
export type ToolCollection = mongo.Collection;

/** A lost conditional write is planned again this many times before the caller is told. */
export const MAX_ATTEMPTS = 50;

export interface WriteContext {
  session?: mongo.ClientSession | undefined;
  now?: () => Date;
  /** Told each tool's stored state once it is settled (as read, or with the settle's write applied). */
  onSettled?: ((tool: StoredTool) => void) | undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** `tool` with a `$set` of the package's own (plain values at dotted paths) applied: no operator is evaluated. */
export function withSetApplied(tool: StoredTool, set: Record<string, unknown>): StoredTool {
  const put = (target: Record<string, unknown>, [head = '', ...rest]: string[], value: unknown): Record<string, unknown> => {
    const inner = target[head];
    return { ...target, [head]: rest.length === 0 ? value : put(isRecord(inner) ? inner : {}, rest, value) };
  };
  let result: Record<string, unknown> = tool;
  for (const [path, value] of Object.entries(set)) result = put(result, path.split('.'), value);
  return result as StoredTool;
}

const idKey = (tool: StoredTool): string => String(tool._id);

async function reread(collection: ToolCollection, ids: mongo.ObjectId[], context: WriteContext): Promise<StoredTool[]> {
  return (await collection.find({ _id: { $in: ids } }, { session: context.session }).toArray());
}

async function writeOne(collection: ToolCollection, write: PlannedWrite, context: WriteContext): Promise<boolean> {
  const result = await collection.updateOne(write.filter, write.update, { session: context.session });
  return result.matchedCount === 1;
}

/**
 * One tool: read it, decide, write on the plan's condition; decide again from a fresh read when
 * the write did not match or when the plan settled the tool first.
 */
export async function applyPlan<T>(
  collection: ToolCollection,
  id: mongo.ObjectId,
  decide: (tool: StoredTool, now: Date) => Decision<T>,
  context: WriteContext & { what: string },
): Promise<T> {
  const now = context.now ?? (() => new Date());
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
    const tool = await collection.findOne<StoredTool>({ _id: id }, { session: context.session });
    if (tool === null) throw new ToolNotFoundError(id.toHexString());
    const decision = decide(tool, now());
    if (decision.kind === 'invalid') throw new SyncStateError(id.toHexString(), decision.reason);
    if (decision.write === null) return (decision as { result: T }).result;
    const landed = await writeOne(collection, decision.write, context);
    if (landed && decision.kind === 'done') return decision.result;
  }
  throw new SyncConflictError(`${context.what}: the tool kept changing under ${MAX_ATTEMPTS} attempts; try again`);
}

/** What an idempotent plan (settling, a migration) decides for one tool. */
export type IdempotentPlan =
  | { kind: 'write'; outcome: string; write: PlannedWrite }
  | { kind: 'none'; outcome: string }
  | { kind: 'invalid'; reason: string };

export interface PlansSummary {
  /** Tools per outcome (written, or that would be written in a dry run). */
  outcomes: Record<string, number>;
  /** Tools whose stored state cannot be used, with the reason: nothing was written to them. */
  invalid: { id: string; reason: string }[];
  /** Writes that a concurrent change invalidated, planned again from what is stored now. */
  replanned: number;
  /** Tools that kept changing under every attempt: a later run finishes them. */
  conflicted: string[];
}

export const emptyPlansSummary = (): PlansSummary => ({ outcomes: {}, invalid: [], replanned: 0, conflicted: [] });

/** Updates per bulk command for a group of this many (see updates-per-bulk.ts): asked only when needed. */
export type BulkSize = (writes: number) => Promise<number>;

/** Splits writes into bulks (one command each). */
async function bulkUpdate(collection: ToolCollection, writes: PlannedWrite[], bulkSize: BulkSize, context: WriteContext): Promise<number> {
  const size = await bulkSize(writes.length);
  let matched = 0;
  for (let i = 0; i < writes.length; i += size) {
    const chunk = writes.slice(i, i + size).map(({ filter, update }) => ({ updateOne: { filter, update } }));
    matched += (await collection.bulkWrite(chunk, { ordered: false, session: context.session })).matchedCount;
  }
  return matched;
}

/**
 * Carries out an idempotent plan (planned again on what its own write produced, it writes
 * nothing) for a group of tools: one bulk of conditional writes (split as `bulkSize` says). When
 * some writes did not match, the group is read again and planned afresh; a tool whose write
 * landed before that read keeps the outcome first planned for it.
 */
export async function applyIdempotentPlans(
  collection: ToolCollection,
  tools: StoredTool[],
  plan: (tool: StoredTool, now: Date) => IdempotentPlan,
  context: WriteContext & { bulkSize: BulkSize; dryRun?: boolean },
  summary: PlansSummary = emptyPlansSummary(),
): Promise<PlansSummary> {
  const now = context.now ?? (() => new Date());
  const count = (outcome: string): void => { summary.outcomes[outcome] = (summary.outcomes[outcome] ?? 0) + 1; };
  const earlier = new Map<string, string>();
  let pending = tools;
  for (let attempt = 0; pending.length > 0; attempt += 1) {
    const writes: { tool: StoredTool; write: PlannedWrite; outcome: string }[] = [];
    for (const tool of pending) {
      const decision = plan(tool, now());
      if (decision.kind === 'invalid') summary.invalid.push({ id: idKey(tool), reason: decision.reason });
      else if (decision.kind === 'none') {
        count(earlier.get(idKey(tool)) ?? decision.outcome);
        context.onSettled?.(tool);
      } else if (context.dryRun === true) count(decision.outcome);
      else writes.push({ tool, write: decision.write, outcome: decision.outcome });
    }
    if (writes.length === 0) break;
    const matched = await bulkUpdate(collection, writes.map(({ write }) => write), context.bulkSize, context);
    if (matched === writes.length) {
      for (const { tool, write, outcome } of writes) {
        count(outcome);
        context.onSettled?.(withSetApplied(tool, (write.update.$set ?? {}) as Record<string, unknown>));
      }
      break;
    }
    if (attempt + 1 >= MAX_ATTEMPTS) {
      summary.conflicted.push(...writes.map(({ tool }) => idKey(tool)));
      break;
    }
    summary.replanned += writes.length - matched;
    for (const { tool, outcome } of writes) earlier.set(idKey(tool), outcome);
    pending = await reread(collection, writes.map(({ tool }) => tool._id), context);
  }
  return summary;
}

export const SETTLE_OUTCOMES = { settled: 'settled', unchanged: 'unchanged' } as const;

/** The settle rule as an idempotent plan. */
export function settlePlan(tool: StoredTool, now: Date, options: SettleOptions = {}): IdempotentPlan {
  const plan = planSettle(tool, now, options);
  if (plan.kind === 'invalid') return plan;
  if (plan.kind === 'settled') return { kind: 'none', outcome: SETTLE_OUTCOMES.unchanged };
  return { kind: 'write', outcome: SETTLE_OUTCOMES.settled, write: plan.write };
}

/**
 * Settles every tool matching `filter`, a batch at a time in `_id` order (keyset pagination: no
 * cursor stays open across the writes). The follow-up of a user's write: a bounded number of
 * commands per batch, whatever the number of tools.
 */
export async function settleMatching(
  collection: ToolCollection,
  filter: mongo.Filter<mongo.Document>,
  context: WriteContext & { batchSize: number; bulkSize: BulkSize },
): Promise<PlansSummary> {
  const summary = emptyPlansSummary();
  let after: mongo.ObjectId | undefined;
  for (;;) {
    const page = after === undefined ? filter : { $and: [filter, { _id: { $gt: after } }] };
    const options = { session: context.session, sort: { _id: 1 }, limit: context.batchSize, batchSize: context.batchSize } as const;
    const batch = (await collection.find(page, options).toArray()) as StoredTool[];
    if (batch.length === 0) break;
    await applyIdempotentPlans(collection, batch, settlePlan, context, summary);
    if (batch.length < context.batchSize) break;
    after = batch[batch.length - 1]?._id;
  }
  return summary;
}

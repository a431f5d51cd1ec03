import mongoose, { type mongo } from 'mongoose';
import { type Decision, type PlannedWrite } from '../sync/plans/plan.js';
import { planSettle, type SettleOptions } from '../sync/plans/settle.js';
import { type StoredTool } from '../sync/stored-tool.js';
import { METADATA_UPDATED_AT, OVERALL_STATUS } from '../sync/sync-state.js';
import { SyncConflictError, SyncStateError, ToolNotFoundError } from './errors.js';
import { idsAfter } from './keyset.js';
import { inBulkTurn } from './updates-per-bulk.js';

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
export async function applyPlan<T, D extends { _id: mongo.ObjectId | string } = StoredTool>(
  collection: ToolCollection,
  id: mongo.ObjectId | string,
  decide: (doc: D, now: Date) => Decision<T>,
  context: WriteContext & { what: string; first?: D; missing?: () => T },
): Promise<T> {
  const now = context.now ?? (() => new Date());
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
    // The caller may have just read the document (a queue): the first plan is made from that.
    // A tombstone's `_id` is a string: the driver's default typing of `_id` (an ObjectId) does not say so.
    const byId = { _id: id } as mongo.Filter<mongo.Document>;
    const doc: D | null = attempt === 0 && context.first !== undefined ? context.first : await collection.findOne<D>(byId, { session: context.session });
    // Any `_id` a document may have (a legacy tool's may be a number): named, never a TypeError.
    const hex = String(id);
    if (doc === null) {
      if (context.missing !== undefined) return context.missing();
      throw new ToolNotFoundError(hex);
    }
    const decision = decide(doc, now());
    if (decision.kind === 'invalid') throw new SyncStateError(hex, decision.reason);
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

/** A tool whose write was refused, as `_id` hex, with the reason the server (or the driver) gave. */
export interface RefusedWrite {
  id: string;
  reason: string;
}

export interface PlansSummary {
  /** Tools per outcome (written, or that would be written in a dry run). */
  outcomes: Record<string, number>;
  /** Tools whose stored state cannot be used, with the reason: nothing was written to them. */
  invalid: { id: string; reason: string }[];
  /** Writes that a concurrent change invalidated, planned again from what is stored now. */
  replanned: number;
  /** Tools that kept changing under every attempt: a later run finishes them. */
  conflicted: string[];
  /** Tools whose own write the server or the driver refused (say, too large): left as they were, the rest written. */
  refused: RefusedWrite[];
}

export const emptyPlansSummary = (): PlansSummary => ({ outcomes: {}, invalid: [], replanned: 0, conflicted: [], refused: [] });

/**
 * Some tools of a group could not be written (see `PlansSummary.refused`); every other tool of the
 * group was. Thrown after the group unless the caller records refusals instead (a migration).
 */
export class WritesRefusedError extends Error {
  override name = 'WritesRefusedError';
  constructor(readonly refused: RefusedWrite[]) {
    const listed = refused.slice(0, 5).map(({ id, reason }) => `${id}: ${reason}`).join('; ');
    super(`${refused.length} tool${refused.length === 1 ? '' : 's'} could not be written (${listed}${refused.length > 5 ? '; …' : ''})`);
  }
}

/** Updates per bulk command for a group of this many (see updates-per-bulk.ts): asked only when needed. */
export type BulkSize = (writes: number) => Promise<number>;

/** What a group of writes came to: how many matched, and which (by index) were refused, with why. */
interface BulkOutcome {
  matched: number;
  refused: Map<number, string>;
  /** Writes of a failed bulk whose fate the error does not tell (not matched, not refused): read again, not a lost race. */
  unsure: number;
}

const oneLine = (text: string): string => text.replace(/\s*[\r\n]+\s*/g, ' ').trim();

/** The driver refused to send a write (it cannot encode it, or it exceeds the BSON size limit): nothing was sent. */
export const isUnsendable = (error: unknown): error is Error =>
  error instanceof mongoose.mongo.MongoInvalidArgumentError || error instanceof mongoose.mongo.BSON.BSONError;

/**
 * The writes of a failed bulk that may have been refused for their own sake, by index, with the
 * reason; undefined when the failure is not about particular documents (the server is gone, a
 * write concern failed, the command as a whole was refused), which the caller must see.
 */
function refusalsIn(error: unknown, count: number): Map<number, string> | undefined {
  // The driver refuses to send a statement it cannot encode or that exceeds the BSON size limit; it then sends none of the bulk.
  if (isUnsendable(error)) {
    const reason = `the driver refused to send the write: ${oneLine(error.message)}`;
    return new Map(Array.from({ length: count }, (_, index) => [index, reason]));
  }
  if (!(error instanceof mongoose.mongo.MongoBulkWriteError)) return undefined;
  const writeErrors = ([] as mongo.WriteError[]).concat(error.writeErrors);
  const named = new Map<number, string>();
  for (const writeError of writeErrors) {
    if (Number.isInteger(writeError.index) && writeError.index >= 0 && writeError.index < count) {
      named.set(writeError.index, `the server refused the write: ${oneLine(writeError.errmsg ?? 'no reason given')} (code ${String(writeError.code)})`);
    }
  }
  return named.size === 0 ? undefined : named;
}

async function sendBulk(collection: ToolCollection, writes: PlannedWrite[], context: WriteContext): Promise<number> {
  const operations = writes.map(({ filter, update }) => ({ updateOne: { filter, update } }));
  return (await inBulkTurn(collection, () => collection.bulkWrite(operations, { ordered: false, session: context.session }))).matchedCount;
}

/**
 * Splits writes into bulks (one command each). A bulk that fails for some of its documents does not
 * stop the others: the writes the failure names are sent again one at a time, and only one refused
 * on its own is reported as refused (FerretDB 1.x names statement 0 whichever failed, and applies
 * none after it). What a failed bulk did not apply does not match: it is read and planned again.
 */
async function bulkUpdate(collection: ToolCollection, writes: PlannedWrite[], bulkSize: BulkSize, context: WriteContext): Promise<BulkOutcome> {
  const size = await bulkSize(writes.length);
  const outcome: BulkOutcome = { matched: 0, refused: new Map(), unsure: 0 };
  for (let start = 0; start < writes.length; start += size) {
    const chunk = writes.slice(start, start + size);
    try {
      outcome.matched += await sendBulk(collection, chunk, context);
    } catch (error) {
      const suspects = refusalsIn(error, chunk.length);
      if (suspects === undefined) throw error;
      // The other writes of an unordered bulk were applied: the error's result counts those that matched.
      const sent = error instanceof mongoose.mongo.MongoBulkWriteError;
      let matched = sent ? error.result.matchedCount : 0;
      let refused = 0;
      for (const index of suspects.keys()) {
        const write = chunk[index];
        if (write === undefined) continue;
        try {
          matched += await sendBulk(collection, [write], context);
        } catch (alone) {
          const reason = refusalsIn(alone, 1)?.get(0);
          if (reason === undefined) throw alone;
          outcome.refused.set(start + index, reason);
          refused += 1;
        }
      }
      outcome.matched += matched;
      // Unsent (the driver refused the bulk), every write went alone: a miss is a lost race. Sent, a miss may be the engine's.
      if (sent) outcome.unsure += Math.max(0, chunk.length - matched - refused);
    }
  }
  return outcome;
}

/** One document's transition in a batch (see applyPlans). */
export interface PlanItem<T, D> {
  id: mongo.ObjectId | string;
  /** The document as the caller has just read it (a queue): its first plan is made from that; else it is read. */
  first?: D;
  decide: (doc: D, now: Date) => Decision<T>;
  /** The result for a document that is gone; without it, a ToolNotFoundError. */
  missing?: () => T;
}

/** What one item of a batch came to: its result, with the document it was planned from and the write that landed; or its own error. */
export type PlanOutcome<T, D> =
  | { ok: true; value: T; basis: D | null; write: PlannedWrite | null }
  | { ok: false; error: Error };

/** Paths that a transition of any collection of a tool moves: they tell nothing of whose write landed. */
const SHARED_PATHS = new Set([METADATA_UPDATED_AT, OVERALL_STATUS]);

function valueAt(doc: unknown, path: string): unknown {
  let value = doc;
  for (const part of path.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined;
  return value;
}

/** A BSON value (an ObjectId, a UUID…) as its hex or string form; undefined for anything else. */
const bsonText = (value: object): string | undefined => {
  if (typeof (value as { _bsontype?: unknown })._bsontype !== 'string') return undefined;
  const { toHexString } = value as { toHexString?: unknown };
  return typeof toHexString === 'function' ? String(toHexString.call(value)) : JSON.stringify(value);
};

/** A value the package wrote, as the server stores it (null and missing alike; Dates by time; ObjectIds by hex). */
function sameValue(written: unknown, stored: unknown): boolean {
  if (written === null || written === undefined) return stored === null || stored === undefined;
  if (written instanceof Date) return stored instanceof Date && written.getTime() === stored.getTime();
  if (Array.isArray(written)) return Array.isArray(stored) && written.length === stored.length && written.every((item, index) => sameValue(item, stored[index]));
  if (typeof written !== 'object') return written === stored;
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored) || stored instanceof Date) return false;
  const [writtenBson, storedBson] = [bsonText(written), bsonText(stored)];
  if (writtenBson !== undefined || storedBson !== undefined) return writtenBson === storedBson;
  const keys = new Set([...Object.keys(written), ...Object.keys(stored)]);
  return [...keys].every((key) => sameValue((written as Record<string, unknown>)[key], (stored as Record<string, unknown>)[key]));
}

/**
 * Whether `doc` shows `write` landed: every value it set is stored (the paths every transition of
 * the tool moves aside). A bulk's reply counts the writes that matched, not which: a write that
 * landed and was then overwritten by another's reads as lost and is planned again, which for a
 * mark means a claim-lost re-open (one more embedding, never a wrong `synced`).
 */
export function writeLanded(doc: unknown, write: PlannedWrite): boolean {
  const set = (write.update.$set ?? {}) as Record<string, unknown>;
  return Object.entries(set).every(([path, value]) => SHARED_PATHS.has(path) || sameValue(value, valueAt(doc, path)));
}

/** Reads the documents of `ids` (one command: exactly `{ _id }` for one, which every engine serves by its index). */
async function readByIds<D extends { _id: mongo.ObjectId | string }>(collection: ToolCollection, ids: (mongo.ObjectId | string)[], context: WriteContext): Promise<Map<string, D>> {
  const unique = [...new Map(ids.map((id) => [String(id), id])).values()];
  const filter = (unique.length === 1 ? { _id: unique[0] } : { _id: { $in: unique } }) as mongo.Filter<mongo.Document>;
  // As many as asked for, in one reply: the cursor ends with it (no getMore, no killCursors).
  const found = await collection.find<D>(filter, { session: context.session, limit: unique.length, batchSize: unique.length }).toArray();
  return new Map(found.map((doc) => [String(doc._id), doc]));
}

/**
 * applyPlan for many documents at once, in a bounded number of commands: the documents not given
 * are read in one `find`, every write planned is sent in one unordered bulk (split as `bulkSize`
 * says), and only when fewer matched than were sent are the written documents read again (one
 * `find`): a write the document shows landed keeps its result (see writeLanded), the others
 * (lost races, and settles written first) are planned again from that read, like applyPlan's
 * retries. Each item's result is exactly what applyPlan would have given it; an item whose own
 * write is refused or keeps losing gets its error, and never stops the others. A failure of the
 * command as a whole (the server is gone) is thrown.
 */
export async function applyPlans<T, D extends { _id: mongo.ObjectId | string } = StoredTool>(
  collection: ToolCollection,
  items: PlanItem<T, D>[],
  context: WriteContext & { bulkSize: BulkSize; what: string },
): Promise<PlanOutcome<T, D>[]> {
  const now = context.now ?? (() => new Date());
  const outcomes = new Map<number, PlanOutcome<T, D>>();
  // What each pending item is planned from: undefined until read, null once found gone.
  const docs: (D | null | undefined)[] = items.map((item) => item.first);
  const read = async (indexes: number[]): Promise<void> => {
    if (indexes.length === 0) return;
    const found = await readByIds<D>(collection, indexes.map((index) => items[index]?.id ?? ''), context);
    for (const index of indexes) docs[index] = found.get(String(items[index]?.id)) ?? null;
  };
  let pending = items.map((_, index) => index);
  for (let attempt = 0; pending.length > 0; attempt += 1) {
    if (attempt >= MAX_ATTEMPTS) {
      for (const index of pending) {
        outcomes.set(index, { ok: false, error: new SyncConflictError(`${context.what}(${String(items[index]?.id)}): the tool kept changing under ${MAX_ATTEMPTS} attempts; try again`) });
      }
      break;
    }
    await read(pending.filter((index) => docs[index] === undefined));
    const planned: { index: number; decision: Decision<T> & { write: PlannedWrite }; basis: D }[] = [];
    for (const index of pending) {
      const item = items[index];
      const doc = docs[index];
      if (item === undefined || doc === undefined) continue;
      if (doc === null) {
        outcomes.set(index, item.missing === undefined ? { ok: false, error: new ToolNotFoundError(String(item.id)) } : { ok: true, value: item.missing(), basis: null, write: null });
        continue;
      }
      const decision = item.decide(doc, now());
      if (decision.kind === 'invalid') outcomes.set(index, { ok: false, error: new SyncStateError(String(item.id), decision.reason) });
      else if (decision.write === null) outcomes.set(index, { ok: true, value: (decision as { result: T }).result, basis: doc, write: null });
      else planned.push({ index, decision: decision as Decision<T> & { write: PlannedWrite }, basis: doc });
    }
    if (planned.length === 0) break;
    const result = await bulkUpdate(collection, planned.map(({ decision }) => decision.write), context.bulkSize, context);
    for (const [at, reason] of result.refused) {
      const entry = planned[at];
      if (entry !== undefined) outcomes.set(entry.index, { ok: false, error: new WritesRefusedError([{ id: String(items[entry.index]?.id), reason }]) });
    }
    const sent = planned.filter((_, at) => !result.refused.has(at));
    const allLanded = result.matched >= sent.length;
    for (const { index } of sent) docs[index] = undefined;
    if (!allLanded) await read(sent.map(({ index }) => index));
    pending = [];
    for (const { index, decision, basis } of sent) {
      const doc = docs[index];
      const landed = allLanded || (doc !== null && doc !== undefined && writeLanded(doc, decision.write));
      if (decision.kind === 'done' && landed) outcomes.set(index, { ok: true, value: decision.result, basis, write: decision.write });
      else pending.push(index);
    }
  }
  return items.map((_, index) => outcomes.get(index) ?? { ok: false, error: new SyncConflictError(`${context.what}: no outcome`) });
}

/**
 * Carries out an idempotent plan (planned again on what its own write produced, it writes
 * nothing) for a group of tools: one bulk of conditional writes (split as `bulkSize` says). When
 * some writes did not match, the group is read again and planned afresh; a tool whose write
 * landed before that read keeps the outcome first planned for it. A tool whose own write is
 * refused (see bulkUpdate) is left as it was and the rest of the group is written; the refusals
 * are then thrown as one WritesRefusedError, or only recorded in the summary with `recordRefused`.
 */
export async function applyIdempotentPlans(
  collection: ToolCollection,
  tools: StoredTool[],
  plan: (tool: StoredTool, now: Date) => IdempotentPlan,
  context: WriteContext & { bulkSize: BulkSize; dryRun?: boolean; recordRefused?: boolean },
  summary: PlansSummary = emptyPlansSummary(),
): Promise<PlansSummary> {
  const now = context.now ?? (() => new Date());
  const count = (outcome: string): void => { summary.outcomes[outcome] = (summary.outcomes[outcome] ?? 0) + 1; };
  const earlier = new Map<string, string>();
  const refused: RefusedWrite[] = [];
  let pending = tools;
  for (let attempt = 0; pending.length > 0; attempt += 1) {
    const planned: { tool: StoredTool; write: PlannedWrite; outcome: string }[] = [];
    for (const tool of pending) {
      const decision = plan(tool, now());
      if (decision.kind === 'invalid') summary.invalid.push({ id: idKey(tool), reason: decision.reason });
      else if (decision.kind === 'none') {
        count(earlier.get(idKey(tool)) ?? decision.outcome);
        context.onSettled?.(tool);
      } else if (context.dryRun === true) count(decision.outcome);
      else planned.push({ tool, write: decision.write, outcome: decision.outcome });
    }
    if (planned.length === 0) break;
    const result = await bulkUpdate(collection, planned.map(({ write }) => write), context.bulkSize, context);
    for (const [index, reason] of result.refused) {
      const tool = planned[index]?.tool;
      if (tool !== undefined) refused.push({ id: idKey(tool), reason });
    }
    const writes = planned.filter((_, index) => !result.refused.has(index));
    if (result.matched >= writes.length) {
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
    summary.replanned += Math.max(0, writes.length - result.matched - result.unsure);
    for (const { tool, outcome } of writes) earlier.set(idKey(tool), outcome);
    pending = await reread(collection, writes.map(({ tool }) => tool._id), context);
  }
  summary.refused.push(...refused);
  if (refused.length > 0 && context.recordRefused !== true) throw new WritesRefusedError(refused);
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
  let after: unknown;
  let started = false;
  for (;;) {
    // Across `_id` types (see idsAfter): a legacy tool's `_id` may be a number or a string.
    const page = started ? { $and: [filter, idsAfter(after)] } : filter;
    const options = { session: context.session, sort: { _id: 1 }, limit: context.batchSize, batchSize: context.batchSize } as const;
    const batch = (await collection.find(page, options).toArray()) as StoredTool[];
    if (batch.length === 0) break;
    await applyIdempotentPlans(collection, batch, settlePlan, context, summary);
    if (batch.length < context.batchSize) break;
    after = batch[batch.length - 1]?._id;
    started = true;
  }
  return summary;
}

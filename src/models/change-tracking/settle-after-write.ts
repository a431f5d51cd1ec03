import { type ReturnModelType } from '@typegoose/typegoose';
import { type mongo } from 'mongoose';
import { type StoredTool } from '../../sync/stored-tool.js';
import { type SettleOptions } from '../../sync/plans/settle.js';
import { applyIdempotentPlans, type BulkSize, type IdempotentPlan, settleMatching, settlePlan, type PlansSummary, type ToolCollection } from '../conditional-write.js';
import { type Tool } from '../tool.js';
import { updatesPerBulk } from '../updates-per-bulk.js';

type ToolModelType = ReturnModelType<typeof Tool>;

/** Emitted on `Model.events` when a user's write landed but settling its tools failed. */
export const SETTLE_FAILED_EVENT = 'tool-sync:settle-failed';

/** Tools read per batch after a write: one read per this many. */
export const SETTLE_BATCH_SIZE = 1000;

/** The bulk size of a settle's updates on the model's server. */
export const bulkSizeOf = (model: ToolModelType): BulkSize => (writes) => updatesPerBulk(model.db, writes);

export const toolCollection = (model: ToolModelType): ToolCollection => model.collection;

/**
 * Settles the tools a user's write marked. The write itself has landed: a failure here leaves
 * the marks (every reader of sync state settles them, and `tool-sync settle` does too), so it is
 * reported on `Model.events`, never thrown at a caller whose write succeeded.
 */
export async function settleAfterWrite(
  model: ToolModelType,
  filter: mongo.Filter<mongo.Document>,
  session: mongo.ClientSession | null | undefined,
  onSettled?: (tool: StoredTool) => void,
): Promise<PlansSummary | undefined> {
  try {
    return await settleMatching(toolCollection(model), filter, { session: session ?? undefined, batchSize: SETTLE_BATCH_SIZE, bulkSize: bulkSizeOf(model), onSettled });
  } catch (error) {
    model.events.emit(SETTLE_FAILED_EVENT, { error, filter });
    return undefined;
  }
}

/**
 * Settles tools as a write returned them, or as a saved document holds them (`unread`): planned
 * from them, no read first; a plan that lost a race with a later write, or that was made from
 * content the server did not store, does not match and is planned again from a fresh read.
 * Failures as above.
 */
export async function settleStoredTools(
  model: ToolModelType,
  tools: StoredTool[],
  session: mongo.ClientSession | null | undefined,
  onSettled?: (tool: StoredTool) => void,
  options: SettleOptions = {},
): Promise<PlansSummary | undefined> {
  const plan = (tool: StoredTool, now: Date): IdempotentPlan => settlePlan(tool, now, options);
  try {
    // Planned from memory, a refused write is the caller's to settle from a read (see afterDocumentSave).
    return await applyIdempotentPlans(toolCollection(model), tools, plan, {
      session: session ?? undefined, bulkSize: bulkSizeOf(model), onSettled, recordRefused: options.unread === true,
    });
  } catch (error) {
    model.events.emit(SETTLE_FAILED_EVENT, { error, filter: { _id: { $in: tools.map((tool) => tool._id) } } });
    return undefined;
  }
}

import mongoose from 'mongoose';
import { backfillPlan } from '../../src/migrations/backfill.js';
import { type StoredTool } from '../../src/sync/stored-tool.js';
import { toolInput } from '../helpers/tools.js';

/** MongoDB's document limit, which the driver also applies to every statement it sends. */
export const MAX_BSON_SIZE = 16 * 1024 * 1024;

const sizeOf = (value: Record<string, unknown>): number => mongoose.mongo.BSON.calculateObjectSize(value);

/**
 * A legacy tool (no sync metadata) whose `longDescription` brings it just under 16 MB: under by
 * half of what the backfill would add, so the raw insert fits and the document with its metadata
 * does not (nor does the conditional write, whose filter repeats the content).
 */
export function nearLimitLegacyTool(id: string): StoredTool {
  const tool = { _id: new mongoose.Types.ObjectId(), ...toolInput({ id, longDescription: '' }) } as StoredTool;
  const plan = backfillPlan(tool, new Date());
  if (plan.kind !== 'write') throw new Error(`a legacy tool should need a backfill write, got ${plan.kind}`);
  const metadata = sizeOf(plan.write.update);
  return { ...tool, longDescription: 'x'.repeat(MAX_BSON_SIZE - Math.ceil(metadata / 2) - sizeOf(tool)) };
}

/**
 * Why this engine cannot run a near-limit test, or undefined when it can: the raw insert of a
 * near-limit tool must be accepted and a write adding its metadata refused (by the driver or the
 * server). Tried with the raw driver on a scratch collection.
 */
export async function nearLimitUnsupported(): Promise<string | undefined> {
  const db = mongoose.connection.db;
  if (db === undefined) throw new Error('not connected');
  const scratch = db.collection(`capability_${new mongoose.Types.ObjectId().toHexString()}`);
  const tool = nearLimitLegacyTool('near-limit-probe');
  try {
    try {
      await scratch.insertOne(tool);
    } catch {
      return 'a raw insert of a document just under 16 MB';
    }
    const plan = backfillPlan(tool, new Date());
    if (plan.kind !== 'write') return 'a backfill write for a legacy tool';
    try {
      // As the migrations send it: an unordered bulk, whose statements the driver also checks against the limit.
      await scratch.bulkWrite([{ updateOne: { filter: plan.write.filter, update: plan.write.update } }], { ordered: false });
      return 'refusing a write that takes a document past 16 MB (it accepted one)';
    } catch {
      return undefined;
    }
  } finally {
    await scratch.drop().catch(() => undefined);
  }
}

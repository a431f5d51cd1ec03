import { type ReturnModelType } from '@typegoose/typegoose';
import type mongoose from 'mongoose';
import { SyncArgumentError } from '../errors.js';
import { type Tool } from '../tool.js';
import { filterNamesSyncMetadata, isPlainObject, seededByFilter, setOnInsertBy } from './update-analysis.js';

type ToolModelType = ReturnModelType<typeof Tool>;

/** What Mongoose runs when a query has `runValidators`: cast the update, then its validators. */
interface QueryValidation {
  _castUpdate(update: unknown): unknown;
  validate(castedUpdate: unknown, options: unknown, isOverwriting: boolean): Promise<void>;
}

function hasQueryValidation(query: object): query is QueryValidation {
  const candidate = query as Partial<QueryValidation>;
  return typeof candidate._castUpdate === 'function' && typeof candidate.validate === 'function';
}

/**
 * Casts and validates an update exactly as `updateOne(filter, update, { runValidators: true })`
 * does before it sends anything: Mongoose's own casting and update validators, on a query that
 * is never executed. `bulkWrite` casts its updates but does not validate them; this closes that gap.
 */
export async function validateUpdate(model: ToolModelType, filter: unknown, update: unknown, options: Record<string, unknown>): Promise<void> {
  if (Array.isArray(update)) return; // Mongoose validates no pipeline, on any path
  const query = model.updateOne(filter as mongoose.QueryFilter<Tool>, update as mongoose.UpdateQuery<Tool>, { ...options, runValidators: true });
  if (!hasQueryValidation(query)) throw new Error('tool-sync: this version of Mongoose has no query validation to run bulkWrite updates through');
  const casted = query._castUpdate(query.getUpdate());
  await query.validate(casted, query.getOptions(), false);
}

/** The business fields a new tool cannot be created without. */
function requiredFields(model: ToolModelType): string[] {
  return (model.schema as mongoose.Schema).requiredPaths().filter((path) => !path.includes('.') && path !== 'syncMetadata');
}

/**
 * An upsert may create a tool: it must not seed sync state from its filter, and it must give
 * every required field (in its filter's equality conditions, `$set`, `$setOnInsert` or a
 * pipeline `$set`), whose values are validated like any other. Checked before anything is sent.
 */
export async function checkUpsert(model: ToolModelType, filter: unknown, update: unknown, options: Record<string, unknown>): Promise<void> {
  const syncPath = filterNamesSyncMetadata(filter);
  if (syncPath !== undefined) {
    throw new SyncArgumentError('filter', syncPath, 'no syncMetadata condition in an upsert: the server would seed the new tool with it');
  }
  const dotted = Object.keys(isPlainObject(filter) ? filter : {}).find((key) => !key.startsWith('$') && key.includes('.'));
  if (dotted !== undefined) {
    throw new SyncArgumentError('filter', dotted, 'no condition on a nested path in an upsert: the server would seed the new tool with it, unvalidated');
  }
  const seeded = seededByFilter(filter);
  const given = new Set([...Object.keys(seeded), ...setOnInsertBy(update)]);
  const missing = requiredFields(model).filter((field) => !given.has(field));
  if (missing.length > 0) {
    throw new SyncArgumentError('upsert', missing, `the required fields of a new tool (${requiredFields(model).join(', ')}) in the filter, $set or $setOnInsert`);
  }
  // Values the filter seeds are validated as the update's own `$setOnInsert` would be.
  const written = setOnInsertBy(update);
  const onlySeeded = Object.fromEntries(Object.entries(seeded).filter(([field]) => !written.has(field) && field !== '_id'));
  if (Object.keys(onlySeeded).length > 0) await validateUpdate(model, {}, { $setOnInsert: onlySeeded }, { ...options, upsert: true });
}

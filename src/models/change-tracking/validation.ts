import { type ReturnModelType } from '@typegoose/typegoose';
import mongoose from 'mongoose';
import { SyncArgumentError } from '../errors.js';
import { type Tool } from '../tool.js';
import { filterNamesSyncMetadata, isPlainObject, type SeedCandidate, seedCandidates, seededByFilter, setOnInsertBy } from './update-analysis.js';

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
 * The values an upsert's filter may seed, as rounds of `$setOnInsert`s: a field compared with
 * several values is validated once per value (one update cannot set a field twice).
 */
function seedRounds(candidates: SeedCandidate[]): Record<string, unknown>[] {
  const rounds: Record<string, unknown>[] = [];
  const taken = new Map<string, number>();
  for (const { path, value } of candidates) {
    const round = taken.get(path) ?? 0;
    taken.set(path, round + 1);
    rounds[round] ??= {};
    Object.defineProperty(rounds[round], path, { value, enumerable: true, writable: true, configurable: true });
  }
  return rounds;
}

/**
 * An upsert may create a tool: it must not seed sync state or a nested path from its filter, and
 * it must give every required field (in its filter's equality conditions, `$set`, `$setOnInsert`
 * or a pipeline `$set`). Every value its filter may seed (see `seedCandidates`) is validated like
 * the update's own `$setOnInsert`, unless the update sets that field itself. Checked before
 * anything is sent.
 */
export async function checkUpsert(model: ToolModelType, filter: unknown, update: unknown, options: Record<string, unknown>): Promise<void> {
  const syncPath = filterNamesSyncMetadata(filter);
  if (syncPath !== undefined) {
    throw new SyncArgumentError('filter', syncPath, 'no syncMetadata condition in an upsert: the server would seed the new tool with it');
  }
  const candidates = seedCandidates(filter);
  const dotted = Object.keys(isPlainObject(filter) ? filter : {}).find((key) => !key.startsWith('$') && key.includes('.'))
    ?? candidates.find(({ path }) => path.includes('.'))?.path;
  if (dotted !== undefined) {
    throw new SyncArgumentError('filter', dotted, 'no condition on a nested path in an upsert: the server would seed the new tool with it, unvalidated');
  }
  const written = setOnInsertBy(update);
  const given = new Set([...Object.keys(seededByFilter(filter)), ...written]);
  const missing = requiredFields(model).filter((field) => !given.has(field));
  if (missing.length > 0) {
    throw new SyncArgumentError('upsert', missing, `the required fields of a new tool (${requiredFields(model).join(', ')}) in the filter, $set or $setOnInsert`);
  }
  const seeded = candidates.filter(({ path }) => !written.has(path) && path !== '_id');
  for (const round of seedRounds(seeded)) {
    try {
      await validateUpdate(model, {}, { $setOnInsert: round }, { ...options, upsert: true });
    } catch (error) {
      if (error instanceof mongoose.Error.ValidationError) error.message = `filter (an upsert seeds the new tool with its equality conditions): ${error.message}`;
      throw error;
    }
  }
}

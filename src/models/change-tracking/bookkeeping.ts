import { type Types } from 'mongoose';
import { LAST_MODIFIED_FIELDS, METADATA_UPDATED_AT, PENDING_HASH_CHECK } from '../../sync/sync-state.js';
import { BUSINESS_FIELDS } from '../tool-vocabulary.js';
import { asPaths, isPlainObject, type UpdateAnalysis } from './update-analysis.js';

/**
 * The package's additions to a user's write: `syncMetadata.updatedAt`, the business fields it
 * names (`lastModifiedFields`), and, when it may change content, the token of a pending hash
 * check. They go into the same single-document update, so they land with the write or not at all.
 */
export function bookkeepingFor(analysis: UpdateAnalysis, token: Types.ObjectId | null, now: Date): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  if (analysis.businessFields.length === 0 && token === null) return set;
  set[METADATA_UPDATED_AT] = now;
  if (analysis.businessFields.length > 0) set[LAST_MODIFIED_FIELDS] = analysis.businessFields;
  if (token !== null) set[PENDING_HASH_CHECK] = token;
  return set;
}

/** The user's update with the package's `$set` added: to its `$set`, or as a last pipeline stage. */
export function withBookkeeping(update: unknown, additions: Record<string, unknown>): unknown {
  if (Object.keys(additions).length === 0) return update;
  if (Array.isArray(update)) {
    // Pipeline values are expressions: literals keep arrays and dates as they are.
    const stage = Object.fromEntries(Object.entries(additions).map(([path, value]) => [path, { $literal: value }]));
    return [...(update as unknown[]), { $set: stage }];
  }
  const operators = isPlainObject(update) ? { ...update } : {};
  // A malformed `$set` is left for Mongoose to refuse, as it would without this package.
  if (operators.$set !== undefined && !isPlainObject(operators.$set)) return update;
  const userSet = isPlainObject(operators.$set) ? operators.$set : {};
  operators.$set = { ...userSet, ...additions };
  return operators;
}

/**
 * A replacement as an update that leaves `syncMetadata` where it is: every field of the
 * replacement is set and every business field it lacks is removed, so the business fields end
 * exactly as a replacement leaves them, and the stored sync state is then transitioned like an
 * edit's.
 */
export function replacementAsUpdate(replacement: unknown): Record<string, unknown> {
  const document = asPaths(replacement);
  const $set: Record<string, unknown> = {};
  // `_id` stays: the server refuses a different one on a match, and an upsert inserts with it.
  for (const [key, value] of Object.entries(isPlainObject(document) ? document : {})) {
    if (value !== undefined) Object.defineProperty($set, key, { value, enumerable: true, writable: true, configurable: true });
  }
  const $unset: Record<string, ''> = {};
  for (const field of BUSINESS_FIELDS) if (!(field in $set)) $unset[field] = '';
  return Object.keys($unset).length === 0 ? { $set } : { $set, $unset };
}

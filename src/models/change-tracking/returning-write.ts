import { type mongo, type Query } from 'mongoose';
import { type StoredTool } from '../../sync/stored-tool.js';
import { isPlainObject } from './update-analysis.js';

/**
 * A single-document write that may change content returns what the server stored, so that
 * its settle plans from that instead of reading the tool again: two commands, not three.
 * - `updateOne` reaches the server as `findAndModify` with the caller's filter, update and
 *   options (the same single-document update), asked for the stored tool; the caller gets
 *   updateOne's result.
 * - `findOneAndUpdate` asked for the whole tool after the write already returns it.
 * Either way the write is the caller's; only what comes back is looked at.
 */

type ToolQuery = Query<unknown, unknown>;
type Options = Record<string, unknown>;

/** What came back: the tool as stored after the write, or that the write reached no tool. */
export type Returned = { kind: 'stored'; tool: StoredTool } | { kind: 'none' };

const returnedByQuery = new WeakMap<ToolQuery, Returned>();

/** What the query's write returned, once it has run (undefined when it was not asked or failed). */
export function takeReturned(query: ToolQuery): Returned | undefined {
  const returned = returnedByQuery.get(query);
  returnedByQuery.delete(query);
  return returned;
}

interface ModifyResult {
  value?: unknown;
  lastErrorObject?: { n?: unknown; upserted?: unknown };
}

function remember(query: ToolQuery, value: unknown, upsert: boolean): void {
  if (isPlainObject(value) && value._id !== undefined) returnedByQuery.set(query, { kind: 'stored', tool: value as StoredTool });
  else if (value === null && !upsert) returnedByQuery.set(query, { kind: 'none' });
}

/** updateOne's result, from findAndModify's: the write changes the tool whenever it matches (the package's bookkeeping). */
function asUpdateResult(result: ModifyResult): mongo.UpdateResult {
  const upsertedId = (result.lastErrorObject?.upserted ?? null) as mongo.ObjectId | null;
  const matched = upsertedId === null && (result.value ?? null) !== null ? 1 : 0;
  return { acknowledged: true, matchedCount: matched, modifiedCount: matched, upsertedCount: upsertedId === null ? 0 : 1, upsertedId };
}

/**
 * When updateOne goes as it was sent, settled by its token: with a `sort` (which findAndModify
 * takes on every server, and update only on MongoDB 8 and later: the server is left to refuse it
 * where it does), or with a `hint` (which some engines refuse on findAndModify: FerretDB 2 has not
 * implemented it). Unacknowledged writes never get here (see write-concern.ts).
 */
const goesAsSent = (options: Options): boolean => options.sort !== undefined || options.hint !== undefined;

type CollectionWrite = (filter: unknown, update: unknown, options: Options) => Promise<unknown>;
interface WriteMethods { updateOne: CollectionWrite; findOneAndUpdate: CollectionWrite }

/**
 * Makes the query's write return what the server stored (see above). Mongoose calls its
 * collection's method with the cast filter, update and options; this query's collection is the
 * model's with that one method wrapped.
 */
export function returnStoredTool(query: ToolQuery, op: 'updateOne' | 'findOneAndUpdate'): void {
  const writable = query as unknown as { mongooseCollection: WriteMethods };
  const collection = writable.mongooseCollection;
  const findOneAndUpdate = collection.findOneAndUpdate.bind(collection);
  const wrapped: CollectionWrite = op === 'updateOne'
    ? async (filter, update, options) => {
      // Goes as sent (see goesAsSent), and is settled by its token.
      if (goesAsSent(options)) return collection.updateOne(filter, update, options);
      // A query's projection means nothing to an update (the driver's updateOne drops it): not asked of findAndModify.
      const { projection: _projection, fields: _fields, ...updateOptions } = options;
      const result = await findOneAndUpdate(filter, update, {
        ...updateOptions, returnDocument: 'after', includeResultMetadata: true,
      }) as ModifyResult;
      remember(query, result.value ?? null, options.upsert === true);
      return asUpdateResult(result);
    }
    : async (filter, update, options) => {
      const result = await findOneAndUpdate(filter, update, options);
      const whole = options.returnDocument === 'after' && (options.projection === undefined || options.projection === null);
      const value = options.includeResultMetadata === true ? (result as ModifyResult | null)?.value ?? null : result;
      if (whole || value === null) remember(query, value, options.upsert === true);
      return result;
    };
  writable.mongooseCollection = Object.create(collection, { [op]: { value: wrapped } }) as WriteMethods;
}

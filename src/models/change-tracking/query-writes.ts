import { type ReturnModelType } from '@typegoose/typegoose';
import mongoose, { type Query, Types } from 'mongoose';
import { type StoredTool } from '../../sync/stored-tool.js';
import { PENDING_HASH_CHECK, SYNC_METADATA } from '../../sync/sync-state.js';
import { type Tool } from '../tool.js';
import { bookkeepingFor, replacementAsUpdate, withBookkeeping } from './bookkeeping.js';
import { unmarkSyncMetadata } from './document-writes.js';
import { returnStoredTool, takeReturned } from './returning-write.js';
import { settleAfterWrite, settleStoredTools } from './settle-after-write.js';
import { analyzeReplacement, analyzeUpdate, isPlainObject, plainUpdate } from './update-analysis.js';
import { checkUpsert } from './validation.js';
import { SyncArgumentError } from '../errors.js';

type ToolModelType = ReturnModelType<typeof Tool>;
type ToolQuery = Query<unknown, unknown>;

export const UPDATE_OPERATIONS = ['updateOne', 'updateMany', 'findOneAndUpdate'] as const;
export const REPLACE_OPERATIONS = ['replaceOne', 'findOneAndReplace'] as const;

/** The pending hash check each query's write carries, from its pre hook to its post hook. */
const pendingChecks = new WeakMap<ToolQuery, Types.ObjectId>();

const modelOf = (query: ToolQuery): ToolModelType => query.model as unknown as ToolModelType;

/**
 * Before an update is sent: refuse a `syncMetadata` path, check an upsert, add the package's
 * bookkeeping to the update, and run validators unless the caller said otherwise. The filter,
 * the update's own operators or stages, and every option reach the server as they were given.
 */
export function beforeQueryUpdate(op: (typeof UPDATE_OPERATIONS)[number]) {
  return async function addBookkeeping(this: ToolQuery): Promise<void> {
    const update = plainUpdate(this.getUpdate());
    const analysis = analyzeUpdate(update);
    const options = this.getOptions() as Record<string, unknown>;
    const upsert = options.upsert === true;
    if (upsert) await checkUpsert(modelOf(this), this.getFilter(), update, options);
    // An upsert may insert a tool, whose metadata the settle completes.
    const token = analysis.mayChangeContent || upsert ? new Types.ObjectId() : null;
    this.setUpdate(withBookkeeping(update, bookkeepingFor(analysis, token, new Date())) as mongoose.UpdateQuery<unknown>);
    if (options.runValidators === undefined) this.setOptions({ runValidators: true });
    if (token === null) return;
    pendingChecks.set(this, token);
    if (op !== 'updateMany') returnStoredTool(this, op);
  };
}

type Transform = (result: unknown) => unknown;

/** The post-processing a query builder queued (`orFail()`, `transform()`), kept by Mongoose on the query. */
function transformsOf(query: ToolQuery): Transform[] {
  const queued = (query as unknown as { _transforms?: unknown })._transforms;
  return Array.isArray(queued) ? queued.filter((item): item is Transform => typeof item === 'function') : [];
}

/**
 * A replacement would drop the stored sync state with the rest of the document. It is carried
 * out as the update that leaves the same business fields (see `replacementAsUpdate`), through
 * the same model method's update twin and these same hooks, and its result is returned as is.
 */
export function beforeQueryReplace(op: (typeof REPLACE_OPERATIONS)[number]) {
  return async function replaceAsUpdate(this: ToolQuery): Promise<void> {
    const replacement = this.getUpdate() as unknown;
    analyzeReplacement(replacement);
    const model = modelOf(this);
    const update = replacementAsUpdate(replacement);
    const options = { ...(this.getOptions() as Record<string, unknown>) };
    let result: unknown = op === 'replaceOne'
      ? await model.updateOne(this.getFilter(), update, options)
      : await model.findOneAndUpdate(this.getFilter(), update, { ...options, projection: this.projection(), lean: this.mongooseOptions().lean });
    // What the query builder adds after a result (`orFail()`, `transform()`): Mongoose skips it for a
    // replaced result, so it is applied here.
    for (const transform of transformsOf(this)) result = transform(result);
    // Mongoose's documented way for a pre hook to replace the operation with its own result.
    // eslint-disable-next-line @typescript-eslint/only-throw-error
    throw mongoose.skipMiddlewareFunction(result);
  };
}

/** The tool a findOneAndUpdate returned, hydrated or lean, inside its result metadata or not. */
function returnedTool(result: unknown): Record<string, unknown> | mongoose.Document | undefined {
  const value = isPlainObject(result) && 'lastErrorObject' in result ? result.value : result;
  if (value instanceof mongoose.Document) return value;
  return isPlainObject(value) ? value : undefined;
}

/** A returned tool shows its settled sync state, as a later read would. */
function showSettled(result: unknown) {
  const returned = returnedTool(result);
  return (stored: StoredTool): void => {
    if (returned === undefined || String(returned._id) !== String(stored._id)) return;
    if (returned instanceof mongoose.Document) {
      if (!returned.isSelected(SYNC_METADATA)) return;
      returned.set(SYNC_METADATA, stored.syncMetadata);
      unmarkSyncMetadata(returned);
    } else if (SYNC_METADATA in returned) {
      returned[SYNC_METADATA] = stored.syncMetadata;
    }
  };
}

interface ReturnOptions { new?: boolean; returnDocument?: 'before' | 'after'; returnOriginal?: boolean }

/** After the write (landed, or failed part way through an updateMany): settle the tools it marked. */
export async function afterQueryWrite(this: ToolQuery, result: unknown): Promise<void> {
  const token = pendingChecks.get(this);
  if (token === undefined) return;
  pendingChecks.delete(this);
  const options = this.getOptions() as ReturnOptions & { session?: mongoose.mongo.ClientSession | null };
  const returnsAfter = options.new === true || options.returnDocument === 'after' || options.returnOriginal === false;
  const onSettled = returnsAfter ? showSettled(result) : undefined;
  const returned = takeReturned(this);
  if (returned?.kind === 'none') return;
  if (returned?.kind === 'stored') {
    await settleStoredTools(modelOf(this), [returned.tool], options.session, onSettled);
    return;
  }
  // A filter naming its `_id` names the only tool the write can have reached: the read is by `_id` too.
  const id = (this.getFilter() as { _id?: unknown })._id;
  const named = id instanceof Types.ObjectId ? { _id: id } : typeof id === 'string' && /^[0-9a-f]{24}$/i.test(id) ? { _id: new Types.ObjectId(id) } : {};
  await settleAfterWrite(modelOf(this), { ...named, [PENDING_HASH_CHECK]: token }, options.session, onSettled);
}

/**
 * The error reaches the caller as it is, the tools the write did reach (an updateMany part way)
 * settled first; but for one: a tool stored with `syncMetadata: null` (legacy data) cannot take
 * the package's bookkeeping (the server cannot create a field inside null), and the caller is
 * told what to do about it.
 */
export async function afterQueryWriteError(this: ToolQuery, error: unknown): Promise<void> {
  // Refused by Mongoose before anything was sent: nothing to settle.
  const unsent = error instanceof mongoose.Error.ValidationError || error instanceof mongoose.Error.CastError || error instanceof SyncArgumentError;
  if (unsent) pendingChecks.delete(this);
  else await afterQueryWrite.call(this, undefined);
  const message = error instanceof Error ? error.message : '';
  if (message.includes('syncMetadata: null')) {
    throw new SyncArgumentError('syncMetadata', null, `an object on every tool the write matches (run \`tool-sync backfill\` on legacy data first); the server said: ${message}`);
  }
}

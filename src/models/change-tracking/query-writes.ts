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
import { describeValue, SyncArgumentError } from '../errors.js';
import { refuseUnacknowledged } from './write-concern.js';

type ToolModelType = ReturnModelType<typeof Tool>;
type ToolQuery = Query<unknown, unknown>;

export const UPDATE_OPERATIONS = ['updateOne', 'updateMany', 'findOneAndUpdate'] as const;
export const REPLACE_OPERATIONS = ['replaceOne', 'findOneAndReplace'] as const;

/** The pending hash check each query's write carries, from its pre hook to its post hook. */
const pendingChecks = new WeakMap<ToolQuery, Types.ObjectId>();

/** Queries whose update carries the package's bookkeeping (it cannot land on `syncMetadata: null`). */
const bookkept = new WeakSet<ToolQuery>();

const modelOf = (query: ToolQuery): ToolModelType => query.model as unknown as ToolModelType;
const collectionOf = (query: ToolQuery): unknown => (query as unknown as { mongooseCollection?: unknown }).mongooseCollection;

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
    if (token !== null) refuseUnacknowledged(options, collectionOf(this), 'a write that may change content (or insert a tool)');
    const additions = bookkeepingFor(analysis, token, new Date());
    if (Object.keys(additions).length > 0) bookkept.add(this);
    this.setUpdate(withBookkeeping(update, additions) as mongoose.UpdateQuery<unknown>);
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
 * A tool the write matched that is stored with `syncMetadata: null` (legacy data): the server
 * cannot create the package's bookkeeping inside null, and refuses the write. Found by reading
 * the stored tools, not by the server's message (each engine words it otherwise).
 */
async function nullMetadataMatched(query: ToolQuery): Promise<string | undefined> {
  const model = modelOf(query);
  const options = query.getOptions() as { session?: mongoose.mongo.ClientSession; collation?: mongoose.mongo.CollationOptions };
  // Cast as Mongoose cast it for the write, so that the read matches the tools the write did.
  const filter = query.cast(query.model, query.getFilter()) as mongoose.mongo.Filter<mongoose.mongo.Document>;
  const found = await model.collection.findOne(
    { $and: [filter, { [SYNC_METADATA]: { $type: 'null' } }] },
    { projection: { _id: 1 }, session: options.session, collation: options.collation },
  );
  return found === null ? undefined : describeValue(found._id);
}

/**
 * The error reaches the caller as it is, the tools the write did reach (an updateMany part way)
 * settled first; but for one: a write carrying the package's bookkeeping that the server refused
 * because it matched a tool stored with `syncMetadata: null` is reported as what to do about it.
 */
export async function afterQueryWriteError(this: ToolQuery, error: unknown): Promise<void> {
  // Refused by Mongoose before anything was sent: nothing to settle.
  const unsent = error instanceof mongoose.Error.ValidationError || error instanceof mongoose.Error.CastError || error instanceof SyncArgumentError;
  const carried = bookkept.has(this);
  bookkept.delete(this);
  if (unsent) pendingChecks.delete(this);
  else await afterQueryWrite.call(this, undefined);
  if (unsent || !carried || !(error instanceof mongoose.mongo.MongoServerError)) return;
  const legacy = await nullMetadataMatched(this).catch(() => undefined);
  if (legacy === undefined) return;
  throw new SyncArgumentError(
    'syncMetadata',
    null,
    `an object on every tool the write matches (tool ${legacy} has none: run \`tool-sync backfill\` on legacy data first); the server refused the write (code ${String(error.code)})`,
  );
}

import { type ReturnModelType } from '@typegoose/typegoose';
import mongoose, { Types } from 'mongoose';
import { PENDING_HASH_CHECK } from '../../sync/sync-state.js';
import { type Tool } from '../tool.js';
import { bookkeepingFor, replacementAsUpdate, withBookkeeping } from './bookkeeping.js';
import { settleAfterWrite } from './settle-after-write.js';
import { tombstonesForBulk } from './delete-writes.js';
import { retireLiving } from '../tombstones.js';
import { analyzeReplacement, analyzeUpdate, isPlainObject, plainUpdate, refuseSyncMetadataInput } from './update-analysis.js';
import { SyncArgumentError } from '../errors.js';
import { checkUpsert, validateUpdate } from './validation.js';

export type ToolModelType = ReturnModelType<typeof Tool>;
type Operation = Record<string, unknown>;
type BulkOptions = mongoose.mongo.BulkWriteOptions & mongoose.MongooseBulkWriteOptions;

/** Options objects of the bulk writes this hook sends itself: they pass through untouched. */
const ownBulkWrites = new WeakSet();

const UPDATE_KINDS = ['updateOne', 'updateMany'] as const;
/** Per-operation settings of an update that also govern its validation. */
const VALIDATION_SETTINGS = ['upsert', 'arrayFilters', 'strict'] as const;

interface Prepared { operation: Operation; marksContent: boolean }

/**
 * One operation, checked and given the package's bookkeeping, before anything is sent. An
 * update is validated as `updateOne` validates it; a replacement becomes the update that leaves
 * the same business fields; inserts are validated by Mongoose with the document hooks; deletes
 * pass as they are. Malformed operations pass as they are too, for Mongoose and the server to refuse.
 */
async function prepare(model: ToolModelType, operation: Operation, index: number, token: Types.ObjectId, now: Date): Promise<Prepared> {
  const kinds = Object.keys(operation);
  if (kinds.length !== 1) {
    throw new SyncArgumentError(`operations[${index}]`, kinds, 'exactly one of insertOne, updateOne, updateMany, replaceOne, deleteOne, deleteMany');
  }
  const [kind, body] = Object.entries(operation)[0] ?? [];
  const at = `operations[${index}].${String(kind)}`;
  if (kind === 'insertOne' && isPlainObject(body)) refuseSyncMetadataInput(body.document, `${at}.document`);
  let updateKind: (typeof UPDATE_KINDS)[number] | undefined = UPDATE_KINDS.find((candidate) => candidate === kind);
  let update: unknown = isPlainObject(body) ? plainUpdate(body.update) : undefined;
  if (kind === 'replaceOne' && isPlainObject(body) && body.replacement !== undefined) {
    analyzeReplacement(body.replacement, `${at}.replacement`);
    updateKind = 'updateOne';
    update = replacementAsUpdate(body.replacement);
  }
  if (updateKind === undefined || !isPlainObject(body) || body.filter === undefined || update === undefined) return { operation, marksContent: false };

  const analysis = analyzeUpdate(update, `${at}.update`);
  const settings = Object.fromEntries(VALIDATION_SETTINGS.filter((key) => body[key] !== undefined).map((key) => [key, body[key]]));
  if (body.upsert === true) await checkUpsert(model, body.filter, update, settings);
  try {
    await validateUpdate(model, body.filter, update, settings);
  } catch (error) {
    if (error instanceof Error) error.message = `${at}: ${error.message}`;
    throw error;
  }
  const marksContent = analysis.mayChangeContent || body.upsert === true;
  const rest = Object.fromEntries(Object.entries(body).filter(([key]) => key !== 'replacement'));
  const decorated = withBookkeeping(update, bookkeepingFor(analysis, marksContent ? token : null, now));
  return { operation: { [updateKind]: { ...rest, update: decorated } }, marksContent };
}

/**
 * `bulkWrite` goes to the server as one command, past query middleware. Every operation is
 * checked first (nothing is sent if one is refused); then the operations, with the package's
 * bookkeeping, are sent as one bulk write with the caller's options, and the tools marked by it
 * are settled afterwards, also when the bulk failed part way. Its result is returned as is.
 */
export async function beforeBulkWrite(this: ToolModelType, operations: Operation[], options?: BulkOptions): Promise<void> {
  if (options !== undefined && ownBulkWrites.has(options)) return;
  const token = new Types.ObjectId();
  const now = new Date();
  const prepared: Prepared[] = [];
  for (const [index, operation] of operations.entries()) prepared.push(await prepare(this, operation, index, token, now));
  const own: BulkOptions = { ...options };

  ownBulkWrites.add(own);
  const sent = prepared.map(({ operation }) => operation) as unknown as mongoose.AnyBulkWriteOperation<Tool>[];
  // The deletes' tombstones first: if they cannot be written, nothing is sent.
  const tombstoned = await tombstonesForBulk(this, operations, options?.session ?? undefined);
  let result: unknown;
  try {
    result = await this.bulkWrite(sent, own);
  } finally {
    if (prepared.some(({ marksContent }) => marksContent)) await settleAfterWrite(this, { [PENDING_HASH_CHECK]: token }, options?.session);
    for (const recorded of tombstoned) await retireLiving(this, recorded, options?.session ?? undefined);
  }
  // Mongoose's documented way for a pre hook to replace the operation with its own result.
  // eslint-disable-next-line @typescript-eslint/only-throw-error
  throw mongoose.skipMiddlewareFunction(result);
}

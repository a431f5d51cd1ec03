import { type ReturnModelType } from '@typegoose/typegoose';
import mongoose, { Types } from 'mongoose';
import { PENDING_HASH_CHECK } from '../../sync/sync-state.js';
import { type Tool } from '../tool.js';
import { bookkeepingFor, replacementAsUpdate, withBookkeeping } from './bookkeeping.js';
import { settleAfterWrite } from './settle-after-write.js';
import { tombstonesForBulk } from './delete-writes.js';
import { retireLiving } from '../tombstones.js';
import { analyzeReplacement, analyzeUpdate, isPlainObject, plainUpdate, refuseSyncMetadataInput } from './update-analysis.js';
import { hashNewTool, refuseUserSyncMetadata, type ToolDocument } from './document-writes.js';
import { bulkSaves, marksOf, withMarks } from './save-marks.js';
import { refuseUnacknowledged } from './write-concern.js';
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

/** Whether Mongoose validates an insert of this bulk with the document hooks (which refuse and hash). */
const mongooseValidates = (body: Operation, options: BulkOptions | undefined): boolean =>
  options?.skipValidation !== true && body.skipValidation !== true && (options as { _skipCastBulkWrite?: unknown } | undefined)?._skipCastBulkWrite !== true;

/**
 * An insert. Its input must not carry `syncMetadata` (as its own key, dotted or not, or as what
 * Mongoose reads from a class instance or a document). Where Mongoose will validate it, its
 * validation hook refuses forged metadata and hashes the tool; where it will not (`skipValidation`,
 * for the bulk or the operation, or no casting at all), the package's own guard runs anyway: the
 * tool is built as Mongoose builds it, checked, hashed, and inserted as built. A tool loaded from
 * the database is refused (it would be inserted with the sync state of the tool it was loaded as).
 */
async function prepareInsert(model: ToolModelType, body: Operation, at: string, options: BulkOptions | undefined): Promise<Prepared> {
  const input = body.document;
  const given = input instanceof mongoose.Document ? input : undefined;
  if (given !== undefined && !given.isNew) {
    throw new SyncArgumentError(`${at}.document`, String(given._id), 'a new tool (plain input or new ToolModel()), not one loaded from the database');
  }
  if (given === undefined) refuseSyncMetadataInput(input, `${at}.document`);
  if (given === undefined && mongooseValidates(body, options)) return { operation: { insertOne: body }, marksContent: false };
  const doc = (given ?? new model(input)) as ToolDocument;
  try {
    refuseUserSyncMetadata(doc);
  } catch (error) {
    if (error instanceof SyncArgumentError) error.message = `${at}.document.${error.message}`;
    throw error;
  }
  hashNewTool(doc);
  if (mongooseValidates(body, options)) await validateAt(doc.validate(), at);
  return { operation: { insertOne: { ...body, document: doc.toBSON(), skipValidation: true } }, marksContent: false };
}

/** A bulkSave's update of one of its documents: the document's save marks join it (see save-marks.ts). */
function prepareSaved(kind: string, body: Operation, at: string, options: BulkOptions | undefined): Prepared | undefined {
  const bulkSave = bulkSaves.getStore();
  if (bulkSave === undefined || kind !== 'updateOne' || (options as { _skipCastBulkWrite?: unknown } | undefined)?._skipCastBulkWrite !== true) return undefined;
  const doc = isPlainObject(body.filter) ? bulkSave.byId.get(String(body.filter._id)) : undefined;
  if (doc === undefined || !isPlainObject(body.update)) return undefined;
  // Mongoose validated the document (unless told not to), as for a save; only syncMetadata is refused here.
  analyzeUpdate(body.update, `${at}.update`);
  const marks = marksOf(doc);
  const update = marks === undefined ? body.update : withMarks(body.update, marks);
  return { operation: { updateOne: { ...body, update } }, marksContent: false };
}

async function validateAt(validation: Promise<unknown>, at: string): Promise<void> {
  try {
    await validation;
  } catch (error) {
    if (error instanceof Error) error.message = `${at}: ${error.message}`;
    throw error;
  }
}

/**
 * One operation, checked and given the package's bookkeeping, before anything is sent. An
 * update is validated as `updateOne` validates it; a replacement becomes the update that leaves
 * the same business fields; inserts are guarded as above; a bulkSave's updates carry their
 * documents' marks; deletes pass as they are. Malformed operations pass as they are too, for
 * Mongoose and the server to refuse.
 */
async function prepare(model: ToolModelType, operation: Operation, index: number, token: Types.ObjectId, now: Date, options: BulkOptions | undefined): Promise<Prepared> {
  const kinds = Object.keys(operation);
  if (kinds.length !== 1) {
    throw new SyncArgumentError(`operations[${index}]`, kinds, 'exactly one of insertOne, updateOne, updateMany, replaceOne, deleteOne, deleteMany');
  }
  const [kind, body] = Object.entries(operation)[0] ?? [];
  const at = `operations[${index}].${String(kind)}`;
  if (kind === 'insertOne' && isPlainObject(body)) return prepareInsert(model, body, at, options);
  const saved = isPlainObject(body) ? prepareSaved(String(kind), body, at, options) : undefined;
  if (saved !== undefined) return saved;
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
  await validateAt(validateUpdate(model, body.filter, update, settings), at);
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
  for (const [index, operation] of operations.entries()) prepared.push(await prepare(this, operation, index, token, now, options));
  const deletes = operations.some((operation) => 'deleteOne' in operation || 'deleteMany' in operation);
  if (deletes || prepared.some(({ marksContent }) => marksContent)) {
    refuseUnacknowledged(options, this.collection, 'a bulkWrite that may change content, insert a tool by upsert, or delete tools');
  }
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

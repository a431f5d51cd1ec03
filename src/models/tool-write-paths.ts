import { type DocumentType, type ReturnModelType } from '@typegoose/typegoose';
import mongoose, { type Query, Types } from 'mongoose';
import { CONTENT_FIELDS } from '../sync/collection-fields.js';
import { type ToolContent } from '../sync/content-hash.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncStatus } from '../sync/vocabulary.js';
import { SyncConflictError } from './errors.js';
import { contentAsRead, statusesAsRead } from './sync-conditions.js';
import { type Tool } from './tool.js';
import { BUSINESS_FIELDS } from './tool-vocabulary.js';
import { applyUpdate, fieldsWrittenBy, operatorsOf } from './update-operators.js';

/**
 * Every query write path Mongoose offers on the model keeps sync metadata true. An update that
 * writes content (or sync metadata) cannot be sent as it is: its new hashes, and the transition
 * of each collection, depend on what is stored. So it is carried out document by document: read,
 * apply the update in memory, and save through the document path (which hashes, transitions and
 * validates) on the condition that nothing it was based on has changed meanwhile; retried if it
 * has. Other updates go to the server as they are, with validators on.
 */

type ToolModelType = ReturnModelType<typeof Tool>;
type ToolDocument = DocumentType<Tool>;
type Raw = Record<string, unknown> & { _id: Types.ObjectId };
type UpdateDocument = Record<string, unknown>;

export const QUERY_WRITE_OPERATIONS = ['updateOne', 'updateMany', 'findOneAndUpdate', 'replaceOne', 'findOneAndReplace'] as const;
type WriteOperation = (typeof QUERY_WRITE_OPERATIONS)[number];

const ROUTED_FIELDS = new Set<string>([...CONTENT_FIELDS, 'syncMetadata']);
const BUSINESS = new Set<string>(BUSINESS_FIELDS);
const MAX_ATTEMPTS = 50;

interface WriteOptions {
  upsert?: boolean;
  sort?: unknown;
  timestamps?: boolean;
  new?: boolean;
  returnDocument?: 'before' | 'after';
  returnOriginal?: boolean;
  lean?: unknown;
  includeResultMetadata?: boolean;
  projection?: mongoose.ProjectionType<Tool> | null;
}

const isReplacement = (op: WriteOperation): boolean => op === 'replaceOne' || op === 'findOneAndReplace';

/** Whether a write must go through the document path to keep sync metadata true. */
export function needsDocumentPath(op: WriteOperation, update: UpdateDocument): boolean {
  if (isReplacement(op)) return true;
  return [...fieldsWrittenBy(update)].some((field) => ROUTED_FIELDS.has(field));
}

/** Puts a replacement's business fields (and metadata, if it has any) on a loaded document. */
function applyReplacement(doc: ToolDocument, replacement: UpdateDocument): void {
  for (const field of BUSINESS_FIELDS) doc.set(field, replacement[field]);
  if (replacement.syncMetadata !== undefined) doc.set('syncMetadata', replacement.syncMetadata);
}

/**
 * What the in-memory update was based on: the four statuses (the overall status depends on
 * nothing else), every content field (the hashes depend on all of them) and every field the
 * update writes, as stored. The save only matches if all are still so, which is why a save
 * from here needs no reconciliation afterwards.
 */
function unchangedSince(raw: Raw, written: Set<string>): Record<string, unknown> {
  const collections = (raw.syncMetadata as { collections?: Partial<Record<SyncCollectionName, { status?: SyncStatus }>> } | undefined)?.collections;
  const statuses = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, collections?.[name]?.status ?? null])) as Record<SyncCollectionName, SyncStatus | null>;
  const where: Record<string, unknown> = { ...statusesAsRead(statuses), ...contentAsRead(raw as ToolContent) };
  for (const field of written) {
    if (BUSINESS.has(field)) where[field] = raw[field] ?? null;
  }
  return where;
}

interface Outcome { before: Raw; after: ToolDocument; modified: boolean }

/** The `_id` a filter names by plain equality (`{ _id: x, … }`), if it names one. */
function namedId(filter: Record<string, unknown>): Types.ObjectId | undefined {
  const value = filter._id;
  if (value instanceof Types.ObjectId) return value;
  return typeof value === 'string' && Types.ObjectId.isValid(value) && value.length === 24 ? new Types.ObjectId(value) : undefined;
}

/**
 * The filter narrowed to one document, keeping `_id` a top-level equality: FerretDB pushes only
 * that down to its SQL backend and decodes the whole collection for anything else (`$and` too).
 */
function narrowedTo(filter: Record<string, unknown>, id: Types.ObjectId): Record<string, unknown> {
  if (!('_id' in filter) || namedId(filter)?.equals(id) === true) return { ...filter, _id: id };
  return { $and: [filter, { _id: id }] };
}

/** One document through the document path, retried while concurrent writes invalidate it. */
async function writeOne(
  model: ToolModelType,
  id: Types.ObjectId,
  filter: Record<string, unknown>,
  update: UpdateDocument,
  op: WriteOperation,
  options: WriteOptions,
): Promise<Outcome | undefined> {
  const written = isReplacement(op) ? new Set<string>(BUSINESS_FIELDS) : fieldsWrittenBy(update);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
    const raw = await model.findOne(narrowedTo(filter, id)).lean<Raw>();
    if (raw === null) return undefined;
    const doc = model.hydrate(raw);
    if (isReplacement(op)) applyReplacement(doc, update);
    else applyUpdate(doc, update, { inserting: false });
    if (!doc.isModified()) return { before: raw, after: doc, modified: false };
    doc.$where = unchangedSince(raw, written);
    doc.$locals.savedAsRead = true;
    try {
      await doc.save({ timestamps: options.timestamps ?? true });
      return { before: raw, after: doc, modified: true };
    } catch (error) {
      // Mongoose reports an unmatched save as VersionError when `__v` was part of its filter.
      if (!(error instanceof mongoose.Error.DocumentNotFoundError || error instanceof mongoose.Error.VersionError)) throw error;
    }
  }
  throw new SyncConflictError(`${op} of tool ${id.toHexString()}: it kept changing under ${MAX_ATTEMPTS} attempts; try again`);
}

/** The fields an upsert starts from: the filter's plain equality conditions on top-level fields. */
function equalityFields(filter: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(filter)) {
    if (key.startsWith('$') || key.includes('.')) continue;
    if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) fields[key] = value;
    else if ('$eq' in value) fields[key] = value.$eq;
  }
  return fields;
}

async function upsert(model: ToolModelType, filter: Record<string, unknown>, update: UpdateDocument, op: WriteOperation): Promise<ToolDocument> {
  const doc = new model(equalityFields(filter));
  if (isReplacement(op)) applyReplacement(doc, update);
  else applyUpdate(doc, update, { inserting: true });
  await doc.save();
  return doc;
}

async function matchingIds(model: ToolModelType, op: WriteOperation, filter: Record<string, unknown>, options: WriteOptions): Promise<Types.ObjectId[]> {
  // A filter naming its `_id` can only match that document; the read in writeOne checks the rest.
  const named = namedId(filter);
  if (named !== undefined) return [named];
  if (op === 'updateMany') return (await model.find(filter, { _id: 1 }).lean<{ _id: Types.ObjectId }[]>()).map((doc) => doc._id);
  const first = await model.findOne(filter, { _id: 1 }, { sort: options.sort }).lean<{ _id: Types.ObjectId }>();
  return first === null ? [] : [first._id];
}

/** Carries out a content write and returns what Mongoose would have returned for it. */
async function writeThroughDocuments(
  model: ToolModelType,
  op: WriteOperation,
  filter: Record<string, unknown>,
  update: UpdateDocument,
  options: WriteOptions,
): Promise<unknown> {
  let matchedCount = 0;
  let modifiedCount = 0;
  let last: Outcome | undefined;
  for (const id of await matchingIds(model, op, filter, options)) {
    const outcome = await writeOne(model, id, filter, update, op, options);
    if (outcome === undefined) continue;
    matchedCount += 1;
    if (outcome.modified) modifiedCount += 1;
    last = outcome;
  }
  let upserted: ToolDocument | undefined;
  if (matchedCount === 0 && options.upsert === true) upserted = await upsert(model, filter, update, op);

  if (op === 'findOneAndUpdate' || op === 'findOneAndReplace') {
    const returnAfter = options.new === true || options.returnDocument === 'after' || options.returnOriginal === false;
    const id = upserted?._id ?? last?.after._id;
    let value: unknown = null;
    if (returnAfter && id !== undefined) {
      const query = model.findById(id, options.projection);
      value = options.lean !== undefined && options.lean !== false ? await query.lean() : await query;
    } else if (!returnAfter && last !== undefined) {
      value = options.lean !== undefined && options.lean !== false ? last.before : model.hydrate(last.before);
    }
    if (options.includeResultMetadata !== true) return value;
    return { value, ok: 1, lastErrorObject: { n: matchedCount + (upserted === undefined ? 0 : 1), updatedExisting: matchedCount > 0, ...(upserted === undefined ? {} : { upserted: upserted._id }) } };
  }
  return {
    acknowledged: true,
    matchedCount,
    modifiedCount,
    upsertedCount: upserted === undefined ? 0 : 1,
    upsertedId: upserted?._id ?? null,
  };
}

/** Query middleware for one update or replace operation of the model. */
function routeQueryWrite(op: WriteOperation) {
  return async function route(this: Query<unknown, ToolDocument>): Promise<void> {
    const update = (this.getUpdate() ?? {}) as UpdateDocument;
    if (!needsDocumentPath(op, update)) {
      const businessFields = [...fieldsWrittenBy(update)].filter((field) => BUSINESS.has(field));
      if (businessFields.length > 0) {
        const operators = operatorsOf(update);
        operators.$set = { ...operators.$set, 'syncMetadata.lastModifiedFields': businessFields, 'syncMetadata.updatedAt': new Date() };
        this.setUpdate(operators);
      }
      if (this.getOptions().runValidators === undefined) this.setOptions({ runValidators: true });
      return;
    }
    const model = this.model as unknown as ToolModelType;
    const options: WriteOptions = { ...(this.getOptions() as WriteOptions), projection: this.projection() };
    const result = await writeThroughDocuments(model, op, this.getFilter(), update, options);
    // Mongoose's documented way for a pre hook to replace the operation with its own result.
    // eslint-disable-next-line @typescript-eslint/only-throw-error
    throw mongoose.skipMiddlewareFunction(result);
  };
}

type BulkOperation = Record<string, Record<string, unknown>>;

function bulkNeedsDocumentPath(operation: BulkOperation): boolean {
  const [kind, body] = Object.entries(operation)[0] ?? [];
  if (kind === 'replaceOne') return true;
  if ((kind === 'updateOne' || kind === 'updateMany') && body !== undefined) return needsDocumentPath(kind, (body.update ?? {}) as UpdateDocument);
  return false;
}

/**
 * `bulkWrite` sends its operations straight to the server, past query middleware. When one of
 * them writes content, all of them are carried out in order through the model's own methods
 * (so each keeps sync metadata true), and the counts are summed into the same result shape.
 */
async function routeBulkWrite(this: ToolModelType, operations: BulkOperation[], options?: { ordered?: boolean }): Promise<void> {
  if (!operations.some(bulkNeedsDocumentPath)) return;
  const totals = { insertedCount: 0, matchedCount: 0, modifiedCount: 0, deletedCount: 0, upsertedCount: 0, insertedIds: {} as Record<number, unknown>, upsertedIds: {} as Record<number, unknown> };
  const errors: unknown[] = [];
  for (const [index, operation] of operations.entries()) {
    const [kind, body = {}] = Object.entries(operation)[0] ?? [];
    const filter = (body.filter ?? {}) as Record<string, unknown>;
    const opts = { upsert: body.upsert === true, ...(body.timestamps === false ? { timestamps: false } : {}) };
    try {
      switch (kind) {
        case 'insertOne': {
          const doc = await new this(body.document).save();
          totals.insertedCount += 1;
          totals.insertedIds[index] = doc._id;
          break;
        }
        case 'updateOne':
        case 'updateMany':
        case 'replaceOne': {
          const result = kind === 'replaceOne'
            ? await this.replaceOne(filter, body.replacement as UpdateDocument, opts)
            : await this[kind](filter, body.update as UpdateDocument, opts);
          totals.matchedCount += result.matchedCount;
          totals.modifiedCount += result.modifiedCount;
          totals.upsertedCount += result.upsertedCount;
          if (result.upsertedId !== null) totals.upsertedIds[index] = result.upsertedId;
          break;
        }
        case 'deleteOne':
        case 'deleteMany':
          totals.deletedCount += (await this[kind](filter)).deletedCount;
          break;
        default:
          throw new TypeError(`bulkWrite: unknown operation ${String(kind)}`);
      }
    } catch (error) {
      if (options?.ordered !== false) throw error;
      errors.push(error);
    }
  }
  if (errors.length > 0) throw errors[0];
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- as in routeQueryWrite
  throw mongoose.skipMiddlewareFunction({ ok: 1, ...totals });
}

/** The Mongoose plugin that routes the model's query and bulk write paths (applied to Tool). */
export function syncWritePathsPlugin(schema: mongoose.Schema): void {
  for (const op of QUERY_WRITE_OPERATIONS) schema.pre(op, { document: false, query: true }, routeQueryWrite(op));
  schema.pre('bulkWrite', async function bulkWrite(this: unknown, operations, options) {
    await routeBulkWrite.call(this as ToolModelType, operations as unknown as BulkOperation[], options);
  });
}

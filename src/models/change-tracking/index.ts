import type mongoose from 'mongoose';
import { type ToolModelType } from './bulk-write.js';
import { type ToolDocument } from './document-writes.js';
import { trackedBulkSave } from './bulk-save.js';
import { beforeBulkWrite } from './bulk-write.js';
import {
  afterDocumentDelete,
  afterQueryDelete,
  afterQueryDeleteError,
  beforeDocumentDelete,
  beforeQueryDelete,
  DELETE_OPERATIONS,
} from './delete-writes.js';
import {
  afterDocumentInit,
  afterDocumentSave,
  afterDocumentSaveError,
  beforeDocumentInit,
  beforeDocumentSave,
  beforeDocumentValidate,
  beforeInsertMany,
} from './document-writes.js';
import {
  afterQueryWrite,
  afterQueryWriteError,
  beforeQueryReplace,
  beforeQueryUpdate,
  REPLACE_OPERATIONS,
  UPDATE_OPERATIONS,
} from './query-writes.js';

/**
 * Change tracking: the hooks that keep sync metadata true on every write path of the model.
 * The server applies each write as the caller sent it; these hooks only add the package's
 * bookkeeping before it and settle the tools it marked after it.
 *
 * Registered:
 * - document `init` (pre): keep what was stored (a save settles from memory only if it was settled)
 * - document `init` (post): a loaded tool's defaults are not changes to save
 * - document `validate` (pre): refuse `syncMetadata` input; hash a new tool
 * - document `save` (pre): the same; mark an edit of a loaded tool
 * - document `save` (post, post error): settle the edited tool; forget a failed save's mark
 * - query `updateOne`, `updateMany`, `findOneAndUpdate` (pre): refuse `syncMetadata` paths,
 *   check upserts, add bookkeeping, validators on
 * - query `replaceOne`, `findOneAndReplace` (pre): carried out as the equivalent update
 * - query updates (post, post error): settle the tools the write marked
 * - model `insertMany` (pre): only new tools (a loaded one would carry its sync state along)
 * - query `deleteOne`, `deleteMany`, `findOneAndDelete` and document `deleteOne` (pre): a tombstone
 *   for each tool about to be deleted that has vectors; (post, post error) void those of tools left
 * - model `bulkWrite` (pre): check and decorate every operation, tombstone what its deletes may
 *   delete, send them as one bulk, settle
 * - static `bulkSave`: Mongoose's, run so that its bulkWrite carries each document's save marks;
 *   its tools settled together
 */
export function changeTrackingPlugin(schema: mongoose.Schema): void {
  schema.pre('init', beforeDocumentInit);
  schema.post('init', afterDocumentInit);
  // Mongoose's types leave out the documented `overwriteMiddlewareArguments` return of a pre hook.
  schema.pre('validate', beforeDocumentValidate as (this: ToolDocument, options?: Record<string, unknown>) => void);
  schema.pre('save', beforeDocumentSave);
  schema.post('save', afterDocumentSave);
  schema.post('save', { errorHandler: true }, afterDocumentSaveError);
  for (const op of UPDATE_OPERATIONS) {
    schema.pre(op, { document: false, query: true }, beforeQueryUpdate(op));
    schema.post(op, { document: false, query: true }, afterQueryWrite);
    schema.post(op, { document: false, query: true, errorHandler: true }, afterQueryWriteError);
  }
  for (const op of REPLACE_OPERATIONS) schema.pre(op, { document: false, query: true }, beforeQueryReplace(op));
  for (const op of DELETE_OPERATIONS) {
    schema.pre(op, { document: false, query: true }, beforeQueryDelete);
    schema.post(op, { document: false, query: true }, afterQueryDelete);
    schema.post(op, { document: false, query: true, errorHandler: true }, afterQueryDeleteError);
  }
  schema.pre('deleteOne', { document: true, query: false }, beforeDocumentDelete);
  schema.post('deleteOne', { document: true, query: false }, afterDocumentDelete);
  schema.pre('insertMany', function insertMany(this: unknown, documents: unknown) {
    beforeInsertMany(documents);
  });
  schema.static('bulkSave', trackedBulkSave);
  schema.pre('bulkWrite', async function bulkWrite(this: unknown, operations, options) {
    await beforeBulkWrite.call(this as ToolModelType, operations, options);
  });
}

import { type DocumentType, type ReturnModelType } from '@typegoose/typegoose';
import mongoose, { type Document, Types } from 'mongoose';
import { CONTENT_FIELDS } from '../../sync/collection-fields.js';
import { computeContentHashes } from '../../sync/content-hash.js';
import { isSettled, parseSyncState, type StoredTool } from '../../sync/stored-tool.js';
import {
  COLLECTION_STATE_KEYS,
  collectionPath,
  LAST_MODIFIED_FIELDS,
  METADATA_UPDATED_AT,
  PENDING_HASH_CHECK,
  SYNC_METADATA,
} from '../../sync/sync-state.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName } from '../../sync/vocabulary.js';
import { SyncArgumentError } from '../errors.js';
import { givenValue } from '../given-value.js';
import { defaultSyncMetadata } from '../sync-metadata.js';
import { type Tool } from '../tool.js';
import { BUSINESS_FIELDS } from '../tool-vocabulary.js';
import { bulkSaveOf, forgetMarks, markSave, marksOf } from './save-marks.js';
import { settleAfterWrite, settleStoredTools } from './settle-after-write.js';
import { isPlainObject, refuseSyncMetadataInput, rootOf } from './update-analysis.js';
import { refuseUnacknowledged } from './write-concern.js';

export type ToolDocument = DocumentType<Tool>;

const CONTENT = new Set<string>(CONTENT_FIELDS);
/** Every path of sync metadata a document holds. */
const SYNC_PATHS = [
  ...['overallStatus', 'createdAt', 'updatedAt', 'lastModifiedFields', 'pendingHashCheck'].map((key) => `${SYNC_METADATA}.${key}`),
  ...SYNC_COLLECTION_NAMES.flatMap((name) => COLLECTION_STATE_KEYS.map((key) => collectionPath(name, key))),
];
/** Every path of the metadata's tree, its subdocuments included (what validation would walk). */
const SYNC_SUBTREE = [SYNC_METADATA, `${SYNC_METADATA}.collections`, ...SYNC_COLLECTION_NAMES.map((name) => `${SYNC_METADATA}.collections.${name}`), ...SYNC_PATHS];

/** Documents whose save is to be settled by their post-save hook (an edit of content, or legacy metadata). */
const settleAfterSave = new WeakSet<ToolDocument>();

/** Each sync path as keys below `syncMetadata`, with the value a new tool starts with there. */
const DEFAULTS_BY_PATH = (() => {
  const fresh = defaultSyncMetadata();
  return SYNC_PATHS.map((path) => {
    const keys = path.split('.').slice(1);
    let value: unknown = fresh;
    for (const key of keys) value = (value as Record<string, unknown>)[key];
    return { path, keys, value };
  });
})();

function valueAt(root: unknown, keys: string[]): unknown {
  let value = root;
  for (const key of keys) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return value;
}

/**
 * A new tool's metadata is the default one: any other value was put there by the user. Read
 * from one plain copy of the metadata (37 reads through the document would cost more than
 * building it).
 */
function changedFromDefault(doc: ToolDocument): string | undefined {
  const meta: unknown = doc.get(SYNC_METADATA);
  const plain: unknown = meta instanceof mongoose.Document ? meta.toObject({ depopulate: true, getters: false, virtuals: false, transform: false }) : meta;
  let hashes: Record<SyncCollectionName, string> | undefined;
  return DEFAULTS_BY_PATH.find(({ path, keys, value: wanted }) => {
    if (path === 'syncMetadata.createdAt' || path === 'syncMetadata.updatedAt') return false; // the defaults' own time
    const value = valueAt(plain, keys);
    const [name, field] = keys.slice(1);
    if (field === 'contentHash') {
      // Empty until this hook sets it, then the hash of the content: anything else was given.
      if (value === '') return false;
      hashes ??= computeContentHashes(doc);
      return value !== hashes[name as SyncCollectionName];
    }
    return Array.isArray(wanted) ? !Array.isArray(value) || value.length > 0 : value !== wanted;
  })?.path;
}

/** Whether the document holds its whole `syncMetadata` (not loaded with a projection that leaves some out). */
const holdsSyncMetadata = (doc: ToolDocument): boolean => SYNC_PATHS.every((path) => doc.isSelected(path));

export function refuseUserSyncMetadata(doc: ToolDocument): void {
  if (doc.isNew && !doc.$isDefault(SYNC_METADATA)) {
    const given: unknown = doc.get(SYNC_METADATA);
    throw new SyncArgumentError(SYNC_METADATA, given instanceof mongoose.Document ? givenValue(given as mongoose.Document<unknown>) : given, 'a new tool without syncMetadata: tool-sync writes it');
  }
  // A new document's subdocuments do not report their changes reliably, so its values are compared
  // with the defaults; a loaded one's are (isModified, not directModifiedPaths: Mongoose reports
  // arrays inside a subdocument under a doubled prefix).
  const forged = doc.isNew ? changedFromDefault(doc) : SYNC_PATHS.find((path) => doc.isModified(path));
  if (forged !== undefined) {
    throw new SyncArgumentError(forged, doc.get(forged) as unknown, 'a business field: syncMetadata is written by tool-sync alone (its statics and migrations)');
  }
}

/** A new tool takes the hashes of the content it is inserted with. */
export function hashNewTool(doc: ToolDocument): void {
  const hashes = computeContentHashes(doc);
  for (const name of SYNC_COLLECTION_NAMES) doc.syncMetadata.collections[name].contentHash = hashes[name];
}

/**
 * Before a document is validated (also by `insertMany`, which saves nothing): a user's change to
 * `syncMetadata` is refused, and a new tool is hashed. Validating marks nothing.
 */
export function beforeDocumentValidate(this: ToolDocument, options?: ValidateOptions): ReturnType<typeof mongoose.overwriteMiddlewareArguments> | undefined {
  refuseUserSyncMetadata(this);
  if (!this.isNew) return undefined;
  hashNewTool(this);
  return skipSyncMetadata(options);
}

interface ValidateOptions { pathsToSkip?: string[] | string; validateAllPaths?: boolean; [option: string]: unknown }

/**
 * A new tool's validation leaves `syncMetadata` out: the hook above has just checked that it is
 * the default one with the package's own hashes, valid by construction, and validating its 37
 * paths was a third of the CPU of building a tool. (Not when the caller asks for every path; a
 * loaded tool is validated as Mongoose does, so what the schema declares is what `validate()`
 * reports on stored data.)
 */
function skipSyncMetadata(options: ValidateOptions | undefined): ReturnType<typeof mongoose.overwriteMiddlewareArguments> | undefined {
  if (options?.validateAllPaths === true) return undefined;
  const given = options?.pathsToSkip;
  const pathsToSkip = [...(typeof given === 'string' ? given.split(' ') : given ?? []), ...SYNC_SUBTREE];
  return mongoose.overwriteMiddlewareArguments({ ...options, pathsToSkip });
}

/**
 * Before a document is saved: as before validation (also when Mongoose validated without this
 * package's hooks: `bulkSave`); and a loaded tool whose business fields changed gets the
 * package's marks in the same single-document update (`lastModifiedFields`,
 * `syncMetadata.updatedAt`, and a pending hash check if content changed; see save-marks.ts), to
 * be settled once it has landed.
 */
export function beforeDocumentSave(this: ToolDocument, options?: { validateBeforeSave?: boolean }): void {
  // Mongoose validated the document just before (running the hook above), unless told not to or in a bulkSave.
  const inBulkSave = bulkSaveOf(this) !== undefined;
  const validated = options?.validateBeforeSave !== false && this.schema.get('validateBeforeSave') !== false && !inBulkSave;
  if (!validated) refuseUserSyncMetadata(this);
  if (this.isNew) {
    if (!validated) hashNewTool(this);
    return;
  }
  if (settleAfterSave.has(this)) return;
  forgetMarks(this);
  const settleOnceSaved = (): void => {
    settleAfterSave.add(this);
    // A bulkSave settles its tools whatever Mongoose reports of each (see bulk-save.ts).
    bulkSaveOf(this)?.toSettle.add(this);
  };
  const whole = holdsSyncMetadata(this);
  // Metadata written before this package (no hashes yet) is completed once the save lands.
  if (whole && SYNC_COLLECTION_NAMES.some((name) => this.syncMetadata.collections[name].contentHash === '')) settleOnceSaved();
  const changed = BUSINESS_FIELDS.filter((field) => this.isModified(field));
  if (changed.length === 0) return;
  const marks: Record<string, unknown> = { [LAST_MODIFIED_FIELDS]: changed, [METADATA_UPDATED_AT]: new Date() };
  if (changed.some((field) => CONTENT.has(field))) {
    refuseUnacknowledged(options, (this.constructor as ReturnModelType<typeof Tool>).collection, 'a save that changes content');
    marks[PENDING_HASH_CHECK] = new Types.ObjectId();
    settleOnceSaved();
  }
  // Without all of its metadata in memory, it is settled from a read (its marks' time is the stored one).
  if (!whole) settleOnceSaved();
  markSave(this, marks);
}

/**
 * The sync metadata each loaded tool had stored, before Mongoose shows defaults where keys are
 * missing: kept by reference at load, parsed only if the tool is saved with a content change.
 */
const loadedMetadata = new WeakMap<ToolDocument, unknown>();

export function beforeDocumentInit(this: ToolDocument, stored: unknown): void {
  loadedMetadata.set(this, isPlainObject(stored) ? stored[SYNC_METADATA] : undefined);
}

/** Whether the tool's stored metadata was settled when loaded (a tool this process created was). */
function loadedSettled(doc: ToolDocument): boolean {
  if (!loadedMetadata.has(doc)) return true;
  return isSettled(parseSyncState({ _id: doc._id, syncMetadata: loadedMetadata.get(doc) }));
}

/**
 * A loaded tool shows defaults where its stored metadata has none, and Mongoose marks some of
 * them modified: they are not the user's changes, and settling (not saving defaults) completes
 * the stored metadata.
 */
export function afterDocumentInit(this: ToolDocument): void {
  unmarkSyncMetadata(this);
}

/** Forgets every change to `syncMetadata` on a document: it shows what is stored. */
export function unmarkSyncMetadata(doc: Document): void {
  for (const path of doc.directModifiedPaths()) if (rootOf(path) === SYNC_METADATA) doc.unmarkModified(path);
  doc.unmarkModified(SYNC_METADATA);
}

/** The document shows what is stored once settled, without marking anything to save. */
export function showStoredSyncMetadata(doc: ToolDocument, stored: StoredTool): void {
  if (String(stored._id) !== String(doc._id) || stored.syncMetadata === undefined || !holdsSyncMetadata(doc)) return;
  doc.set(SYNC_METADATA, stored.syncMetadata);
  unmarkSyncMetadata(doc);
}

/** The tool as its save stored it: the document as it is in memory. */
const asSaved = (doc: ToolDocument): StoredTool => doc.toObject({ depopulate: true, transform: false, virtuals: false, getters: false, minimize: false });

/** A saved document holding all its metadata shows the marks its save stored, without marking anything to save. */
function showMarks(doc: ToolDocument, marks: Record<string, unknown>): void {
  // Set on the subdocument: set through the tool, Mongoose also marks a stray path for the array.
  const meta = doc.syncMetadata;
  meta.lastModifiedFields = marks[LAST_MODIFIED_FIELDS] as string[];
  meta.updatedAt = marks[METADATA_UPDATED_AT] as Date;
  if (marks[PENDING_HASH_CHECK] !== undefined) meta.pendingHashCheck = marks[PENDING_HASH_CHECK] as Types.ObjectId;
  unmarkSyncMetadata(doc);
}

/**
 * After a save that changed content: settle the tool, and show its settled state on the
 * document. A document holding all its metadata is planned from memory, on the condition that
 * what is stored is what it holds (no read, unless someone wrote in between). A bulkSave's tools
 * are settled together, once it is over (see bulk-save.ts).
 */
export async function afterDocumentSave(this: ToolDocument): Promise<void> {
  const marks = marksOf(this);
  forgetMarks(this);
  if (marks !== undefined && holdsSyncMetadata(this)) showMarks(this, marks);
  if (!settleAfterSave.has(this)) return;
  settleAfterSave.delete(this);
  if (bulkSaveOf(this) !== undefined) return;
  const model = this.constructor as ReturnModelType<typeof Tool>;
  const show = (stored: StoredTool): void => { showStoredSyncMetadata(this, stored); };
  // From memory only what was stored complete: defaults shown for missing keys are not stored.
  if (holdsSyncMetadata(this) && marks?.[PENDING_HASH_CHECK] !== undefined && loadedSettled(this)) {
    const summary = await settleStoredTools(model, [asSaved(this)], this.$session(), show, { unread: true });
    // Unless refused (its condition repeats the content: near 16 MB too large to send), when it is
    // settled from a read instead, whose condition is the token.
    if (summary === undefined || summary.refused.length === 0) return;
  }
  await settleAfterWrite(model, { _id: this._id }, this.$session(), show);
}

/** A save that failed leaves no pending mark, on the document or stored (its marks went with its update). */
export function afterDocumentSaveError(this: ToolDocument): void {
  endSave(this);
}

/** The save of a document is over, landed or not (a bulkSave runs no hook for a document it failed to write). */
export function endSave(doc: Document): void {
  settleAfterSave.delete(doc as ToolDocument);
  forgetMarks(doc);
}

/**
 * `insertMany` runs no save hooks: a tool loaded from the database and passed to it would be
 * inserted with the sync state of the tool it was loaded as (a copy marked synced for content
 * nobody embedded). Only new tools (plain input or `new ToolModel()`) may be inserted.
 */
export function beforeInsertMany(documents: unknown): void {
  const list: unknown[] = Array.isArray(documents) ? documents : [documents];
  list.forEach((document, index) => {
    if (document instanceof mongoose.Document && !document.isNew) {
      throw new SyncArgumentError(`documents[${index}]`, String(document._id), 'a new tool (plain input or new ToolModel()), not one loaded from the database');
    }
    // Checked here for every input: `lean` inserts it as it is, without casting or validation
    // hooks, and this hook is not told whether the call is lean. (A lean tool without metadata is
    // stored like a legacy one: the first reader, or `tool-sync backfill`, gives it its metadata.)
    const given = isPlainObject(document) ? document[SYNC_METADATA] : undefined;
    if (given !== undefined) {
      throw new SyncArgumentError(`documents[${index}].${SYNC_METADATA}`, given, 'absent: tool-sync writes syncMetadata (insertMany with lean stores its input as it is)');
    }
    // Also as a dotted key, or a property of a class instance or a Map (what the driver would store).
    if (!(document instanceof mongoose.Document)) refuseSyncMetadataInput(document, `documents[${index}]`);
  });
}

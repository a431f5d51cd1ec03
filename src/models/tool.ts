import {
  getModelForClass,
  index,
  modelOptions,
  plugin,
  post,
  pre,
  prop,
  Severity,
  type DocumentType,
  type ReturnModelType,
} from '@typegoose/typegoose';
import { CONTENT_FIELDS } from '../sync/collection-fields.js';
import { computeContentHashes } from '../sync/content-hash.js';
import { aggregateSyncStatus } from '../sync/status-order.js';
import { afterContentChange } from '../sync/transitions.js';
import { type SyncStage } from '../sync/error-classification.js';
import {
  markCollectionFailed,
  markCollectionSynced,
  reconcileSyncState,
  requeueFailed,
  type MarkFailedResult,
  type MarkSyncedResult,
} from './tool-transitions.js';
import { type Types } from 'mongoose';
import { syncWritePathsPlugin } from './tool-write-paths.js';
import { findNeedingSync, findRetryable, getSyncStats, type RetryableTool, type SyncStats } from './tool-queries.js';
import { isSyncStatus, SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncErrorCode } from '../sync/vocabulary.js';
import { collectionPath, defaultCollectionSyncStatus, type CollectionSyncStatus } from './collection-sync-status.js';
import { defaultSyncMetadata, SyncMetadata } from './sync-metadata.js';
import { lacksContentHash } from './sync-conditions.js';
import { required } from './validators.js';
import { type ITool } from './types.js';
import { BUSINESS_FIELDS, KEBAB_CASE, PRICING_MODELS, TOOL_LIMITS, type PricingModel } from './tool-vocabulary.js';

function isHttpUrl(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (typeof value !== 'string') return false;
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

function trimmedStrings(value: unknown): unknown {
  return Array.isArray(value) ? value.map((item: unknown) => (typeof item === 'string' ? item.trim() : item)) : value;
}

function lowercaseTokens(value: unknown): unknown {
  const trimmed = trimmedStrings(value);
  return Array.isArray(trimmed)
    ? trimmed.map((item: unknown) => (typeof item === 'string' ? item.toLowerCase() : item))
    : trimmed;
}

function eachItem(check: (item: string) => boolean, rule: string) {
  return {
    validator: (items: unknown): boolean =>
      !Array.isArray(items) || items.every((item: unknown) => typeof item === 'string' && check(item)),
    message: (props: { path: string; value: unknown }) =>
      `Path \`${props.path}\` items must be ${rule}, got ${JSON.stringify(props.value)}.`,
  };
}

const CONTENT_FIELD_SET = new Set<string>(CONTENT_FIELDS);
const METADATA_KEYS = Object.keys(defaultSyncMetadata()).filter((key) => key !== 'collections');
const COLLECTION_STATUS_KEYS = Object.keys(defaultCollectionSyncStatus());

/** Mongoose answers `$isDefault` for a nested path only on the subdocument that holds it. */
function isDefaultIn(subdocument: object, key: string): boolean {
  return (subdocument as Partial<Pick<ITool, '$isDefault'>>).$isDefault?.(key) ?? false;
}

/**
 * Defaults Mongoose filled in on read are not saved unless marked: a partial legacy shape
 * (such as the spec's backfill snippet's) would otherwise stay partial in the database.
 */
function markLegacyDefaultsModified(doc: DocumentType<Tool>): void {
  const meta = doc.syncMetadata;
  for (const key of METADATA_KEYS) if (isDefaultIn(meta, key)) doc.markModified(`syncMetadata.${key}`);
  for (const name of SYNC_COLLECTION_NAMES) {
    const status = meta.collections[name];
    for (const key of COLLECTION_STATUS_KEYS) {
      if (isDefaultIn(status, key)) doc.markModified(collectionPath(name, key as keyof CollectionSyncStatus));
    }
  }
}

/**
 * Stores the hashes of the document's content: a new or legacy tool just takes them; a collection
 * whose hash changed goes through `afterContentChange`. Returns whether any collection did.
 */
function storeNewHashes(doc: DocumentType<Tool>): boolean {
  const hashes = computeContentHashes(doc);
  const collections = doc.syncMetadata.collections;
  let changed = false;
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = collections[name];
    if (doc.isNew || state.contentHash === '') {
      state.contentHash = hashes[name];
    } else if (state.contentHash !== hashes[name]) {
      const next = afterContentChange(state);
      state.status = next.status;
      state.retryCount = next.retryCount;
      state.contentHash = hashes[name];
      // Written even when unchanged: a concurrent `synced` must not survive new content.
      doc.markModified(collectionPath(name, 'status'));
      changed = true;
    }
  }
  return changed;
}

/**
 * Keeps sync metadata true on the document write paths (save, create, insertMany, which all
 * validate). A new tool stores its real hashes; a document written before this package is
 * completed; and when content changes, each collection whose hash changed goes through
 * `afterContentChange`, with the overall status and `lastModifiedFields` brought along.
 */
function trackContentChanges(this: DocumentType<Tool>): void {
  const meta = this.syncMetadata;
  const collections = meta.collections;
  const legacy = !this.isNew && lacksContentHash(collections);
  const changedFields = this.isNew ? [] : BUSINESS_FIELDS.filter((field) => this.isModified(field));
  if (!this.isNew && !legacy && changedFields.length === 0) return;

  if (legacy) markLegacyDefaultsModified(this);
  // Hashing is for content: a save that changed only `url` or `id` has nothing to hash.
  const hashed = this.isNew || legacy || changedFields.some((field) => CONTENT_FIELD_SET.has(field));
  const contentChanged = hashed && storeNewHashes(this);
  const statuses = SYNC_COLLECTION_NAMES.map((name) => collections[name].status);
  // An invalid status is for validation to reject with a clear message, not to aggregate.
  if ([...statuses, meta.overallStatus].every(isSyncStatus)) meta.overallStatus = aggregateSyncStatus(statuses);
  if (this.isNew) return;
  meta.lastModifiedFields = changedFields;
  meta.updatedAt = new Date();
  this.$locals.syncContentChanged = contentChanged;
}

/**
 * A save computes hashes and the overall status from what it loaded; a transition or an atomic
 * array write by someone else may have landed in between. Put the stored state right at once.
 * A save conditioned on the statuses and content it read (`savedAsRead`, the write paths' saves)
 * cannot have drifted and skips the extra read.
 */
async function reconcileAfterSave(this: DocumentType<Tool>): Promise<void> {
  if (this.$locals.syncContentChanged !== true) return;
  this.$locals.syncContentChanged = false;
  if (this.$locals.savedAsRead === true) return;
  await reconcileSyncState(this.constructor as ReturnModelType<typeof Tool>, this._id);
}

/** A product people search for, with the state of its embeddings in the four vector collections. */
@pre<Tool>('validate', trackContentChanges)
@post<Tool>('save', reconcileAfterSave)
@plugin(syncWritePathsPlugin)
@index({ id: 1 }, { name: 'tool_id_unique', unique: true })
@index({ 'syncMetadata.overallStatus': 1 }, { name: 'sync_overall_status_idx' })
@index({ 'syncMetadata.collections.tools.status': 1 }, { name: 'sync_tools_status_idx' })
@index({ 'syncMetadata.collections.functionality.status': 1 }, { name: 'sync_functionality_status_idx' })
@index({ 'syncMetadata.collections.usecases.status': 1 }, { name: 'sync_usecases_status_idx' })
@index({ 'syncMetadata.collections.interface.status': 1 }, { name: 'sync_interface_status_idx' })
@index({ 'syncMetadata.overallStatus': 1, 'syncMetadata.updatedAt': 1 }, { name: 'sync_worker_query_idx' })
@index(
  {
    'syncMetadata.overallStatus': 1,
    'syncMetadata.collections.tools.retryCount': 1,
    'syncMetadata.collections.functionality.retryCount': 1,
    'syncMetadata.collections.usecases.retryCount': 1,
    'syncMetadata.collections.interface.retryCount': 1,
  },
  { name: 'sync_retry_eligibility_idx' },
)
@modelOptions({
  schemaOptions: { collection: 'tools', timestamps: true },
  options: { customName: 'Tool', allowMixed: Severity.ERROR },
})
export class Tool {
  /** Stable public slug, e.g. `visual-studio-code`. */
  @prop({
    type: String,
    required,
    trim: true,
    maxlength: TOOL_LIMITS.id,
    match: [KEBAB_CASE, 'Path `{PATH}` must be lowercase kebab-case (a-z, 0-9, single hyphens), got "{VALUE}".'],
  })
  public id!: string;

  @prop({ type: String, required, trim: true, maxlength: TOOL_LIMITS.name })
  public name!: string;

  /** One-paragraph summary; feeds the `tools` embedding. */
  @prop({ type: String, required, trim: true, maxlength: TOOL_LIMITS.description })
  public description!: string;

  @prop({ type: String, trim: true, maxlength: TOOL_LIMITS.longDescription })
  public longDescription?: string;

  @prop({ type: String, required, trim: true, maxlength: TOOL_LIMITS.category })
  public category!: string;

  @prop({
    type: () => [String],
    default: () => [],
    set: trimmedStrings,
    validate: eachItem((tag) => tag.length > 0 && tag.length <= TOOL_LIMITS.tag, `non-empty strings of at most ${TOOL_LIMITS.tag} characters`),
  })
  public tags!: string[];

  /** Home page; http or https only. */
  @prop({
    type: String,
    trim: true,
    maxlength: TOOL_LIMITS.url,
    validate: { validator: isHttpUrl, message: 'Path `{PATH}` must be an http or https URL, got "{VALUE}".' },
  })
  public url?: string;

  @prop({ type: String, enum: PRICING_MODELS })
  public pricing?: PricingModel;

  /** What the tool does, most important first. */
  @prop({
    type: () => [String],
    default: () => [],
    set: trimmedStrings,
    validate: eachItem((item) => item.length > 0 && item.length <= TOOL_LIMITS.listItem, `non-empty strings of at most ${TOOL_LIMITS.listItem} characters`),
  })
  public functionality!: string[];

  /** What people use it for, most important first. */
  @prop({
    type: () => [String],
    default: () => [],
    set: trimmedStrings,
    validate: eachItem((item) => item.length > 0 && item.length <= TOOL_LIMITS.listItem, `non-empty strings of at most ${TOOL_LIMITS.listItem} characters`),
  })
  public useCases!: string[];

  /** How it is used: web, cli, api, sdk, … (see KNOWN_INTERFACES); lowercase kebab-case. */
  @prop({
    type: () => [String],
    default: () => [],
    set: lowercaseTokens,
    validate: eachItem((item) => KEBAB_CASE.test(item) && item.length <= TOOL_LIMITS.interface, 'lowercase kebab-case words such as "web" or "ide-extension"'),
  })
  public interface!: string[];

  /** Sync infrastructure metadata, isolated from business data. */
  @prop({ type: () => SyncMetadata, required, default: () => defaultSyncMetadata() })
  public syncMetadata!: SyncMetadata;

  /** Set by `timestamps: true`: business edits only (sync transitions move `syncMetadata.updatedAt`). */
  public createdAt?: Date;
  public updatedAt?: Date;

  /** The worker embedded the content with this hash: `synced`, unless the content changed meanwhile. */
  public static markCollectionSynced(
    this: ReturnModelType<typeof Tool>,
    toolId: Types.ObjectId | string,
    collection: SyncCollectionName,
    options: { contentHash: string },
  ): Promise<MarkSyncedResult> {
    return markCollectionSynced(this, toolId, collection, options);
  }

  /** A sync attempt failed at `stage`: `failed`, classified, one more retry counted. */
  public static markCollectionFailed(
    this: ReturnModelType<typeof Tool>,
    toolId: Types.ObjectId | string,
    collection: SyncCollectionName,
    error: unknown,
    stage: SyncStage,
  ): Promise<MarkFailedResult> {
    return markCollectionFailed(this, toolId, collection, error, stage);
  }

  /** Puts failed collections back in line; returns how many (tool × collection) it requeued. */
  public static requeueFailed(
    this: ReturnModelType<typeof Tool>,
    options: { collections?: SyncCollectionName[]; errorCodes?: SyncErrorCode[]; toolIds?: (Types.ObjectId | string)[] } = {},
  ): Promise<number> {
    return requeueFailed(this, options);
  }

  /** Tools with a pending or stale collection, oldest metadata change first (the worker's queue). */
  public static findNeedingSync(
    this: ReturnModelType<typeof Tool>,
    options: { limit?: number; collections?: SyncCollectionName[] } = {},
  ): Promise<DocumentType<Tool>[]> {
    return findNeedingSync(this, options);
  }

  /** Failed collections under the retry limit whose backoff has elapsed. */
  public static findRetryable(
    this: ReturnModelType<typeof Tool>,
    options: { maxRetries?: number; now?: Date; limit?: number } = {},
  ): Promise<RetryableTool[]> {
    return findRetryable(this, options);
  }

  /** The dashboard's numbers. */
  public static getSyncStats(this: ReturnModelType<typeof Tool>, options: { now?: Date } = {}): Promise<SyncStats> {
    return getSyncStats(this, options);
  }
}

export const ToolModel: ReturnModelType<typeof Tool> = getModelForClass(Tool);

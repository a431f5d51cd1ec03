import { modelOptions, prop, Severity } from '@typegoose/typegoose';
import { Types } from 'mongoose';
import {
  INITIAL_SYNC_STATUS,
  SYNC_COLLECTION_NAMES,
  SYNC_STATUSES,
  type SyncCollectionName,
  type SyncStatus,
} from '../sync/vocabulary.js';
import { required } from './validators.js';
import { CollectionSyncStatus, defaultCollectionSyncStatus } from './collection-sync-status.js';

// Defaults `{}` here and below: each field's own default fills them (see Tool.syncMetadata).
const collectionStatusProp = {
  type: () => CollectionSyncStatus,
  required,
  default: () => ({}),
} as const;

/** One status per vector collection; the property names are SYNC_COLLECTION_NAMES. */
@modelOptions({ schemaOptions: { _id: false }, options: { allowMixed: Severity.ERROR } })
export class SyncCollections implements Record<SyncCollectionName, CollectionSyncStatus> {
  @prop(collectionStatusProp)
  public tools!: CollectionSyncStatus;

  @prop(collectionStatusProp)
  public functionality!: CollectionSyncStatus;

  @prop(collectionStatusProp)
  public usecases!: CollectionSyncStatus;

  @prop(collectionStatusProp)
  public interface!: CollectionSyncStatus;
}

export function defaultSyncCollections(): SyncCollections {
  const collections = {} as Record<SyncCollectionName, CollectionSyncStatus>;
  for (const name of SYNC_COLLECTION_NAMES) collections[name] = defaultCollectionSyncStatus();
  return collections;
}

/** Sync infrastructure metadata of a tool. Not business data: the UI should not display it. */
@modelOptions({ schemaOptions: { _id: false }, options: { allowMixed: Severity.ERROR } })
export class SyncMetadata {
  /** The worst of the four collection statuses. */
  @prop({ type: String, enum: SYNC_STATUSES, required, default: INITIAL_SYNC_STATUS })
  public overallStatus!: SyncStatus;

  @prop({ type: () => SyncCollections, required, default: () => ({}) })
  public collections!: SyncCollections;

  /** Business fields changed by the last content write, for debugging. */
  @prop({ type: () => [String], default: () => [] })
  public lastModifiedFields!: string[];

  @prop({ type: Date, required, default: () => new Date() })
  public createdAt!: Date;

  @prop({ type: Date, required, default: () => new Date() })
  public updatedAt!: Date;

  /**
   * The token of a write that may have changed content, set by that same write; while it is set
   * the hashes are unverified (`markCollectionSynced` settles the tool first). Null when settled.
   */
  @prop({ type: () => Types.ObjectId, default: null })
  public pendingHashCheck!: Types.ObjectId | null;
}

/** Complete metadata of a tool that was never synced: fresh objects on every call. */
export function defaultSyncMetadata(now: Date = new Date()): SyncMetadata {
  return {
    overallStatus: INITIAL_SYNC_STATUS,
    collections: defaultSyncCollections(),
    lastModifiedFields: [],
    createdAt: now,
    updatedAt: now,
    pendingHashCheck: null,
  };
}

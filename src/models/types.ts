import { type DocumentType } from '@typegoose/typegoose';
import { type CollectionSyncStatus } from './collection-sync-status.js';
import { type SyncMetadata } from './sync-metadata.js';
import { type Tool } from './tool.js';

/** The specification's names, kept as aliases of the classes: the classes are the schema. */
export type ICollectionSyncStatus = CollectionSyncStatus;
export type ISyncMetadata = SyncMetadata;
/** A Tool as a Mongoose document (the specification's `ITool extends Document`). */
export type ITool = DocumentType<Tool>;

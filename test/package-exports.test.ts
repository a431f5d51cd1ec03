import { describe, expect, expectTypeOf, it } from 'vitest';
import * as api from '../src/index.js';
import {
  type CollectionSyncStatus,
  type ICollectionSyncStatus,
  type ISyncMetadata,
  type ITool,
  type SyncCollectionName,
  type SyncErrorCode,
  type SyncMetadata,
  type SyncStatus,
  type Tool,
} from '../src/index.js';
import { type DocumentType } from '@typegoose/typegoose';

describe('the package entry', () => {
  it('exports the runtime API', () => {
    for (const name of [
      'SYNC_STATUSES', 'SYNC_ERROR_CODES', 'SYNC_COLLECTION_NAMES', 'COLLECTION_FIELDS',
      'CollectionSyncStatus', 'SyncMetadata', 'Tool', 'ToolModel',
      'defaultCollectionSyncStatus', 'defaultSyncMetadata', 'computeContentHash', 'computeContentHashes',
      'createToolModel', 'backfill', 'rehash', 'settle', 'checkIndexes', 'parseSyncState', 'SETTLE_FAILED_EVENT',
      'SyncArgumentError', 'SyncStateError', 'SyncConflictError', 'ToolNotFoundError', 'WritesRefusedError',
      'runSyncWorker', 'reembed', 'REEMBED_OUTCOMES', 'TOMBSTONE_COLLECTION',
      'createRateBudget', 'estimateTokens', 'embeddingText', 'isInputRefusal', 'DEFAULT_BATCH_SIZE',
      'instrumentSync', 'SYNC_CALL_STAGES', 'DEFAULT_COLLECT_EVERY_MS',
    ]) {
      expect(api, name).toHaveProperty(name);
    }
  });

  it('exports the specification\'s type names as aliases of the classes and the vocabularies', () => {
    expectTypeOf<SyncStatus>().toEqualTypeOf<(typeof api.SYNC_STATUSES)[number]>();
    expectTypeOf<SyncErrorCode>().toEqualTypeOf<(typeof api.SYNC_ERROR_CODES)[number]>();
    expectTypeOf<SyncCollectionName>().toEqualTypeOf<'tools' | 'functionality' | 'usecases' | 'interface'>();
    expectTypeOf<ICollectionSyncStatus>().toEqualTypeOf<CollectionSyncStatus>();
    expectTypeOf<ISyncMetadata>().toEqualTypeOf<SyncMetadata>();
    expectTypeOf<ITool>().toEqualTypeOf<DocumentType<Tool>>();
    expectTypeOf<ICollectionSyncStatus['errorCode']>().toEqualTypeOf<SyncErrorCode | null>();
    expect(api.SYNC_STATUSES).toEqual(['synced', 'pending', 'failed', 'stale']);
  });
});

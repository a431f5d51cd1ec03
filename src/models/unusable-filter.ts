import { CONTENT_HASH_LENGTH } from '../sync/content-hash.js';
import { collectionPath, OVERALL_STATUS, SYNC_METADATA, type CollectionStateKey } from '../sync/sync-state.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SYNC_STATUSES } from '../sync/vocabulary.js';

/*
 * The tools whose stored sync metadata the model cannot use (what parseSyncState calls invalid),
 * as a server-side filter, so the dashboard can count them without reading them. The two are
 * kept alike by a test that runs both over the same poisoned documents.
 */

type Condition = Record<string, unknown>;

const present = (path: string, test: Condition): Condition => ({ [path]: { $exists: true, ...test } });
const notOfType = (path: string, types: string[]): Condition => present(path, { $not: { $type: types } });

/** A count: a number, not negative, without a fraction (`$bitsAllClear` never matches a fractional number). */
const badCount = (path: string): Condition[] => [
  notOfType(path, ['number']),
  { [path]: { $lt: 0 } },
  { [path]: { $type: 'number', $not: { $bitsAllClear: 0 } } },
];

const HASH_OR_EMPTY = `^(?:[0-9a-f]{${CONTENT_HASH_LENGTH}})?$`;

function badCollectionValues(name: (typeof SYNC_COLLECTION_NAMES)[number]): Condition[] {
  const path = (key: CollectionStateKey): string => collectionPath(name, key);
  return [
    notOfType(`${SYNC_METADATA}.collections.${name}`, ['object']),
    present(path('status'), { $nin: [...SYNC_STATUSES] }),
    ...(['lastSyncedAt', 'lastSyncAttemptAt', 'nextRetryAt', 'claimedUntil'] as const).map((key) => notOfType(path(key), ['date', 'null'])),
    ...(['lastError', 'claimedBy', 'embeddingModel'] as const).map((key) => notOfType(path(key), ['string', 'null'])),
    present(path('errorCode'), { $nin: [...SYNC_ERROR_CODES, null] }),
    ...badCount(path('retryCount')),
    ...badCount(path('vectorVersion')),
    present(path('contentHash'), { $not: { $regex: HASH_OR_EMPTY } }),
  ];
}

export const UNUSABLE_METADATA: Condition = {
  $or: [
    // Not metadata, but what every claim and mark names the tool by (see parseSyncState).
    { _id: { $not: { $type: 'objectId' } } },
    notOfType(SYNC_METADATA, ['object', 'null']),
    present(OVERALL_STATUS, { $nin: [...SYNC_STATUSES] }),
    notOfType(`${SYNC_METADATA}.collections`, ['object']),
    ...SYNC_COLLECTION_NAMES.flatMap(badCollectionValues),
  ],
};

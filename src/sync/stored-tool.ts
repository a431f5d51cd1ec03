import { type mongo } from 'mongoose';
import { CONTENT_HASH_LENGTH } from './content-hash.js';
import { type ContentField } from './collection-fields.js';
import { COLLECTION_STATE_KEYS, OPTIONAL_STATE_KEYS, type CollectionSyncState } from './sync-state.js';
import {
  isSyncStatus,
  SYNC_COLLECTION_NAMES,
  SYNC_ERROR_CODES,
  type SyncCollectionName,
  type SyncErrorCode,
  type SyncStatus,
} from './vocabulary.js';

/**
 * A tool as the driver returns it: whatever is stored, trusted in nothing but its `_id`. The one
 * type of a stored tool that transitions, write paths, queries and migrations read.
 */
export interface StoredTool extends Partial<Record<ContentField, unknown>> {
  _id: mongo.ObjectId;
  syncMetadata?: unknown;
  [field: string]: unknown;
}

/** One collection's stored state: each key as stored (undefined when missing) and usable values. */
export interface ParsedCollection {
  /** Every key of the state is present and valid, with a real hash. */
  complete: boolean;
  /** The keys that are missing (not invalid): a settle fills them with defaults. */
  missing: (keyof CollectionSyncState)[];
  /** The stored status, or undefined when missing or not a status. */
  status: SyncStatus | undefined;
  /** The stored values, as stored, for the conditions of a conditional write. */
  storedStatus: unknown;
  storedHash: unknown;
  storedRetryCount: unknown;
  lastSyncedAt: Date | null;
  lastSyncAttemptAt: Date | null;
  nextRetryAt: Date | null;
  errorCode: SyncErrorCode | null;
  retryCount: number;
  /** The stored hash, or '' when missing or not a hash. */
  contentHash: string;
  vectorVersion: number;
  /** The worker holding a claim on this collection's work, and until when (null: none). */
  claimedBy: string | null;
  claimedUntil: Date | null;
  /** As stored, for the conditions of a claim's write. */
  storedClaimedBy: unknown;
  storedClaimedUntil: unknown;
  storedNextRetryAt: unknown;
  /** The model that made the current vector (null: unknown, or none). */
  embeddingModel: string | null;
  storedEmbeddingModel: unknown;
  /** Why the stored state cannot be used as it is (an invalid value), if it cannot. */
  invalid: string | undefined;
}

export const METADATA_KEYS = ['overallStatus', 'lastModifiedFields', 'createdAt', 'updatedAt'] as const;
export type MetadataKey = (typeof METADATA_KEYS)[number];

export interface ParsedSyncState {
  /** `syncMetadata` is absent or null: a tool written before this package. */
  absent: boolean;
  /** Why the stored metadata cannot be settled without an operator (not an object, invalid values). */
  invalid: string | undefined;
  overallStatus: unknown;
  /** The token of a content write whose hashes are not verified yet, as stored (null when none). */
  pendingHashCheck: unknown;
  lastModifiedFields: string[];
  /** Top-level metadata keys that are missing (a missing `pendingHashCheck` is null: nothing pending). */
  missingMetadataKeys: MetadataKey[];
  collections: Record<SyncCollectionName, ParsedCollection | undefined>;
}

const HASH = new RegExp(`^[0-9a-f]{${CONTENT_HASH_LENGTH}}$`);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 0;
const isDateOrNull = (value: unknown): value is Date | null => value === null || value instanceof Date;
const isErrorCode = (value: unknown): value is SyncErrorCode | null =>
  value === null || (typeof value === 'string' && (SYNC_ERROR_CODES as readonly string[]).includes(value));

const describe = (value: unknown): string => {
  try {
    // undefined for undefined, functions and symbols, whatever the declared type says.
    const json = JSON.stringify(value) as string | undefined;
    return json ?? typeof value;
  } catch {
    return typeof value;
  }
};

/**
 * Failed for a reason worth retrying, yet no retry time (another writer stored the failure): no
 * retry queue would ever find it, so a settle makes it due (see planSettle).
 */
function failedWithoutRetryTime(stored: Record<string, unknown>): boolean {
  return stored.status === 'failed' && stored.errorCode !== 'VALIDATION_ERROR' && stored.nextRetryAt === null;
}

function parseCollection(name: SyncCollectionName, stored: Record<string, unknown>): ParsedCollection {
  // A retry time means something for a failed collection only: elsewhere its absence is null.
  const missing = COLLECTION_STATE_KEYS.filter((key) => stored[key] === undefined
    && !(OPTIONAL_STATE_KEYS as readonly string[]).includes(key) && (key !== 'nextRetryAt' || stored.status === 'failed'));
  const checks: [keyof CollectionSyncState, (value: unknown) => boolean][] = [
    ['status', isSyncStatus],
    ['lastSyncedAt', isDateOrNull],
    ['lastSyncAttemptAt', isDateOrNull],
    ['lastError', (value) => value === null || typeof value === 'string'],
    ['errorCode', isErrorCode],
    ['retryCount', isCount],
    ['nextRetryAt', isDateOrNull],
    ['contentHash', (value) => value === '' || (typeof value === 'string' && HASH.test(value))],
    ['vectorVersion', isCount],
    ['claimedBy', (value) => value === null || typeof value === 'string'],
    ['claimedUntil', isDateOrNull],
    ['embeddingModel', (value) => value === null || typeof value === 'string'],
  ];
  const bad = checks.find(([key, valid]) => stored[key] !== undefined && !valid(stored[key]));
  const hash = typeof stored.contentHash === 'string' && HASH.test(stored.contentHash) ? stored.contentHash : '';
  return {
    complete: missing.length === 0 && bad === undefined && hash !== '' && !failedWithoutRetryTime(stored),
    missing,
    status: isSyncStatus(stored.status) ? stored.status : undefined,
    storedStatus: stored.status,
    storedHash: stored.contentHash,
    storedRetryCount: stored.retryCount,
    lastSyncedAt: stored.lastSyncedAt instanceof Date ? stored.lastSyncedAt : null,
    lastSyncAttemptAt: stored.lastSyncAttemptAt instanceof Date ? stored.lastSyncAttemptAt : null,
    nextRetryAt: stored.nextRetryAt instanceof Date ? stored.nextRetryAt : null,
    errorCode: isErrorCode(stored.errorCode) ? stored.errorCode : null,
    retryCount: isCount(stored.retryCount) ? stored.retryCount : 0,
    contentHash: hash,
    vectorVersion: isCount(stored.vectorVersion) ? stored.vectorVersion : 0,
    claimedBy: typeof stored.claimedBy === 'string' ? stored.claimedBy : null,
    claimedUntil: stored.claimedUntil instanceof Date ? stored.claimedUntil : null,
    storedClaimedBy: stored.claimedBy,
    storedClaimedUntil: stored.claimedUntil,
    storedNextRetryAt: stored.nextRetryAt,
    embeddingModel: typeof stored.embeddingModel === 'string' ? stored.embeddingModel : null,
    storedEmbeddingModel: stored.embeddingModel,
    invalid: bad === undefined ? undefined : `syncMetadata.collections.${name}.${bad[0]} is ${describe(stored[bad[0]])}`,
  };
}

/** The one parser of stored sync state: never throws, whatever it is given. */
export function parseSyncState(tool: StoredTool): ParsedSyncState {
  try {
    return parse(tool);
  } catch (error) {
    // Only hostile objects (a throwing getter, a revoked Proxy) get here; the driver returns none.
    const collections = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, undefined])) as ParsedSyncState['collections'];
    const reason = `syncMetadata cannot be read (${error instanceof Error ? error.message : typeof error})`;
    return { absent: false, invalid: reason, overallStatus: undefined, pendingHashCheck: null, lastModifiedFields: [], missingMetadataKeys: [], collections };
  }
}

/**
 * Claims, marks and point keys name a tool by its ObjectId `_id` (see pointIdOf): a tool stored
 * with another `_id` (a legacy number, string or UUID) cannot be worked on, and says why.
 */
function unusableId(id: unknown): string | undefined {
  if (id === undefined || (typeof id === 'object' && id !== null && (id as { _bsontype?: unknown })._bsontype === 'ObjectId')) return undefined;
  const bsonType = typeof id === 'object' && id !== null ? (id as { _bsontype?: unknown })._bsontype : undefined;
  const kind = id === null ? 'null' : typeof bsonType === 'string' ? `a ${bsonType}` : `a ${typeof id}`;
  return `_id ${describe(id)} (${kind}) is not an ObjectId: tool-sync claims and keys points by an ObjectId _id; `
    + 're-insert the tool with one (and delete this copy)';
}

function parse(tool: StoredTool): ParsedSyncState {
  const meta = tool.syncMetadata;
  const absent = meta === undefined || meta === null;
  const collections = {} as Record<SyncCollectionName, ParsedCollection | undefined>;
  for (const name of SYNC_COLLECTION_NAMES) collections[name] = undefined;
  const badId = unusableId(tool._id);
  if (!absent && !isObject(meta)) {
    return {
      absent, invalid: badId ?? `syncMetadata is ${describe(meta)}, not an object`, overallStatus: undefined, pendingHashCheck: null,
      lastModifiedFields: [], missingMetadataKeys: [], collections,
    };
  }
  const stored = isObject(meta) ? meta : {};
  let invalid: string | undefined = badId;
  if (stored.overallStatus !== undefined && !isSyncStatus(stored.overallStatus)) invalid = `syncMetadata.overallStatus is ${describe(stored.overallStatus)}`;
  const storedCollections = stored.collections;
  if (storedCollections !== undefined && !isObject(storedCollections)) invalid ??= `syncMetadata.collections is ${describe(storedCollections)}`;
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = isObject(storedCollections) ? storedCollections[name] : undefined;
    if (state === undefined) continue;
    if (!isObject(state)) {
      invalid ??= `syncMetadata.collections.${name} is ${describe(state)}`;
      continue;
    }
    const parsed = parseCollection(name, state);
    invalid ??= parsed.invalid;
    collections[name] = parsed;
  }
  const fields = stored.lastModifiedFields;
  return {
    absent,
    invalid,
    overallStatus: stored.overallStatus,
    pendingHashCheck: stored.pendingHashCheck ?? null,
    lastModifiedFields: Array.isArray(fields) ? fields.filter((field): field is string => typeof field === 'string') : [],
    missingMetadataKeys: absent ? [...METADATA_KEYS] : METADATA_KEYS.filter((key) => stored[key] === undefined),
    collections,
  };
}

/** Every collection complete, the overall status present, no hash check pending. */
export function isSettled(parsed: ParsedSyncState): boolean {
  return (
    parsed.invalid === undefined &&
    parsed.pendingHashCheck === null &&
    parsed.missingMetadataKeys.length === 0 &&
    isSyncStatus(parsed.overallStatus) &&
    SYNC_COLLECTION_NAMES.every((name) => parsed.collections[name]?.complete === true)
  );
}

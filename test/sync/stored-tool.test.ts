import { Types } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { computeContentHashes } from '../../src/sync/content-hash.js';
import { isSettled, METADATA_KEYS, parseSyncState, type StoredTool } from '../../src/sync/stored-tool.js';
import { COLLECTION_STATE_KEYS, OPTIONAL_STATE_KEYS, type CollectionSyncState } from '../../src/sync/sync-state.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName } from '../../src/sync/vocabulary.js';
import { EDITOR_CONTENT } from '../helpers/content.js';
import { specBackfillShape } from '../helpers/legacy.js';

const CONTENT = EDITOR_CONTENT;

const SYNCED_AT = new Date('2026-01-01T00:00:00Z');

function collectionState(hash: string, overrides: Partial<CollectionSyncState> = {}): CollectionSyncState {
  // As the package stores a failure: with its retry time (none only for a validation error).
  const retryTime = overrides.status === 'failed' && overrides.errorCode !== 'VALIDATION_ERROR' ? { nextRetryAt: SYNCED_AT } : {};
  return {
    status: 'synced',
    lastSyncedAt: SYNCED_AT,
    lastSyncAttemptAt: SYNCED_AT,
    lastError: null,
    errorCode: null,
    retryCount: 0,
    nextRetryAt: null,
    contentHash: hash,
    vectorVersion: 1,
    claimedBy: null,
    claimedUntil: null,
    embeddingModel: null,
    ...retryTime,
    ...overrides,
  };
}

/** Complete, settled metadata whose hashes are those of the stored content. */
function settledMetadata(): Record<string, unknown> {
  const hashes = computeContentHashes(CONTENT);
  const collections = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, collectionState(hashes[name])]));
  return {
    overallStatus: 'synced',
    collections,
    lastModifiedFields: ['name'],
    createdAt: SYNCED_AT,
    updatedAt: SYNCED_AT,
    pendingHashCheck: null,
  };
}

function tool(syncMetadata?: unknown): StoredTool {
  const stored: StoredTool = { _id: new Types.ObjectId(), id: 'vscode', ...CONTENT };
  if (syncMetadata !== undefined) stored.syncMetadata = syncMetadata;
  return stored;
}

/** Settled metadata with one collection's state changed. */
function withCollection(name: SyncCollectionName, state: Record<string, unknown>): Record<string, unknown> {
  const meta = settledMetadata();
  const collections = meta.collections as Record<string, unknown>;
  collections[name] = state;
  return meta;
}

function without(object: Record<string, unknown>, key: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([name]) => name !== key));
}

describe('parseSyncState', () => {
  it('reads absent metadata (missing or null) as absent, every key missing, nothing invalid', () => {
    for (const stored of [tool(), tool(null)]) {
      const parsed = parseSyncState(stored);
      expect(parsed.absent).toBe(true);
      expect(parsed.invalid).toBeUndefined();
      expect(parsed.pendingHashCheck).toBeNull();
      expect(parsed.overallStatus).toBeUndefined();
      expect(parsed.lastModifiedFields).toEqual([]);
      expect(parsed.missingMetadataKeys).toEqual([...METADATA_KEYS]);
      for (const name of SYNC_COLLECTION_NAMES) expect(parsed.collections[name]).toBeUndefined();
      expect(isSettled(parsed)).toBe(false);
    }
  });

  it("reads the spec's partial backfill shape: statuses kept, hashes and dates missing, not invalid", () => {
    const shape = specBackfillShape();
    const parsed = parseSyncState(tool(shape));
    expect(parsed.absent).toBe(false);
    expect(parsed.invalid).toBeUndefined();
    expect(parsed.overallStatus).toBe('pending');
    expect(parsed.pendingHashCheck).toBeNull();
    expect(parsed.missingMetadataKeys).toEqual([]);
    const expected: Record<SyncCollectionName, [string, number, number]> = {
      tools: ['pending', 0, 0],
      functionality: ['synced', 0, 3],
      usecases: ['failed', 2, 1],
      interface: ['pending', 0, 0],
    };
    for (const name of SYNC_COLLECTION_NAMES) {
      const state = parsed.collections[name];
      const [status, retryCount, vectorVersion] = expected[name];
      expect(state, name).toBeDefined();
      expect(state?.complete).toBe(false);
      // A retry time is missing only where the collection failed; elsewhere its absence is null.
      const retryTime = status === 'failed' ? ['nextRetryAt'] : [];
      expect(state?.missing).toEqual(['lastSyncedAt', 'lastSyncAttemptAt', 'lastError', 'errorCode', ...retryTime, 'contentHash']);
      expect(state?.status).toBe(status);
      expect(state?.storedStatus).toBe(status);
      expect(state?.retryCount).toBe(retryCount);
      expect(state?.storedRetryCount).toBe(retryCount);
      expect(state?.vectorVersion).toBe(vectorVersion);
      expect(state?.storedHash).toBeUndefined();
      expect(state?.contentHash).toBe('');
      expect(state?.lastSyncedAt).toBeNull();
      expect(state?.errorCode).toBeNull();
      expect(state?.invalid).toBeUndefined();
    }
    expect(isSettled(parsed)).toBe(false);
  });

  it('reads complete metadata with real hashes as settled', () => {
    const meta = settledMetadata();
    const parsed = parseSyncState(tool(meta));
    const hashes = computeContentHashes(CONTENT);
    expect(parsed.absent).toBe(false);
    expect(parsed.invalid).toBeUndefined();
    expect(parsed.overallStatus).toBe('synced');
    expect(parsed.lastModifiedFields).toEqual(['name']);
    expect(parsed.missingMetadataKeys).toEqual([]);
    for (const name of SYNC_COLLECTION_NAMES) {
      const state = parsed.collections[name];
      expect(state?.complete).toBe(true);
      expect(state?.missing).toEqual([]);
      expect(state?.contentHash).toBe(hashes[name]);
      expect(state?.storedHash).toBe(hashes[name]);
      expect(state?.lastSyncedAt).toEqual(SYNCED_AT);
      expect(state?.vectorVersion).toBe(1);
    }
    expect(isSettled(parsed)).toBe(true);
  });

  it('keeps the stored values of a failed collection', () => {
    const hashes = computeContentHashes(CONTENT);
    const failed = collectionState(hashes.usecases, { status: 'failed', errorCode: 'QDRANT_TIMEOUT', lastError: 'timed out', retryCount: 4 });
    const parsed = parseSyncState(tool(withCollection('usecases', { ...failed })));
    const state = parsed.collections.usecases;
    expect(state?.status).toBe('failed');
    expect(state?.errorCode).toBe('QDRANT_TIMEOUT');
    expect(state?.retryCount).toBe(4);
    expect(state?.complete).toBe(true);
    expect(parsed.invalid).toBeUndefined();
  });

  it('reports a pending hash check as stored; a tool with one is not settled', () => {
    const token = new Types.ObjectId();
    const parsed = parseSyncState(tool({ ...settledMetadata(), pendingHashCheck: token }));
    expect(parsed.pendingHashCheck).toBe(token);
    expect(parsed.invalid).toBeUndefined();
    expect(isSettled(parsed)).toBe(false);
  });

  it('reads a missing pendingHashCheck as null: nothing pending', () => {
    const meta = settledMetadata();
    delete meta.pendingHashCheck;
    const parsed = parseSyncState(tool(meta));
    expect(parsed.pendingHashCheck).toBeNull();
    expect(isSettled(parsed)).toBe(true);
  });

  it('is not settled while a hash is empty (never hashed), a key is missing, or the overall status is missing', () => {
    const hashes = computeContentHashes(CONTENT);
    const emptyHash = parseSyncState(tool(withCollection('interface', { ...collectionState('') })));
    expect(emptyHash.invalid).toBeUndefined();
    expect(emptyHash.collections.interface?.complete).toBe(false);
    expect(emptyHash.collections.interface?.missing).toEqual([]);
    expect(isSettled(emptyHash)).toBe(false);
    const syncedWithoutRetryTime = parseSyncState(tool(withCollection('tools', without({ ...collectionState(hashes.tools) }, 'nextRetryAt'))));
    expect(syncedWithoutRetryTime.collections.tools?.complete).toBe(true);

    // A claim is optional: a tool stored before claims existed is complete without one.
    for (const key of OPTIONAL_STATE_KEYS) {
      const parsed = parseSyncState(tool(withCollection('tools', without({ ...collectionState(hashes.tools) }, key))));
      expect(parsed.collections.tools?.complete, key).toBe(true);
    }

    for (const key of COLLECTION_STATE_KEYS.filter((name) => !(OPTIONAL_STATE_KEYS as readonly string[]).includes(name))) {
      // A retry time belongs to a failed collection (a synced one without it is complete: below).
      const state = without({ ...collectionState(hashes.tools, key === 'nextRetryAt' ? { status: 'failed', errorCode: 'UNKNOWN', retryCount: 1 } : {}) }, key);
      const parsed = parseSyncState(tool(withCollection('tools', state)));
      expect(parsed.invalid, key).toBeUndefined();
      expect(parsed.collections.tools?.missing).toEqual([key]);
      expect(parsed.collections.tools?.complete).toBe(false);
      expect(isSettled(parsed), key).toBe(false);
    }

    for (const key of METADATA_KEYS) {
      const parsed = parseSyncState(tool(without(settledMetadata(), key)));
      expect(parsed.invalid, key).toBeUndefined();
      expect(parsed.missingMetadataKeys).toEqual([key]);
      expect(isSettled(parsed), key).toBe(false);
    }

    const noInterface = settledMetadata();
    delete (noInterface.collections as Record<string, unknown>).interface;
    const parsed = parseSyncState(tool(noInterface));
    expect(parsed.invalid).toBeUndefined();
    expect(parsed.collections.interface).toBeUndefined();
    expect(isSettled(parsed)).toBe(false);
  });

  it('names each invalid value in `invalid`', () => {
    const cases: [string, unknown, string][] = [
      ['overallStatus done', { ...settledMetadata(), overallStatus: 'done' }, 'syncMetadata.overallStatus is "done"'],
      ['retryCount -2', withCollection('tools', { ...collectionState(computeContentHashes(CONTENT).tools), retryCount: -2 }),
        'syncMetadata.collections.tools.retryCount is -2'],
      ['retryCount 1.5', withCollection('interface', { ...collectionState(''), retryCount: 1.5 }), 'syncMetadata.collections.interface.retryCount is 1.5'],
      ['status bogus', withCollection('usecases', { ...collectionState(''), status: 'bogus' }), 'syncMetadata.collections.usecases.status is "bogus"'],
      ['errorCode unknown', withCollection('tools', { ...collectionState(''), errorCode: 'OOPS' }), 'syncMetadata.collections.tools.errorCode is "OOPS"'],
      ['contentHash not hex', withCollection('tools', { ...collectionState('XYZ') }), 'syncMetadata.collections.tools.contentHash is "XYZ"'],
      ['lastSyncedAt a string', withCollection('tools', { ...collectionState(''), lastSyncedAt: '2026-01-01' }),
        'syncMetadata.collections.tools.lastSyncedAt is "2026-01-01"'],
      ['vectorVersion a string', withCollection('functionality', { ...collectionState(''), vectorVersion: '3' }),
        'syncMetadata.collections.functionality.vectorVersion is "3"'],
      ['collections a number', { ...settledMetadata(), collections: 5 }, 'syncMetadata.collections is 5'],
      ['collections a string', { ...settledMetadata(), collections: 'all' }, 'syncMetadata.collections is "all"'],
      ['collections an array', { ...settledMetadata(), collections: [] }, 'syncMetadata.collections is []'],
      ['a collection a string', withCollection('interface', 'synced' as unknown as Record<string, unknown>), 'syncMetadata.collections.interface is "synced"'],
      ['syncMetadata a string', 'synced', 'syncMetadata is "synced", not an object'],
      ['syncMetadata a number', 42, 'syncMetadata is 42, not an object'],
      ['syncMetadata an array', [], 'syncMetadata is [], not an object'],
      ['syncMetadata a boolean', true, 'syncMetadata is true, not an object'],
    ];
    for (const [label, meta, reason] of cases) {
      const parsed = parseSyncState(tool(meta));
      expect(parsed.invalid, label).toBe(reason);
      expect(isSettled(parsed), label).toBe(false);
    }
  });

  it('names the first invalid value when there are several', () => {
    const meta = { ...withCollection('usecases', { ...collectionState(''), status: 'bogus' }), overallStatus: 'done' };
    expect(parseSyncState(tool(meta)).invalid).toBe('syncMetadata.overallStatus is "done"');
  });

  it('reads a Date as syncMetadata as invalid, not as an object', () => {
    const parsed = parseSyncState(tool(SYNCED_AT));
    expect(parsed.absent).toBe(false);
    expect(parsed.invalid).toMatch(/^syncMetadata is .*, not an object$/);
  });

  it('keeps only the strings of lastModifiedFields', () => {
    const parsed = parseSyncState(tool({ ...settledMetadata(), lastModifiedFields: ['name', 3, null, 'tags'] }));
    expect(parsed.lastModifiedFields).toEqual(['name', 'tags']);
    expect(parseSyncState(tool({ ...settledMetadata(), lastModifiedFields: 'name' })).lastModifiedFields).toEqual([]);
  });
});

describe('parseSyncState on hostile input', () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;

  it.each([
    ['null', null],
    ['a number', 7],
    ['NaN', Number.NaN],
    ['an array', [1, 2]],
    ['an array of states', [settledMetadata()]],
    ['a bigint', 10n],
    ['a symbol', Symbol('meta')],
    ['a function', () => 'meta'],
    ['a cyclic object', cyclic],
    ['a cyclic overallStatus', { ...settledMetadata(), overallStatus: cyclic }],
    ['a bigint retryCount', withCollection('tools', { ...collectionState(''), retryCount: 3n })],
    ['a symbol status', withCollection('tools', { ...collectionState(''), status: Symbol('synced') })],
    ['collections null', { ...settledMetadata(), collections: null }],
    ['a collection null', withCollection('tools', null as unknown as Record<string, unknown>)],
    ['a collection an array', withCollection('tools', [] as unknown as Record<string, unknown>)],
    ['a null-prototype object', Object.assign(Object.create(null) as Record<string, unknown>, { overallStatus: 'synced' })],
    ['a null-prototype collection', withCollection('tools', Object.assign(Object.create(null) as Record<string, unknown>, { status: 'synced' }))],
  ])('never throws on syncMetadata %s', (_label, meta) => {
    expect(() => parseSyncState(tool(meta))).not.toThrow();
    expect(isSettled(parseSyncState(tool(meta)))).toBe(false);
  });

  const throwingProxy = (): object => new Proxy({}, {
    get() {
      throw new Error('hostile get');
    },
  });

  it('never throws on a syncMetadata Proxy that throws on get', () => {
    const stored = tool(throwingProxy());
    expect(() => parseSyncState(stored)).not.toThrow();
  });

  it('never throws on a collection state Proxy that throws on get', () => {
    const stored = tool(withCollection('tools', throwingProxy() as Record<string, unknown>));
    expect(() => parseSyncState(stored)).not.toThrow();
  });

  it('never throws on a getter that throws inside syncMetadata', () => {
    const meta = settledMetadata();
    Object.defineProperty(meta, 'overallStatus', {
      enumerable: true,
      get() {
        throw new Error('hostile getter');
      },
    });
    expect(() => parseSyncState(tool(meta))).not.toThrow();
  });

  it('never throws on a revoked Proxy as syncMetadata', () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(() => parseSyncState(tool(proxy))).not.toThrow();
  });
});

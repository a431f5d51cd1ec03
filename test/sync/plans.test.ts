import { Types } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { CONTENT_FIELDS } from '../../src/sync/collection-fields.js';
import { retryDelayMs } from '../../src/sync/backoff.js';
import { computeContentHashes } from '../../src/sync/content-hash.js';
import { planClaim, planExtendClaims, planReleaseClaims } from '../../src/sync/plans/claim.js';
import { planFlagEmbeddingModel } from '../../src/sync/plans/flag-embedding-model.js';
import { planMarkFailed } from '../../src/sync/plans/mark-failed.js';
import { planMarkSynced } from '../../src/sync/plans/mark-synced.js';
import { type Decision, type PlannedWrite } from '../../src/sync/plans/plan.js';
import { planQuarantine, QUARANTINE_MESSAGE_PREFIX } from '../../src/sync/plans/quarantine.js';
import { planRequeue } from '../../src/sync/plans/requeue.js';
import { planSettle } from '../../src/sync/plans/settle.js';
import { isSettled, parseSyncState, type StoredTool } from '../../src/sync/stored-tool.js';
import {
  collectionPath,
  LAST_MODIFIED_FIELDS,
  METADATA_UPDATED_AT,
  OVERALL_STATUS,
  PENDING_HASH_CHECK,
  type CollectionSyncState,
} from '../../src/sync/sync-state.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName, type SyncStatus } from '../../src/sync/vocabulary.js';
import { EDITOR_CONTENT } from '../helpers/content.js';
import { specBackfillShape } from '../helpers/legacy.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const EARLIER = new Date('2026-01-01T00:00:00Z');

const CONTENT = EDITOR_CONTENT;
type Content = typeof CONTENT;
const HASHES = computeContentHashes(CONTENT);

type States = Partial<Record<SyncCollectionName, Partial<CollectionSyncState>>>;

function collectionState(hash: string, overrides: Partial<CollectionSyncState> = {}): CollectionSyncState {
  // As the package stores a failure: with its retry time (none only for a validation error).
  const retryTime = overrides.status === 'failed' && overrides.errorCode !== 'VALIDATION_ERROR' ? { nextRetryAt: EARLIER } : {};
  return {
    status: 'synced',
    lastSyncedAt: EARLIER,
    lastSyncAttemptAt: EARLIER,
    lastError: null,
    errorCode: null,
    retryCount: 0,
    nextRetryAt: null,
    contentHash: hash,
    vectorVersion: 2,
    claimedBy: null,
    claimedUntil: null,
    embeddingModel: null,
    ...retryTime,
    ...overrides,
  };
}

/**
 * A stored tool with complete metadata. The hashes are those of `hashedContent` (the content as
 * of the last settle), the stored content is `content`: they differ after a write not yet settled.
 */
function storedTool(options: {
  states?: States;
  overallStatus?: SyncStatus;
  content?: Partial<Content>;
  hashedContent?: Partial<Content>;
  pendingHashCheck?: Types.ObjectId | null;
} = {}): StoredTool {
  const content = { ...CONTENT, ...options.content };
  const hashes = computeContentHashes({ ...CONTENT, ...(options.hashedContent ?? options.content) });
  const collections = Object.fromEntries(
    SYNC_COLLECTION_NAMES.map((name) => [name, collectionState(hashes[name], options.states?.[name])]),
  );
  return {
    _id: new Types.ObjectId(),
    id: 'vscode',
    url: 'https://code.visualstudio.com',
    ...content,
    syncMetadata: {
      overallStatus: options.overallStatus ?? 'synced',
      collections,
      lastModifiedFields: ['name'],
      createdAt: EARLIER,
      updatedAt: EARLIER,
      pendingHashCheck: options.pendingHashCheck ?? null,
    },
  };
}

function legacyTool(syncMetadata?: unknown): StoredTool {
  const tool: StoredTool = { _id: new Types.ObjectId(), id: 'vscode', ...CONTENT };
  if (syncMetadata !== undefined) tool.syncMetadata = syncMetadata;
  return tool;
}

function metadataOf(tool: StoredTool): Record<string, unknown> {
  const meta = tool.syncMetadata;
  if (typeof meta !== 'object' || meta === null) throw new Error('fixture without metadata');
  return meta as Record<string, unknown>;
}

/** The expected filter of a plan made from a tool with complete metadata (statuses and hashes as stored). */
function conditionAsRead(tool: StoredTool, pending: unknown = null): Record<string, unknown> {
  const filter: Record<string, unknown> = { _id: tool._id, [PENDING_HASH_CHECK]: pending };
  const collections = metadataOf(tool).collections as Record<string, CollectionSyncState>;
  for (const name of SYNC_COLLECTION_NAMES) {
    filter[collectionPath(name, 'status')] = collections[name]?.status;
    filter[collectionPath(name, 'contentHash')] = collections[name]?.contentHash;
  }
  return filter;
}

function contentConditions(tool: StoredTool): Record<string, unknown> {
  return Object.fromEntries(CONTENT_FIELDS.map((field) => [field, { $eq: tool[field] ?? null }]));
}

/**
 * What the server does with a plan's `$set` (dotted paths only): used to check that a settle's
 * write, once applied, leaves a settled tool. Plans write nothing but `$set`.
 */
function applySet(tool: StoredTool, write: PlannedWrite): StoredTool {
  const copy: StoredTool = { ...tool, syncMetadata: structuredClone(tool.syncMetadata) };
  const { $set, ...others } = write.update;
  expect(Object.keys(others)).toEqual([]);
  for (const [path, value] of Object.entries($set as Record<string, unknown>)) {
    const parts = path.split('.');
    const last = parts.pop();
    if (last === undefined) throw new Error('empty path');
    let target = copy as Record<string, unknown>;
    for (const part of parts) {
      const next = target[part];
      if (typeof next !== 'object' || next === null) target[part] = {};
      target = target[part] as Record<string, unknown>;
    }
    target[last] = structuredClone(value);
  }
  return copy;
}

function settleWrite(tool: StoredTool): PlannedWrite {
  const plan = planSettle(tool, NOW);
  if (plan.kind !== 'write') throw new Error(`expected a settle write, got ${plan.kind}`);
  return plan.write;
}

function doneWrite<T>(decision: Decision<T>): { write: PlannedWrite | null; result: T } {
  if (decision.kind !== 'done') throw new Error(`expected a done decision, got ${JSON.stringify(decision)}`);
  return decision;
}

/** The settle write, once applied, leaves a tool that is settled and that a new settle leaves alone. */
function expectSettlesIn(tool: StoredTool): void {
  const settled = applySet(tool, settleWrite(tool));
  expect(isSettled(parseSyncState(settled))).toBe(true);
  expect(planSettle(settled, NOW)).toEqual({ kind: 'settled' });
}

describe('planSettle', () => {
  it('gives a tool without metadata the full default metadata with the real hashes', () => {
    for (const tool of [legacyTool(), legacyTool(null)]) {
      const plan = planSettle(tool, NOW);
      expect(plan.kind).toBe('write');
      if (plan.kind !== 'write') return;
      const collections = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, {
        status: 'pending', lastSyncedAt: null, lastSyncAttemptAt: null, lastError: null, errorCode: null, retryCount: 0,
        nextRetryAt: null, contentHash: HASHES[name], vectorVersion: 0, claimedBy: null, claimedUntil: null, embeddingModel: null,
      }]));
      expect(plan.write.update).toEqual({
        $set: {
          syncMetadata: { overallStatus: 'pending', collections, lastModifiedFields: [], createdAt: NOW, updatedAt: NOW, pendingHashCheck: null },
        },
      });
      for (const name of SYNC_COLLECTION_NAMES) expect(HASHES[name]).toMatch(/^[0-9a-f]{16}$/);
      expect(new Set(Object.values(HASHES)).size).toBe(SYNC_COLLECTION_NAMES.length);
      expect(plan.statuses).toEqual({ tools: 'pending', functionality: 'pending', usecases: 'pending', interface: 'pending' });
      const nothingRead = Object.fromEntries(SYNC_COLLECTION_NAMES.flatMap((name) => [
        [collectionPath(name, 'status'), null], [collectionPath(name, 'contentHash'), null],
      ]));
      expect(plan.write.filter).toEqual({ _id: tool._id, [PENDING_HASH_CHECK]: null, ...nothingRead, ...contentConditions(tool) });
      expectSettlesIn(tool);
    }
  });

  it('hashes the content as stored: a missing content field is null in the filter and in the hash', () => {
    const tool = legacyTool();
    delete tool.longDescription;
    delete tool.tags;
    const plan = planSettle(tool, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    expect(plan.write.filter.longDescription).toEqual({ $eq: null });
    expect(plan.write.filter.tags).toEqual({ $eq: null });
    const written = (plan.write.update.$set as { syncMetadata: { collections: Record<string, { contentHash: string }> } }).syncMetadata;
    const hashes = computeContentHashes(tool);
    expect(hashes.tools).not.toBe(HASHES.tools);
    for (const name of SYNC_COLLECTION_NAMES) expect(written.collections[name]?.contentHash).toBe(hashes[name]);
  });

  it("fills only what the spec's partial backfill shape lacks: statuses, retry counts and vector versions stay", () => {
    const tool = legacyTool(specBackfillShape());
    const plan = planSettle(tool, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    const expected: Record<string, unknown> = {};
    for (const name of SYNC_COLLECTION_NAMES) {
      expected[collectionPath(name, 'lastSyncedAt')] = null;
      expected[collectionPath(name, 'lastSyncAttemptAt')] = null;
      expected[collectionPath(name, 'lastError')] = null;
      expected[collectionPath(name, 'errorCode')] = null;
      expected[collectionPath(name, 'contentHash')] = HASHES[name];
    }
    // The failed collection has no attempt time recorded: its retry is due now.
    expected[collectionPath('usecases', 'nextRetryAt')] = NOW;
    // pending, synced, failed, pending: the aggregate is failed, not the stored pending.
    expected[OVERALL_STATUS] = 'failed';
    expected[METADATA_UPDATED_AT] = NOW;
    expect(plan.write.update).toEqual({ $set: expected });
    expect(plan.statuses).toEqual({ tools: 'pending', functionality: 'synced', usecases: 'failed', interface: 'pending' });
    const statuses = { tools: 'pending', functionality: 'synced', usecases: 'failed', interface: 'pending' } as const;
    const read = Object.fromEntries(SYNC_COLLECTION_NAMES.flatMap((name) => [
      [collectionPath(name, 'status'), statuses[name]], [collectionPath(name, 'contentHash'), null],
    ]));
    expect(plan.write.filter).toEqual({ _id: tool._id, [PENDING_HASH_CHECK]: null, ...read, ...contentConditions(tool) });
    expectSettlesIn(tool);
  });

  it('fills missing top-level keys: lastModifiedFields and createdAt', () => {
    const tool = storedTool();
    const meta = metadataOf(tool);
    delete meta.lastModifiedFields;
    delete meta.createdAt;
    const plan = planSettle(tool, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    expect(plan.write.update).toEqual({ $set: { [LAST_MODIFIED_FIELDS]: [], 'syncMetadata.createdAt': NOW, [METADATA_UPDATED_AT]: NOW } });
    expectSettlesIn(tool);
  });

  it('fills a missing updatedAt (a tool isSettled calls unsettled is never left as it is)', () => {
    const tool = storedTool();
    delete metadataOf(tool).updatedAt;
    expect(isSettled(parseSyncState(tool))).toBe(false);
    const plan = planSettle(tool, NOW);
    expect(plan.kind).toBe('write');
    if (plan.kind !== 'write') return;
    expect(plan.write.update).toEqual({ $set: { [METADATA_UPDATED_AT]: NOW } });
  });

  it('sets the overall status when it is missing', () => {
    const tool = storedTool({ states: { interface: { status: 'stale' } } });
    delete metadataOf(tool).overallStatus;
    const plan = planSettle(tool, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    expect(plan.write.update).toEqual({ $set: { [OVERALL_STATUS]: 'stale', [METADATA_UPDATED_AT]: NOW } });
    expectSettlesIn(tool);
  });

  it('gives metadata without collections all four, and a missing collection its default state', () => {
    const noCollections = storedTool();
    delete metadataOf(noCollections).collections;
    let plan = planSettle(noCollections, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    const defaults = (hash: string): CollectionSyncState => ({
      status: 'pending', lastSyncedAt: null, lastSyncAttemptAt: null, lastError: null, errorCode: null, retryCount: 0, nextRetryAt: null, contentHash: hash, vectorVersion: 0,
      claimedBy: null, claimedUntil: null, embeddingModel: null,
    });
    expect(plan.write.update).toEqual({
      $set: {
        'syncMetadata.collections': Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, defaults(HASHES[name])])),
        [OVERALL_STATUS]: 'pending',
        [METADATA_UPDATED_AT]: NOW,
      },
    });
    expectSettlesIn(noCollections);

    const noInterface = storedTool();
    delete (metadataOf(noInterface).collections as Record<string, unknown>).interface;
    plan = planSettle(noInterface, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    expect(plan.write.update).toEqual({
      $set: { 'syncMetadata.collections.interface': defaults(HASHES.interface), [OVERALL_STATUS]: 'pending', [METADATA_UPDATED_AT]: NOW },
    });
    expect(plan.write.filter[collectionPath('interface', 'status')]).toBeNull();
    expect(plan.write.filter[collectionPath('interface', 'contentHash')]).toBeNull();
    expectSettlesIn(noInterface);
  });

  it('transitions every collection whose content changed (afterContentChange)', () => {
    const token = new Types.ObjectId();
    const tool = storedTool({
      content: { name: 'VS Code' },
      hashedContent: {},
      pendingHashCheck: token,
      overallStatus: 'failed',
      states: {
        tools: { status: 'synced' },
        functionality: { status: 'failed', retryCount: 3, errorCode: 'QDRANT_TIMEOUT' },
        usecases: { status: 'failed', retryCount: 5, lastSyncedAt: null, errorCode: 'UNKNOWN' },
        interface: { status: 'stale', retryCount: 1 },
      },
    });
    const plan = planSettle(tool, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    const hashes = computeContentHashes({ ...CONTENT, name: 'VS Code' });
    for (const name of SYNC_COLLECTION_NAMES) expect(hashes[name]).not.toBe(HASHES[name]);
    expect(plan.write.update).toEqual({
      $set: {
        [collectionPath('tools', 'status')]: 'stale',
        [collectionPath('tools', 'retryCount')]: 0,
        [collectionPath('tools', 'contentHash')]: hashes.tools,
        [collectionPath('functionality', 'status')]: 'stale',
        [collectionPath('functionality', 'retryCount')]: 0,
        [collectionPath('functionality', 'contentHash')]: hashes.functionality,
        // Back in line: the failures' retry times are void.
        [collectionPath('functionality', 'nextRetryAt')]: null,
        [collectionPath('usecases', 'status')]: 'pending',
        [collectionPath('usecases', 'retryCount')]: 0,
        [collectionPath('usecases', 'contentHash')]: hashes.usecases,
        [collectionPath('usecases', 'nextRetryAt')]: null,
        [collectionPath('interface', 'status')]: 'stale',
        [collectionPath('interface', 'retryCount')]: 1,
        [collectionPath('interface', 'contentHash')]: hashes.interface,
        [OVERALL_STATUS]: 'pending',
        [PENDING_HASH_CHECK]: null,
        [METADATA_UPDATED_AT]: NOW,
      },
    });
    expect(plan.statuses).toEqual({ tools: 'stale', functionality: 'stale', usecases: 'pending', interface: 'stale' });
    // A pending check guards the content (every write through the package sets a new one): no content condition.
    expect(plan.write.filter).toEqual(conditionAsRead(tool, token));
    expectSettlesIn(tool);
  });

  it('clears the retry time of a failed collection whose content changed (it is back in line)', () => {
    const tool = storedTool({
      overallStatus: 'failed',
      states: { usecases: { status: 'failed', retryCount: 2, errorCode: 'UNKNOWN', nextRetryAt: new Date('2026-03-01T13:00:00Z') } },
      content: { useCases: ['something new'] },
      hashedContent: {},
      pendingHashCheck: new Types.ObjectId(),
    });
    const write = settleWrite(tool);
    expect(write.update.$set).toMatchObject({ [collectionPath('usecases', 'status')]: 'stale', [collectionPath('usecases', 'nextRetryAt')]: null });
    expect(Object.keys(write.update.$set as object)).not.toContain(collectionPath('tools', 'nextRetryAt'));
  });

  it('makes a failure stored without a retry time (another writer left it null) due now; a validation failure waits for a content change', () => {
    const tool = storedTool({
      overallStatus: 'failed',
      states: {
        usecases: { status: 'failed', retryCount: 2, errorCode: 'QDRANT_UNAVAILABLE', nextRetryAt: null },
        interface: { status: 'failed', retryCount: 1, errorCode: 'VALIDATION_ERROR', nextRetryAt: null },
      },
    });
    expect(parseSyncState(tool).collections.usecases?.complete).toBe(false);
    expect(parseSyncState(tool).collections.interface?.complete).toBe(true);
    expect(isSettled(parseSyncState(tool))).toBe(false);
    const write = settleWrite(tool);
    expect(write.update.$set).toEqual({ [collectionPath('usecases', 'nextRetryAt')]: NOW, [METADATA_UPDATED_AT]: NOW });
    expectSettlesIn(tool);
  });

  it('transitions only the collections whose content changed', () => {
    const tool = storedTool({
      content: { functionality: ['edit code', 'debug', 'refactor'] },
      hashedContent: {},
      overallStatus: 'failed',
      states: { functionality: { status: 'synced', vectorVersion: 4 }, tools: { status: 'failed', retryCount: 2, errorCode: 'UNKNOWN' } },
    });
    const plan = planSettle(tool, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    const hashes = computeContentHashes({ ...CONTENT, functionality: ['edit code', 'debug', 'refactor'] });
    expect(hashes.tools).toBe(HASHES.tools);
    expect(plan.write.update).toEqual({
      $set: {
        [collectionPath('functionality', 'status')]: 'stale',
        [collectionPath('functionality', 'retryCount')]: 0,
        [collectionPath('functionality', 'contentHash')]: hashes.functionality,
        [METADATA_UPDATED_AT]: NOW,
      },
    });
    expect(plan.statuses).toEqual({ tools: 'failed', functionality: 'stale', usecases: 'synced', interface: 'synced' });
    expectSettlesIn(tool);
  });

  it('takes the hash of a never-hashed collection (contentHash \'\') without a transition', () => {
    const tool = storedTool({ states: { usecases: { status: 'synced', contentHash: '' } } });
    const plan = planSettle(tool, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    expect(plan.write.update).toEqual({ $set: { [collectionPath('usecases', 'contentHash')]: HASHES.usecases, [METADATA_UPDATED_AT]: NOW } });
    expect(plan.write.filter[collectionPath('usecases', 'contentHash')]).toBe('');
    expect(plan.statuses.usecases).toBe('synced');
    expectSettlesIn(tool);
  });

  it('clears a pending hash check whose content did not change, conditioned on that token', () => {
    const token = new Types.ObjectId();
    const tool = storedTool({ pendingHashCheck: token });
    const plan = planSettle(tool, NOW);
    if (plan.kind !== 'write') throw new Error(plan.kind);
    expect(plan.write.update).toEqual({ $set: { [PENDING_HASH_CHECK]: null, [METADATA_UPDATED_AT]: NOW } });
    expect(plan.write.filter[PENDING_HASH_CHECK]).toBe(token);
    expectSettlesIn(tool);
  });

  it('leaves a settled tool alone, also when only the order of a set field changed', () => {
    expect(planSettle(storedTool(), NOW)).toEqual({ kind: 'settled' });
    expect(planSettle(storedTool({ content: { tags: ['ide', 'editor', 'ide'] }, hashedContent: {} }), NOW)).toEqual({ kind: 'settled' });
  });

  it('refuses invalid metadata with the reason', () => {
    const tool = storedTool({ states: { tools: { retryCount: -2 } } });
    expect(planSettle(tool, NOW)).toEqual({ kind: 'invalid', reason: 'syncMetadata.collections.tools.retryCount is -2' });
    expect(planSettle(legacyTool('synced'), NOW)).toEqual({ kind: 'invalid', reason: 'syncMetadata is "synced", not an object' });
  });

  it('without a pending check, conditions its write on _id, statuses and hashes as read, and every content field with $eq', () => {
    const token = null;
    const tool = storedTool({ states: { tools: { status: 'stale', contentHash: '' } }, overallStatus: 'stale' });
    // A stored value that would be an operator or a pattern in a filter is compared, not matched against.
    tool.pricing = { $ne: null };
    tool.category = /editor/;
    const write = settleWrite(tool);
    expect(write.filter).toEqual({ ...conditionAsRead(tool, token), ...contentConditions(tool) });
    expect(Object.keys(write.filter)).toHaveLength(2 + 2 * SYNC_COLLECTION_NAMES.length + CONTENT_FIELDS.length);
    expect(write.filter.pricing).toEqual({ $eq: { $ne: null } });
    expect(write.filter.category).toEqual({ $eq: /editor/ });
    expect(write.filter[collectionPath('tools', 'status')]).toBe('stale');
  });

  it('for a tool not read (a saved document as in memory), conditions on its content and history too, as well as on the token', () => {
    const token = new Types.ObjectId();
    const tool = storedTool({ pendingHashCheck: token, content: { description: 'Edited in memory.' } });
    const read = planSettle(tool, NOW);
    const unread = planSettle(tool, NOW, { unread: true });
    if (read.kind !== 'write' || unread.kind !== 'write') throw new Error(`${read.kind} ${unread.kind}`);
    expect(read.write.filter).toEqual(conditionAsRead(tool, token));
    const history = Object.fromEntries(SYNC_COLLECTION_NAMES.flatMap((name): [string, unknown][] => [
      [collectionPath(name, 'retryCount'), { $eq: 0 }],
      [collectionPath(name, 'lastSyncedAt'), { $eq: EARLIER }],
      [collectionPath(name, 'lastSyncAttemptAt'), { $eq: EARLIER }],
    ]));
    // Its history as held too: a collection synced and failed again meanwhile has the same status and hash.
    expect(unread.write.filter).toEqual({ ...conditionAsRead(tool, token), ...contentConditions(tool), ...history });
    expect(unread.write.update).toEqual(read.write.update);
  });

  it('does not modify the tool it plans for', () => {
    const tool = legacyTool(specBackfillShape());
    const before = { ...tool, syncMetadata: structuredClone(tool.syncMetadata) };
    planSettle(tool, NOW);
    expect(tool).toEqual(before);
  });
});

describe('planMarkSynced', () => {
  it('settles a tool with a pending check, legacy or partial metadata first (kind again)', () => {
    const pending = storedTool({ pendingHashCheck: new Types.ObjectId() });
    for (const tool of [pending, legacyTool(), legacyTool(specBackfillShape())]) {
      expect(planMarkSynced(tool, 'tools', HASHES.tools, NOW)).toEqual({ kind: 'again', write: settleWrite(tool) });
    }
  });

  it('settles first a tool whose stored hash no longer describes its content (never marks on an unverified hash)', () => {
    const tool = storedTool({ content: { name: 'VS Code' }, hashedContent: {} });
    // The worker read the content hashed before the edit: the hash it holds is the stored one.
    expect(planMarkSynced(tool, 'tools', HASHES.tools, NOW)).toEqual({ kind: 'again', write: settleWrite(tool) });
  });

  it('refuses invalid metadata', () => {
    const tool = storedTool({ states: { usecases: { status: 'bogus' as SyncStatus } } });
    expect(planMarkSynced(tool, 'tools', HASHES.tools, NOW)).toEqual({ kind: 'invalid', reason: 'syncMetadata.collections.usecases.status is "bogus"' });
  });

  it('records the attempt and reports content-changed when the hash is not the stored one', () => {
    const tool = storedTool({ states: { tools: { status: 'stale' } }, overallStatus: 'stale' });
    const oldHash = computeContentHashes({ ...CONTENT, name: 'Old name' }).tools;
    const { write, result } = doneWrite(planMarkSynced(tool, 'tools', oldHash, NOW));
    expect(result).toEqual({ synced: false, reason: 'content-changed', currentContentHash: HASHES.tools });
    expect(write).toEqual({
      filter: { ...conditionAsRead(tool), ...claimAsRead('tools', null, null) },
      update: { $set: { [collectionPath('tools', 'lastSyncAttemptAt')]: NOW, ...claimCleared('tools'), [METADATA_UPDATED_AT]: NOW } },
    });
  });

  it('marks the collection synced, one vector version more, conditioned on the version read', () => {
    const tool = storedTool({
      overallStatus: 'failed',
      states: {
        tools: { status: 'failed', retryCount: 3, errorCode: 'QDRANT_TIMEOUT', lastError: 'timed out', vectorVersion: 4 },
        usecases: { status: 'stale' },
      },
    });
    const { write, result } = doneWrite(planMarkSynced(tool, 'tools', HASHES.tools, NOW));
    expect(result).toEqual({ synced: true, vectorVersion: 5 });
    expect(write).toEqual({
      filter: { ...conditionAsRead(tool), ...claimAsRead('tools', null, null), [collectionPath('tools', 'vectorVersion')]: 4 },
      update: {
        $set: {
          [collectionPath('tools', 'status')]: 'synced',
          [collectionPath('tools', 'lastSyncedAt')]: NOW,
          [collectionPath('tools', 'lastSyncAttemptAt')]: NOW,
          [collectionPath('tools', 'lastError')]: null,
          [collectionPath('tools', 'errorCode')]: null,
          [collectionPath('tools', 'retryCount')]: 0,
          [collectionPath('tools', 'nextRetryAt')]: null,
          [collectionPath('tools', 'vectorVersion')]: 5,
          [collectionPath('tools', 'embeddingModel')]: null,
          ...claimCleared('tools'),
          [OVERALL_STATUS]: 'stale',
          [METADATA_UPDATED_AT]: NOW,
        },
      },
    });
  });

  it('aggregates the overall status over all four collections', () => {
    const lastOne = storedTool({ overallStatus: 'pending', states: { interface: { status: 'pending', vectorVersion: 0, lastSyncedAt: null } } });
    const marked = doneWrite(planMarkSynced(lastOne, 'interface', HASHES.interface, NOW));
    expect(marked.result).toEqual({ synced: true, vectorVersion: 1 });
    expect(marked.write?.update.$set).toMatchObject({ [OVERALL_STATUS]: 'synced' });

    const others = storedTool({ overallStatus: 'failed', states: { tools: { status: 'pending' }, usecases: { status: 'failed' } } });
    expect(doneWrite(planMarkSynced(others, 'tools', HASHES.tools, NOW)).write?.update.$set).toMatchObject({ [OVERALL_STATUS]: 'failed' });
  });
});

/** A mark's condition on the claim as stored. */
function claimAsRead(name: SyncCollectionName, claimedBy: string | null, claimedUntil: Date | null): Record<string, unknown> {
  return { [collectionPath(name, 'claimedBy')]: { $eq: claimedBy }, [collectionPath(name, 'claimedUntil')]: { $eq: claimedUntil } };
}

const claimCleared = (name: SyncCollectionName): Record<string, null> => ({ [collectionPath(name, 'claimedBy')]: null, [collectionPath(name, 'claimedUntil')]: null });

describe('planMarkFailed', () => {
  const failure = { errorCode: 'QDRANT_UNAVAILABLE', lastError: 'connect ECONNREFUSED' } as const;

  it('stores no retry time for a validation failure: the content has to change first', () => {
    const decision = doneWrite(planMarkFailed(storedTool(), 'tools', { errorCode: 'VALIDATION_ERROR', lastError: 'bad' }, NOW));
    expect(decision.write?.update.$set).toMatchObject({ [collectionPath('tools', 'nextRetryAt')]: null });
  });

  it('stores a later retry time after each failure (the backoff grows)', () => {
    const times = [0, 1, 2, 3].map((retryCount) => {
      const tool = storedTool({ overallStatus: 'failed', states: { tools: { status: 'failed', retryCount, errorCode: 'UNKNOWN' } } });
      const set = doneWrite(planMarkFailed(tool, 'tools', failure, NOW)).write?.update.$set as Record<string, unknown>;
      const due = set[collectionPath('tools', 'nextRetryAt')];
      if (!(due instanceof Date)) throw new Error('no retry time planned');
      return due.getTime() - NOW.getTime();
    });
    expect(times[0]).toBeGreaterThan(0);
    // Equal jitter: each delay is at least half the next one's maximum and grows on average.
    expect(times[3] ?? 0).toBeGreaterThan(times[0] ?? 0);
  });

  it('records the failure, one retry more, conditioned on the retry count read', () => {
    const tool = storedTool({ overallStatus: 'failed', states: { functionality: { status: 'failed', retryCount: 2, errorCode: 'UNKNOWN' } } });
    const { write, result } = doneWrite(planMarkFailed(tool, 'functionality', failure, NOW));
    expect(result).toEqual({ recorded: true, errorCode: 'QDRANT_UNAVAILABLE', retryCount: 3 });
    expect(write).toEqual({
      filter: { ...conditionAsRead(tool), ...claimAsRead('functionality', null, null), [collectionPath('functionality', 'retryCount')]: 2 },
      update: {
        $set: {
          [collectionPath('functionality', 'status')]: 'failed',
          [collectionPath('functionality', 'lastSyncAttemptAt')]: NOW,
          [collectionPath('functionality', 'lastError')]: 'connect ECONNREFUSED',
          [collectionPath('functionality', 'errorCode')]: 'QDRANT_UNAVAILABLE',
          [collectionPath('functionality', 'retryCount')]: 3,
          // Due when the backoff after this third failure ends (jitter from the tool and collection).
          [collectionPath('functionality', 'nextRetryAt')]: new Date(NOW.getTime() + retryDelayMs(3, 'QDRANT_UNAVAILABLE', `${String(tool._id)}:functionality`)),
          ...claimCleared('functionality'),
          [OVERALL_STATUS]: 'failed',
          [METADATA_UPDATED_AT]: NOW,
        },
      },
    });
  });

  it('makes the overall status failed from synced', () => {
    const tool = storedTool();
    const { write, result } = doneWrite(planMarkFailed(tool, 'tools', failure, NOW));
    expect(result).toMatchObject({ recorded: true, retryCount: 1 });
    expect(write?.filter[collectionPath('tools', 'retryCount')]).toBe(0);
    expect(write?.update.$set).toMatchObject({ [OVERALL_STATUS]: 'failed', [collectionPath('tools', 'status')]: 'failed' });
  });

  it('settles first, and quarantines metadata it cannot use (the failure is recorded, never refused)', () => {
    const pending = storedTool({ pendingHashCheck: new Types.ObjectId() });
    expect(planMarkFailed(pending, 'tools', failure, NOW)).toEqual({ kind: 'again', write: settleWrite(pending) });
    const legacy = legacyTool();
    expect(planMarkFailed(legacy, 'tools', failure, NOW)).toEqual({ kind: 'again', write: settleWrite(legacy) });
    const unusable = storedTool({ overallStatus: 'done' as SyncStatus });
    expect(planMarkFailed(unusable, 'tools', failure, NOW)).toEqual({
      kind: 'done',
      write: planQuarantine(unusable, 'syncMetadata.overallStatus is "done"', NOW),
      result: { recorded: true, errorCode: 'VALIDATION_ERROR', retryCount: 0 },
    });
  });
});

describe('planRequeue', () => {
  const mixed = (): StoredTool => storedTool({
    overallStatus: 'failed',
    states: {
      tools: { status: 'failed', retryCount: 5, errorCode: 'QDRANT_TIMEOUT', lastSyncedAt: EARLIER },
      functionality: { status: 'failed', retryCount: 5, errorCode: 'EMBEDDING_RATE_LIMIT', lastSyncedAt: null, vectorVersion: 0 },
      usecases: { status: 'synced' },
      interface: { status: 'failed', retryCount: 1, errorCode: 'UNKNOWN', lastSyncedAt: null, vectorVersion: 0 },
    },
  });

  it('puts failed collections back in line: stale if ever synced, else pending, retries reset', () => {
    const tool = mixed();
    const { write, result } = doneWrite(planRequeue(tool, SYNC_COLLECTION_NAMES, undefined, NOW));
    expect(result).toBe(3);
    expect(write).toEqual({
      filter: conditionAsRead(tool),
      update: {
        $set: {
          [collectionPath('tools', 'status')]: 'stale',
          [collectionPath('tools', 'retryCount')]: 0,
          [collectionPath('tools', 'nextRetryAt')]: null,
          [collectionPath('functionality', 'status')]: 'pending',
          [collectionPath('functionality', 'retryCount')]: 0,
          [collectionPath('functionality', 'nextRetryAt')]: null,
          [collectionPath('interface', 'status')]: 'pending',
          [collectionPath('interface', 'retryCount')]: 0,
          [collectionPath('interface', 'nextRetryAt')]: null,
          [OVERALL_STATUS]: 'pending',
          [METADATA_UPDATED_AT]: NOW,
        },
      },
    });
  });

  it('requeues only the failures with the given error codes, among the given collections', () => {
    const tool = mixed();
    const byCode = doneWrite(planRequeue(tool, SYNC_COLLECTION_NAMES, ['QDRANT_TIMEOUT', 'VALIDATION_ERROR'], NOW));
    expect(byCode.result).toBe(1);
    expect(byCode.write?.update).toEqual({
      $set: {
        [collectionPath('tools', 'status')]: 'stale',
        [collectionPath('tools', 'retryCount')]: 0,
        [collectionPath('tools', 'nextRetryAt')]: null,
        [OVERALL_STATUS]: 'failed',
        [METADATA_UPDATED_AT]: NOW,
      },
    });

    const byCollection = doneWrite(planRequeue(tool, ['interface', 'usecases'], undefined, NOW));
    expect(byCollection.result).toBe(1);
    expect(byCollection.write?.update.$set).toEqual({
      [collectionPath('interface', 'status')]: 'pending',
      [collectionPath('interface', 'retryCount')]: 0,
      [collectionPath('interface', 'nextRetryAt')]: null,
      [OVERALL_STATUS]: 'failed',
      [METADATA_UPDATED_AT]: NOW,
    });
  });

  it('writes nothing when nothing is to be requeued', () => {
    const tool = mixed();
    expect(planRequeue(tool, ['usecases'], undefined, NOW)).toEqual({ kind: 'done', write: null, result: 0 });
    expect(planRequeue(tool, SYNC_COLLECTION_NAMES, [], NOW)).toEqual({ kind: 'done', write: null, result: 0 });
    expect(planRequeue(tool, SYNC_COLLECTION_NAMES, ['VALIDATION_ERROR'], NOW)).toEqual({ kind: 'done', write: null, result: 0 });
    expect(planRequeue(storedTool(), SYNC_COLLECTION_NAMES, undefined, NOW)).toEqual({ kind: 'done', write: null, result: 0 });
  });

  it('settles first, and quarantines metadata it cannot use before requeueing it', () => {
    const pending = storedTool({ pendingHashCheck: new Types.ObjectId(), overallStatus: 'failed', states: { tools: { status: 'failed' } } });
    expect(planRequeue(pending, SYNC_COLLECTION_NAMES, undefined, NOW)).toEqual({ kind: 'again', write: settleWrite(pending) });
    const partial = legacyTool(specBackfillShape());
    expect(planRequeue(partial, SYNC_COLLECTION_NAMES, undefined, NOW)).toEqual({ kind: 'again', write: settleWrite(partial) });
    const invalid = legacyTool({ ...specBackfillShape(), collections: 'none' });
    const quarantine = planQuarantine(invalid, 'syncMetadata.collections is "none"', NOW);
    expect(planRequeue(invalid, SYNC_COLLECTION_NAMES, undefined, NOW)).toEqual({ kind: 'again', write: quarantine });
    // Decided again on the quarantined tool: every collection back in line.
    const requeue = planRequeue(applySet(invalid, quarantine), SYNC_COLLECTION_NAMES, undefined, NOW);
    expect(requeue).toMatchObject({ kind: 'done', result: SYNC_COLLECTION_NAMES.length });
  });
});

describe('planQuarantine', () => {
  it('replaces unusable metadata with settled metadata in which every collection failed validation, conditioned on what was read', () => {
    const tool = storedTool({ states: { tools: { retryCount: -2 } } });
    const reason = 'syncMetadata.collections.tools.retryCount is -2';
    const write = planQuarantine(tool, reason, NOW);
    expect(write.filter).toEqual({ _id: tool._id, syncMetadata: { $eq: tool.syncMetadata }, ...contentConditions(tool) });
    const quarantined = applySet(tool, write);
    expect(isSettled(parseSyncState(quarantined))).toBe(true);
    expect(planSettle(quarantined, NOW)).toEqual({ kind: 'settled' });
    const meta = metadataOf(quarantined);
    expect(meta.overallStatus).toBe('failed');
    const collections = meta.collections as Record<string, CollectionSyncState>;
    for (const name of SYNC_COLLECTION_NAMES) {
      expect(collections[name]).toMatchObject({ status: 'failed', errorCode: 'VALIDATION_ERROR', lastError: `${QUARANTINE_MESSAGE_PREFIX}${reason}`, retryCount: 0 });
      // What could be read is kept.
      expect(collections[name]?.lastSyncedAt).toEqual(EARLIER);
      expect(collections[name]?.vectorVersion).toBe(2);
    }
  });

  it('quarantines metadata that is not an object at all, with the hashes of the content', () => {
    const tool = legacyTool('synced');
    const quarantined = applySet(tool, planQuarantine(tool, 'syncMetadata is "synced", not an object', NOW));
    const collections = metadataOf(quarantined).collections as Record<string, CollectionSyncState>;
    expect(collections.tools?.contentHash).toBe(HASHES.tools);
    expect(collections.tools?.lastSyncedAt).toBeNull();
    expect(planSettle(quarantined, NOW)).toEqual({ kind: 'settled' });
  });
});

describe('planClaim', () => {
  const LEASE = 60_000;
  const request = (overrides: Partial<Parameters<typeof planClaim>[1]> = {}): Parameters<typeof planClaim>[1] => ({
    workerId: 'w1', leaseMs: LEASE, collections: SYNC_COLLECTION_NAMES, maxRetries: 5, limit: 10, ...overrides,
  });
  const until = new Date(NOW.getTime() + LEASE);
  const past = new Date(NOW.getTime() - 1000);
  const future = new Date(NOW.getTime() + 1000);

  it('claims the waiting collections asked for, up to the limit, conditioned on each claim as read (not on the other collections)', () => {
    const tool = storedTool({ overallStatus: 'pending', states: { tools: { status: 'pending' }, usecases: { status: 'stale' }, interface: { status: 'pending' } } });
    const { write, result } = doneWrite(planClaim(tool, request({ limit: 2 }), NOW));
    expect(result).toEqual([
      { collection: 'tools', contentHash: HASHES.tools, status: 'pending', claimedUntil: until },
      { collection: 'usecases', contentHash: HASHES.usecases, status: 'stale', claimedUntil: until },
    ]);
    const claimRead = (name: SyncCollectionName): Record<string, unknown> => ({
      ...claimAsRead(name, null, null),
      [collectionPath(name, 'nextRetryAt')]: { $eq: null },
      [collectionPath(name, 'retryCount')]: { $eq: 0 },
    });
    // Only the claimed collections' status and hash: a mark of another collection meanwhile changes nothing the claim relies on.
    const { [collectionPath('functionality', 'status')]: _functionality, [collectionPath('functionality', 'contentHash')]: _functionalityHash,
      [collectionPath('interface', 'status')]: _interface, [collectionPath('interface', 'contentHash')]: _interfaceHash, ...claimedOnly } = conditionAsRead(tool);
    expect(write).toEqual({
      filter: { ...claimedOnly, ...claimRead('tools'), ...claimRead('usecases') },
      update: {
        $set: {
          [collectionPath('tools', 'claimedBy')]: 'w1',
          [collectionPath('tools', 'claimedUntil')]: until,
          [collectionPath('usecases', 'claimedBy')]: 'w1',
          [collectionPath('usecases', 'claimedUntil')]: until,
          [METADATA_UPDATED_AT]: NOW,
        },
      },
    });
  });

  it('claims a failed collection only when due, under the retry limit and not a validation error; its retry time moves to the lease end', () => {
    const tool = storedTool({
      overallStatus: 'failed',
      states: {
        tools: { status: 'failed', errorCode: 'UNKNOWN', retryCount: 1, nextRetryAt: past },
        functionality: { status: 'failed', errorCode: 'UNKNOWN', retryCount: 1, nextRetryAt: future },
        usecases: { status: 'failed', errorCode: 'UNKNOWN', retryCount: 5, nextRetryAt: past },
        interface: { status: 'failed', errorCode: 'VALIDATION_ERROR', retryCount: 1, nextRetryAt: null },
      },
    });
    const { write, result } = doneWrite(planClaim(tool, request(), NOW));
    expect(result.map(({ collection }) => collection)).toEqual(['tools']);
    expect(write?.update.$set).toMatchObject({ [collectionPath('tools', 'nextRetryAt')]: until });
    expect(write?.filter).toMatchObject({ [collectionPath('tools', 'nextRetryAt')]: { $eq: past }, [collectionPath('tools', 'retryCount')]: { $eq: 1 } });
  });

  it("leaves every live lease alone (its own too: that work is in flight), takes an ended one, and claims nothing when there is nothing", () => {
    const tool = storedTool({
      overallStatus: 'pending',
      states: {
        tools: { status: 'pending', claimedBy: 'other', claimedUntil: future },
        functionality: { status: 'pending', claimedBy: 'other', claimedUntil: past },
        usecases: { status: 'pending', claimedBy: 'w1', claimedUntil: future },
      },
    });
    const { write, result } = doneWrite(planClaim(tool, request(), NOW));
    expect(result.map(({ collection }) => collection)).toEqual(['functionality']);
    expect(write?.filter).toMatchObject(claimAsRead('functionality', 'other', past));
    expect(planClaim(storedTool(), request(), NOW)).toEqual({ kind: 'done', write: null, result: [] });
  });

  it('settles first, and quarantines metadata it cannot use (no work from it)', () => {
    const pending = storedTool({ pendingHashCheck: new Types.ObjectId() });
    expect(planClaim(pending, request(), NOW)).toEqual({ kind: 'again', write: settleWrite(pending) });
    const unusable = storedTool({ states: { tools: { retryCount: -2 } } });
    expect(planClaim(unusable, request(), NOW)).toEqual({
      kind: 'done', write: planQuarantine(unusable, 'syncMetadata.collections.tools.retryCount is -2', NOW), result: [],
    });
  });
});

describe('planExtendClaims and planReleaseClaims', () => {
  const future = new Date(NOW.getTime() + 1000);
  const held = (): StoredTool => storedTool({
    overallStatus: 'failed',
    states: {
      tools: { status: 'pending', claimedBy: 'w1', claimedUntil: future },
      functionality: { status: 'failed', errorCode: 'UNKNOWN', retryCount: 1, nextRetryAt: future, claimedBy: 'w1', claimedUntil: future },
      usecases: { status: 'pending', claimedBy: 'other', claimedUntil: future },
    },
  });

  it('renews only what the worker holds (a failed one with its retry time)', () => {
    const { write, result } = doneWrite(planExtendClaims(held(), { workerId: 'w1', leaseMs: 5000, collections: SYNC_COLLECTION_NAMES }, NOW));
    const until = new Date(NOW.getTime() + 5000);
    expect(result).toEqual(['tools', 'functionality']);
    expect(write?.update).toEqual({
      $set: {
        [collectionPath('tools', 'claimedUntil')]: until,
        [collectionPath('functionality', 'claimedUntil')]: until,
        [collectionPath('functionality', 'nextRetryAt')]: until,
      },
    });
    expect(write?.filter).toMatchObject({ ...claimAsRead('tools', 'w1', future), [collectionPath('tools', 'status')]: { $eq: 'pending' } });
    expect(planExtendClaims(held(), { workerId: 'nobody', leaseMs: 5000, collections: SYNC_COLLECTION_NAMES }, NOW)).toEqual({ kind: 'done', write: null, result: [] });
  });

  it('releases only what the worker holds; a failed one is due now', () => {
    const { write, result } = doneWrite(planReleaseClaims(held(), { workerId: 'w1', collections: SYNC_COLLECTION_NAMES }, NOW));
    expect(result).toBe(2);
    expect(write?.update).toEqual({
      $set: {
        ...claimCleared('tools'),
        ...claimCleared('functionality'),
        [collectionPath('functionality', 'nextRetryAt')]: NOW,
      },
    });
    expect(planReleaseClaims(held(), { workerId: 'w1', collections: ['usecases'] }, NOW)).toEqual({ kind: 'done', write: null, result: 0 });
  });
});

describe('marks by a claimant', () => {
  const future = new Date(NOW.getTime() + 1000);
  const past = new Date(NOW.getTime() - 1000);

  it("are refused unless the worker holds the pair (another's lease, live or ended, or a claim already released), and go ahead when no worker is named", () => {
    const live = storedTool({ overallStatus: 'pending', states: { tools: { status: 'pending', claimedBy: 'other', claimedUntil: future } } });
    const failure = { errorCode: 'UNKNOWN', lastError: 'x' } as const;
    // A refused sync mark re-opens the pair (its write came first): the holder's claim goes.
    const refused = doneWrite(planMarkSynced(live, 'tools', HASHES.tools, NOW, 'w1'));
    expect(refused.result).toEqual({ synced: false, reason: 'claim-lost', claimedBy: 'other', reopened: true });
    // Its claim, not its lease: nobody claims the pair before the holder's own write has landed.
    expect(refused.write?.update.$set).toMatchObject({ [collectionPath('tools', 'claimedBy')]: null });
    expect(refused.write?.update.$set).not.toHaveProperty([collectionPath('tools', 'claimedUntil')]);
    expect(refused.write?.filter).toMatchObject(claimAsRead('tools', 'other', future));
    // A failure before any store write re-opens nothing.
    expect(planMarkFailed(live, 'tools', failure, NOW, 'w1')).toEqual({
      kind: 'done', write: null, result: { recorded: false, reason: 'claim-lost', claimedBy: 'other', errorCode: 'UNKNOWN', retryCount: 0, reopened: false },
    });
    expect(doneWrite(planMarkSynced(live, 'tools', HASHES.tools, NOW)).result).toEqual({ synced: true, vectorVersion: 3 });
    const ended = storedTool({ overallStatus: 'pending', states: { tools: { status: 'pending', claimedBy: 'other', claimedUntil: past } } });
    expect(doneWrite(planMarkSynced(ended, 'tools', HASHES.tools, NOW, 'w1')).result).toEqual({ synced: false, reason: 'claim-lost', claimedBy: 'other', reopened: true });
    // Synced and released by the worker that took it over: a late report of the first one records nothing.
    const released = storedTool({ states: { tools: { status: 'synced', claimedBy: null, claimedUntil: null } } });
    expect(planMarkFailed(released, 'tools', failure, NOW, 'w1')).toEqual({
      kind: 'done', write: null, result: { recorded: false, reason: 'claim-lost', claimedBy: null, errorCode: 'UNKNOWN', retryCount: 0, reopened: false },
    });
    const own = storedTool({ overallStatus: 'pending', states: { tools: { status: 'pending', claimedBy: 'w1', claimedUntil: past } } });
    const { write, result } = doneWrite(planMarkSynced(own, 'tools', HASHES.tools, NOW, 'w1'));
    expect(result).toEqual({ synced: true, vectorVersion: 3 });
    expect(write?.filter).toMatchObject(claimAsRead('tools', 'w1', past));
    expect(write?.update.$set).toMatchObject(claimCleared('tools'));
  });
});

describe('planFlagEmbeddingModel', () => {
  it('flags a synced collection another model (or an unrecorded one) made, conditioned on the model as read', () => {
    const tool = storedTool({ states: { usecases: { embeddingModel: 'old-model' } } });
    const plan = planFlagEmbeddingModel(tool, 'usecases', 'new-model', NOW);
    expect(plan).toEqual({
      kind: 'flag',
      write: {
        filter: { ...conditionAsRead(tool), [collectionPath('usecases', 'embeddingModel')]: { $eq: 'old-model' } },
        update: { $set: { [collectionPath('usecases', 'status')]: 'stale', [OVERALL_STATUS]: 'stale', [METADATA_UPDATED_AT]: NOW } },
      },
    });
    const unrecorded = storedTool();
    expect(planFlagEmbeddingModel(unrecorded, 'tools', 'new-model', NOW).kind).toBe('flag');
  });

  it('leaves the current model, a collection not synced, and reports metadata it cannot use', () => {
    expect(planFlagEmbeddingModel(storedTool({ states: { tools: { embeddingModel: 'm' } } }), 'tools', 'm', NOW)).toEqual({ kind: 'none' });
    expect(planFlagEmbeddingModel(storedTool({ overallStatus: 'stale', states: { tools: { status: 'stale' } } }), 'tools', 'm', NOW)).toEqual({ kind: 'none' });
    expect(planFlagEmbeddingModel(storedTool({ states: { tools: { embeddingModel: 5 as unknown as string } } }), 'tools', 'm', NOW))
      .toEqual({ kind: 'invalid', reason: 'syncMetadata.collections.tools.embeddingModel is 5' });
  });
});

import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { parseSyncState, SYNC_COLLECTION_NAMES, ToolModel, type StoredTool } from '../../src/index.js';
import { UNUSABLE_METADATA } from '../../src/models/unusable-filter.js';
import { useTestDatabase } from '../helpers/database.js';
import { specBackfillShape } from '../helpers/legacy.js';
import { toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

const AT = new Date('2026-01-01T00:00:00Z');

/** Complete, valid metadata with `value` at `key` of the tools collection's state. */
function withToolsValue(key: string, value: unknown): Record<string, unknown> {
  const collections = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, {
    status: 'pending', lastSyncedAt: null, lastSyncAttemptAt: null, lastError: null, errorCode: null, retryCount: 0,
    nextRetryAt: null, contentHash: 'abcdef0123456789', vectorVersion: 0, claimedBy: null, claimedUntil: null,
  }]));
  (collections.tools as Record<string, unknown>)[key] = value;
  return { overallStatus: 'pending', collections, lastModifiedFields: [], createdAt: AT, updatedAt: AT, pendingHashCheck: null };
}

/** Stored metadata, usable or not: every kind of value the parser checks, each good and bad. */
const CASES: [string, unknown][] = [
  ['valid', withToolsValue('status', 'stale')],
  ['no metadata', undefined],
  ['null metadata', null],
  ['the spec backfill shape', specBackfillShape(AT)],
  ['metadata a string', 'synced'],
  ['metadata an array', [1, 2]],
  ['overall status unknown', { ...withToolsValue('status', 'pending'), overallStatus: 'done' }],
  ['collections a number', { ...withToolsValue('status', 'pending'), collections: 3 }],
  ['collections null', { ...withToolsValue('status', 'pending'), collections: null }],
  ['status unknown', withToolsValue('status', 'bogus')],
  ['status a number', withToolsValue('status', 1)],
  ['retryCount negative', withToolsValue('retryCount', -2)],
  ['retryCount fractional', withToolsValue('retryCount', 1.5)],
  ['retryCount a string', withToolsValue('retryCount', '3')],
  ['retryCount a whole double', withToolsValue('retryCount', 2.0)],
  ['vectorVersion negative', withToolsValue('vectorVersion', -1)],
  ['lastSyncedAt a string', withToolsValue('lastSyncedAt', '2026-01-01')],
  ['lastSyncedAt a date', withToolsValue('lastSyncedAt', AT)],
  ['nextRetryAt a number', withToolsValue('nextRetryAt', 5)],
  ['claimedUntil a string', withToolsValue('claimedUntil', 'soon')],
  ['claimedBy a number', withToolsValue('claimedBy', 7)],
  ['claimedBy a string', withToolsValue('claimedBy', 'worker-1')],
  ['lastError a number', withToolsValue('lastError', 42)],
  ['errorCode unknown', withToolsValue('errorCode', 'OOPS')],
  ['errorCode known', withToolsValue('errorCode', 'UNKNOWN')],
  ['contentHash too short', withToolsValue('contentHash', 'abc')],
  ['contentHash uppercase', withToolsValue('contentHash', 'ABCDEF0123456789')],
  ['contentHash empty', withToolsValue('contentHash', '')],
  ['contentHash a number', withToolsValue('contentHash', 12)],
  ['a collection a string', { ...withToolsValue('status', 'pending'), collections: { tools: 'x' } }],
];

describe('the server-side filter of unusable metadata (getSyncStats().unusable)', () => {
  it('matches exactly the stored documents the parser calls invalid', async () => {
    const ids = new Map<string, mongoose.Types.ObjectId>();
    for (const [name, metadata] of CASES) {
      const _id = new mongoose.Types.ObjectId();
      ids.set(name, _id);
      await ToolModel.collection.insertOne({ _id, ...toolInput(), ...(metadata === undefined ? {} : { syncMetadata: metadata }) });
    }
    const matched = new Set((await ToolModel.collection.find(UNUSABLE_METADATA, { projection: { _id: 1 } }).toArray()).map(({ _id }) => String(_id)));
    for (const [name] of CASES) {
      const stored = await ToolModel.collection.findOne<StoredTool>({ _id: ids.get(name) });
      if (stored === null) throw new Error(`${name} not stored`);
      const invalid = parseSyncState(stored).invalid !== undefined;
      expect({ name, matched: matched.has(String(stored._id)) }).toEqual({ name, matched: invalid });
    }
    const expected = CASES.filter(([, metadata]) => metadata !== undefined).length;
    expect(matched.size).toBeGreaterThan(10);
    expect(matched.size).toBeLessThan(expected);
    expect((await ToolModel.getSyncStats({ full: true })).unusable).toBe(matched.size);
  });
});

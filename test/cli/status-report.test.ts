import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/cli/status-report.js';
import { type SyncStats } from '../../src/models/tool-queries.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SYNC_STATUSES } from '../../src/sync/vocabulary.js';

const zeroes = <K extends string>(keys: readonly K[]): Record<K, number> => Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;

function stats(overrides: Partial<SyncStats> = {}): SyncStats {
  return {
    total: 0,
    byOverallStatus: zeroes(SYNC_STATUSES),
    byCollection: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, zeroes(SYNC_STATUSES)])) as SyncStats['byCollection'],
    failuresByErrorCode: zeroes(SYNC_ERROR_CODES),
    oldestPendingAgeMs: null,
    oldestWaitingAgeMs: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, null])) as SyncStats['oldestWaitingAgeMs'],
    legacyWithoutMetadata: 0,
    unsettled: 0,
    inFlight: zeroes(SYNC_COLLECTION_NAMES),
    unusable: 0,
    quarantined: 0,
    vectorsByEmbeddingModel: { tools: [], functionality: [], usecases: [], interface: [] },
    deletions: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, { pending: 0, failed: 0 }])) as SyncStats['deletions'],
    ...overrides,
  };
}

describe('formatStatus', () => {
  it('shows the claims in flight per collection, and the quarantined and unusable tools', () => {
    const text = formatStatus(stats({ inFlight: { tools: 7, functionality: 0, usecases: 3, interface: 0 }, quarantined: 2, unusable: 5 }));
    expect(text).toMatch(/collection.*in flight/);
    expect(text).toMatch(/tools(\s*│\s*0){4}\s*│\s*7/);
    expect(text).toMatch(/usecases(\s*│\s*0){4}\s*│\s*3/);
    expect(text).toMatch(/^quarantined tools .*: 2$/m);
    expect(text).toMatch(/^unusable tools not quarantined yet .*: 5$/m);
    expect(text).toMatch(/^no vectors yet$/m);
    expect(text).toMatch(/^no deleted tools' points waiting for removal$/m);
  });

  it('shows the lag of each collection: the wait of its oldest pending or stale pair, "-" where none waits', () => {
    const text = formatStatus(stats({ oldestWaitingAgeMs: { tools: 95_000, functionality: null, usecases: 3 * 3600_000, interface: null } }));
    expect(text).toMatch(/collection.*in flight\s*│\s*lag/);
    expect(text).toMatch(/tools(\s*│\s*\d+){5}\s*│\s*95s\s*│/);
    expect(text).toMatch(/functionality(\s*│\s*\d+){5}\s*│\s*-\s*│/);
    expect(text).toMatch(/usecases(\s*│\s*\d+){5}\s*│\s*3\.0h\s*│/);
  });

  it("shows deleted tools' points waiting for removal, and failed removals", () => {
    const text = formatStatus(stats({ deletions: { tools: { pending: 3, failed: 1 }, functionality: { pending: 0, failed: 0 }, usecases: { pending: 3, failed: 0 }, interface: { pending: 0, failed: 0 } } }));
    expect(text).toMatch(/collection\s*│\s*deletions pending\s*│\s*deletions failed/);
    expect(text).toMatch(/tools\s*│\s*3\s*│\s*1/);
    expect(text).toMatch(/usecases\s*│\s*3\s*│\s*0/);
  });

  it('shows the vectors of each collection by the embedding model that made them', () => {
    const text = formatStatus(stats({
      vectorsByEmbeddingModel: { tools: [{ model: 'text-embedding-3-large', vectors: 40 }, { model: null, vectors: 2 }], functionality: [], usecases: [], interface: [] },
    }));
    expect(text).toMatch(/tools\s*│\s*text-embedding-3-large\s*│\s*40/);
    expect(text).toMatch(/tools\s*│\s*\(not recorded\)\s*│\s*2/);
  });
});

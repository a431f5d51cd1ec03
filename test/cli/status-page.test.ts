import { describe, expect, it } from 'vitest';
import { SyncHistory } from '../../src/cli/serve/history.js';
import { renderPage } from '../../src/cli/serve/page.js';
import { type SyncStats } from '../../src/models/tool-queries.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SYNC_STATUSES } from '../../src/sync/vocabulary.js';

const zeroes = <K extends string>(keys: readonly K[]): Record<K, number> => Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
const perCollection = <T>(value: () => T): Record<(typeof SYNC_COLLECTION_NAMES)[number], T> =>
  Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, value()])) as Record<(typeof SYNC_COLLECTION_NAMES)[number], T>;

function stats(overrides: Partial<SyncStats> = {}): SyncStats {
  return {
    total: 0,
    byOverallStatus: zeroes(SYNC_STATUSES),
    byCollection: perCollection(() => zeroes(SYNC_STATUSES)),
    failuresByErrorCode: zeroes(SYNC_ERROR_CODES),
    oldestPendingAgeMs: null,
    oldestWaitingAgeMs: perCollection(() => null),
    legacyWithoutMetadata: 0,
    unsettled: 0,
    inFlight: zeroes(SYNC_COLLECTION_NAMES),
    unusable: 0,
    quarantined: 0,
    vectorsByEmbeddingModel: perCollection(() => []),
    deletions: perCollection(() => ({ pending: 0, failed: 0 })),
    ...overrides,
  };
}

const page = (sample: SyncStats, history = new SyncHistory()): string =>
  renderPage({ stats: sample, sampledAt: Date.UTC(2026, 0, 2, 3, 4, 5), history: history.list(), target: 'server <x>, database d, collection tools', refreshMs: 5000 });

describe('the status page', () => {
  it('escapes what comes from the database (an embedding model name) and from the command line', () => {
    const html = page(stats({ vectorsByEmbeddingModel: { ...perCollection(() => []), tools: [{ model: '<img src=x onerror=alert(1)>"', vectors: 3 }] } }));
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;&quot;');
    expect(html).toContain('data-model="&lt;img src=x onerror=alert(1)&gt;&quot;"');
    expect(html).toContain('server &lt;x&gt;, database d');
  });

  it('says, above the last numbers, since when and why the database cannot be read (escaped); nothing while it can', () => {
    const failing = renderPage({
      stats: stats({ total: 7 }), sampledAt: Date.UTC(2026, 0, 2, 3, 4, 5), history: [], target: 't', refreshMs: 5000,
      problem: { message: 'connect ECONNREFUSED <127.0.0.1:1>', since: Date.UTC(2026, 0, 2, 3, 5, 0) },
    });
    expect(failing).toContain('<p class="problem" role="alert" data-field="problem">the database cannot be read since 2026-01-02 03:05:00 UTC: '
      + 'connect ECONNREFUSED &lt;127.0.0.1:1&gt;; the numbers below are the last it gave</p>');
    expect(failing).toContain('data-field="total"');
    expect(page(stats())).not.toContain('data-field="problem"');
  });

  it('says a migration is under way where a collection has vectors of more than one model, with the mix as a bar', () => {
    const html = page(stats({ vectorsByEmbeddingModel: { ...perCollection(() => []), usecases: [{ model: 'new', vectors: 30 }, { model: null, vectors: 10 }] } }));
    expect(html).toMatch(/2 models: a migration is under way<\/p><svg class="bar"[^>]*aria-label="usecases vectors by model: new 30, \(not recorded\) 10"/);
    expect(html.match(/migration is under way/g)).toHaveLength(1);
  });

  it('draws each collection bar in proportion, and the lag, deletions and failures with their numbers', () => {
    const byCollection = perCollection(() => zeroes(SYNC_STATUSES));
    byCollection.tools = { synced: 6, stale: 2, pending: 1, failed: 1 };
    const html = page(stats({
      byCollection,
      oldestWaitingAgeMs: { ...perCollection(() => null), tools: 125_000 },
      deletions: { ...perCollection(() => ({ pending: 0, failed: 0 })), tools: { pending: 4, failed: 1 } },
      failuresByErrorCode: { ...zeroes(SYNC_ERROR_CODES), QDRANT_TIMEOUT: 1 },
    }));
    expect(html).toContain('<rect class="synced" x="0.000" y="0" width="60.000" height="10">');
    expect(html).toContain('<rect class="stale" x="60.000" y="0" width="20.000" height="10">');
    expect(html).toContain('<rect class="failed" x="90.000" y="0" width="10.000" height="10">');
    expect(html).toContain('data-collection="tools" data-field="lag" data-value="125000">2min<');
    expect(html).toContain('data-collection="functionality" data-field="lag" data-value="">none waiting<');
    expect(html).toContain('data-collection="tools" data-field="deletions-pending" data-value="4">4<');
    expect(html).toContain('data-error-code="QDRANT_TIMEOUT" data-value="1">1<');
    expect(html).toContain('numbers as of <time datetime="2026-01-02T03:04:05.000Z" data-field="sampled-at">2026-01-02 03:04:05 UTC</time>');
  });

  it('draws a sparkline once there are two samples', () => {
    const history = new SyncHistory();
    const byCollection = perCollection(() => zeroes(SYNC_STATUSES));
    history.add(stats({ byCollection }), 1_000);
    expect(page(stats(), history)).toContain('synced over time: collecting samples…');
    history.add(stats({ byCollection: { ...byCollection, tools: { ...zeroes(SYNC_STATUSES), synced: 40 } } }), 61_000);
    const html = page(stats(), history);
    expect(html).toContain('<polyline points="0.0,28.0 200.0,2.0">');
    expect(html).toContain('synced: +40 in the last 60s (0–40)');
  });
});

describe('SyncHistory', () => {
  it('keeps the samples of the window, and thins the oldest half beyond its cap, the newest kept as they came', () => {
    const history = new SyncHistory(10_000, 8);
    for (let at = 1_000; at <= 30_000; at += 1_000) history.add(stats(), at);
    const times = history.list().map((sample) => sample.at);
    expect(Math.min(...times)).toBeGreaterThan(20_000);
    expect(times.length).toBeLessThanOrEqual(8);
    expect(times.at(-1)).toBe(30_000);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });
});

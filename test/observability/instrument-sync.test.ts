import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MeterProvider, MetricReader, type DataPoint, type Histogram, type MetricData } from '@opentelemetry/sdk-metrics';
import mongoose from 'mongoose';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import {
  createToolModel, instrumentSync, runSyncWorker, SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SyncArgumentError, ToolModel,
  type SyncInstrumentation, type SyncStats, type SyncWorkerEvent, type ToolModelType,
} from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { embeddedTool } from '../helpers/tombstones.js';
import { insertRaw, toolInput } from '../helpers/tools.js';
import { batchEmbedder, batchStoreWorker, recordingStore, useWorkerModels } from '../helpers/worker.js';

/*
 * instrumentSync with OpenTelemetry's real SDK: a MeterProvider whose reader the test collects
 * by hand. The counters equal what a worker run over known tools did, the sampled instruments
 * equal getSyncStats on the same data, a sample is reused for collectEveryMs, and importing the
 * package loads no OpenTelemetry module.
 */

const database = useTestDatabase(import.meta.url);
const models = useWorkerModels(database);

/** A reader collected on demand: what a Prometheus scrape or a periodic export does. */
class TestReader extends MetricReader {
  protected override onShutdown(): Promise<void> { return Promise.resolve(); }
  protected override onForceFlush(): Promise<void> { return Promise.resolve(); }
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup) await step();
  cleanup = [];
  vi.restoreAllMocks();
});

async function instrumented(model: ToolModelType, options: { collectEveryMs?: number; now?: () => Date } = {}): Promise<{ instrumentation: SyncInstrumentation; collect: () => Promise<Map<string, MetricData>> }> {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const instrumentation = await instrumentSync({ model, meter: provider.getMeter('tool-sync-test'), ...options });
  cleanup.push(async () => {
    instrumentation.shutdown();
    await provider.shutdown();
  });
  const collect = async (): Promise<Map<string, MetricData>> => {
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    return new Map(resourceMetrics.scopeMetrics.flatMap(({ metrics }) => metrics).map((metric) => [metric.descriptor.name, metric]));
  };
  return { instrumentation, collect };
}

/** A metric's points as `attributes → value`, attributes written `key=value` sorted by key (`` for none). */
function points(metrics: Map<string, MetricData>, name: string): Record<string, number> {
  const metric = metrics.get(name);
  if (metric === undefined) return {};
  return Object.fromEntries((metric.dataPoints as DataPoint<number | Histogram>[]).map(({ attributes, value }) => [
    Object.entries(attributes).sort(([a], [b]) => a.localeCompare(b)).map(([key, one]) => `${key}=${String(one)}`).join(','),
    typeof value === 'number' ? value : value.count,
  ]));
}

/** Tallies `key(event)` over the events of one type: what each counter must hold. */
function tally<T extends SyncWorkerEvent['type']>(events: SyncWorkerEvent[], type: T, key: (event: Extract<SyncWorkerEvent, { type: T }>) => string, weight: (event: Extract<SyncWorkerEvent, { type: T }>) => number = () => 1): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const event of events) {
    if (event.type !== type) continue;
    const one = event as Extract<SyncWorkerEvent, { type: T }>;
    counts[key(one)] = (counts[key(one)] ?? 0) + weight(one);
  }
  return counts;
}

const sum = (values: Record<string, number>): number => Object.values(values).reduce((total, value) => total + value, 0);
const perCollection = (values: Partial<Record<string, number>>): Record<string, number> => Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [`collection=${name}`, values[`collection=${name}`] ?? 0]));
const refusal = (): Error => Object.assign(new Error('400 Bad Request: invalid input'), { status: 400 });

/**
 * Known tools: 6 to sync, two of them with an input the embedding API refuses (tools, usecases),
 * a store that is down once for `interface`, and 2 embedded tools deleted (their points to remove).
 */
async function seedKnownTools(): Promise<void> {
  await ToolModel.insertMany(Array.from({ length: 6 }, (_, index) => new ToolModel(toolInput(
    index === 1 ? { description: 'BAD input' } : index === 4 ? { useCases: ['BAD input'] } : {},
  ))));
  const gone = [await embeddedTool(), await embeddedTool(['tools', 'functionality'])];
  await ToolModel.deleteMany({ _id: { $in: gone } });
}

describe('counters and histograms from the worker\'s events', () => {
  it('equal the counts of the run: its summary and its events', { timeout: 20_000 }, async () => {
    await seedKnownTools();
    const model = await models.shared();
    const { instrumentation, collect } = await instrumented(model);
    const events: SyncWorkerEvent[] = [];
    const embedder = batchEmbedder({ answer: (items) => items.map(({ text }) => (text.includes('BAD') ? refusal() : [0.5])) });
    const store = recordingStore();
    let storeDown = true;
    const { options } = batchStoreWorker(store, {
      model, batchSize: 4, concurrency: 2, embedBatch: embedder.embedBatch,
      onEvent: (event) => { events.push(event); instrumentation.onEvent(event); },
    });
    const upsertBatch = options.upsertBatch;
    const summary = await runSyncWorker({
      ...options,
      upsertBatch: async (collection, items, context) => {
        if (collection === 'interface' && storeDown) {
          storeDown = false;
          throw Object.assign(new Error('503 Service Unavailable'), { status: 503 });
        }
        return upsertBatch?.(collection, items, context);
      },
    });
    const metrics = await collect();

    // The run did some of everything counted here.
    expect(summary.synced).toBeGreaterThan(0);
    expect(summary.failed).toBeGreaterThanOrEqual(3);
    expect(summary.removed).toBeGreaterThanOrEqual(6);
    expect(tally(events, 'failed', (event) => event.errorCode)).toMatchObject({ VALIDATION_ERROR: 2, QDRANT_UNAVAILABLE: expect.any(Number) as number });

    expect(sum(points(metrics, 'tool_sync.pairs.claimed'))).toBe(summary.claimed);
    const claimed: Record<string, number> = {};
    for (const event of events) if (event.type === 'claimed') for (const { collection } of event.pairs) claimed[`collection=${collection}`] = (claimed[`collection=${collection}`] ?? 0) + 1;
    expect(points(metrics, 'tool_sync.pairs.claimed')).toEqual(perCollection(claimed));

    expect(points(metrics, 'tool_sync.pairs.synced')).toEqual(perCollection(tally(events, 'synced', ({ collection }) => `collection=${collection}`)));
    expect(sum(points(metrics, 'tool_sync.pairs.synced'))).toBe(summary.synced);
    expect(points(metrics, 'tool_sync.pairs.failed')).toEqual(tally(events, 'failed', ({ collection, errorCode, stage }) => `collection=${collection},error_code=${errorCode},stage=${stage}`));
    expect(sum(points(metrics, 'tool_sync.pairs.failed'))).toBe(summary.failed);
    expect(points(metrics, 'tool_sync.pairs.content_changed')).toEqual(perCollection({}));
    expect(summary.contentChanged).toBe(0);
    expect(sum(points(metrics, 'tool_sync.pairs.claim_lost'))).toBe(summary.claimLost);
    expect(points(metrics, 'tool_sync.removals.done')).toEqual(perCollection(tally(events, 'removed', ({ collection }) => `collection=${collection}`)));
    expect(sum(points(metrics, 'tool_sync.removals.done'))).toBe(summary.removed);
    expect(sum(points(metrics, 'tool_sync.removals.failed'))).toBe(summary.removeFailed);
    expect(points(metrics, 'tool_sync.pauses')).toEqual(tally(events, 'paused', ({ stage, errorCode }) => `error_code=${errorCode},stage=${stage}`));
    expect(sum(points(metrics, 'tool_sync.pauses'))).toBe(summary.pauses);
    expect(sum(points(metrics, 'tool_sync.worker.errors'))).toBe(summary.errors);

    // One histogram point per call: by stage, collection and outcome; the pairs each call was given.
    const calls = tally(events, 'call', ({ collection, outcome, stage }) => `collection=${collection},outcome=${outcome},stage=${stage}`);
    expect(points(metrics, 'tool_sync.call.duration')).toEqual(calls);
    expect(calls).toMatchObject({ 'collection=interface,outcome=error,stage=upsert': 1 });
    expect(sum(calls)).toBe(embedder.requests.length + events.filter((event) => event.type === 'call' && event.stage !== 'embed').length);
    const items = metrics.get('tool_sync.call.items');
    const itemSums = Object.fromEntries((items?.dataPoints as DataPoint<Histogram>[] | undefined ?? []).map(({ attributes, value }) => [`${String(attributes.stage)} ${String(attributes.collection)}`, value.sum]));
    expect(itemSums).toEqual(tally(events, 'call', ({ collection, stage }) => `${stage} ${collection}`, ({ items: given }) => given));
    expect(itemSums['remove tools']).toBeGreaterThanOrEqual(2);
    expect(metrics.get('tool_sync.call.duration')?.descriptor.unit).toBe('s');
    expect(metrics.get('tool_sync.pairs.synced')?.descriptor.unit).toBe('{pair}');
  });
});

describe('instruments sampled from the collection', () => {
  /** What each sampled instrument must hold for a getSyncStats answer. */
  function expectedPoints(stats: SyncStats): Record<string, Record<string, number>> {
    const byCollection = (pick: (name: (typeof SYNC_COLLECTION_NAMES)[number]) => number): Record<string, number> => Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [`collection=${name}`, pick(name)]));
    return {
      'tool_sync.tools': Object.fromEntries(Object.entries(stats.byOverallStatus).map(([status, value]) => [`status=${status}`, value])),
      'tool_sync.pairs': Object.fromEntries(SYNC_COLLECTION_NAMES.flatMap((name) => Object.entries(stats.byCollection[name]).map(([status, value]) => [`collection=${name},status=${status}`, value]))),
      'tool_sync.pairs.in_flight': byCollection((name) => stats.inFlight[name]),
      'tool_sync.pairs.failed_by_code': Object.fromEntries(SYNC_ERROR_CODES.map((code) => [`error_code=${code}`, stats.failuresByErrorCode[code]])),
      'tool_sync.tools.quarantined': { '': stats.quarantined },
      'tool_sync.tools.unsettled': { '': stats.unsettled },
      'tool_sync.tools.legacy': { '': stats.legacyWithoutMetadata },
      'tool_sync.tools.unusable': { '': stats.unusable ?? Number.NaN },
      'tool_sync.removals.pending': byCollection((name) => stats.deletions[name].pending),
      'tool_sync.removals.failing': byCollection((name) => stats.deletions[name].failed),
      'tool_sync.vectors': Object.fromEntries(SYNC_COLLECTION_NAMES.flatMap((name) => (stats.vectorsByEmbeddingModel?.[name] ?? []).map(({ model, vectors }) => [`collection=${name},embedding_model=${model ?? '(not recorded)'}`, vectors]))),
      'tool_sync.lag': byCollection((name) => (stats.oldestWaitingAgeMs[name] ?? 0) / 1000),
    };
  }

  /** A catalog with something in every sampled instrument. */
  async function mixedCatalog(): Promise<void> {
    await seedKnownTools();
    const model = await models.shared();
    await runSyncWorker(batchStoreWorker(recordingStore(), { model, collections: ['tools', 'functionality'], embedBatch: batchEmbedder({ answer: (items) => items.map(({ text }) => (text.includes('BAD') ? refusal() : [0.5])) }).embedBatch }).options);
    // Vectors of a model recorded before, and of none recorded (made before models were).
    await ToolModel.collection.updateMany({ 'syncMetadata.collections.tools.status': 'synced' }, { $set: { 'syncMetadata.collections.tools.embeddingModel': null } });
    await ToolModel.claimSyncWork({ workerId: 'busy', limit: 3, collections: ['usecases'] });
    await insertRaw({ id: 'legacy-metrics', name: 'Legacy', description: 'd', category: 'c' });
  }

  it('equal getSyncStats({ full: true }) on the same data, and the sampled values show in every instrument', { timeout: 20_000 }, async () => {
    await mixedCatalog();
    const at = new Date(Date.now() + 5_000);
    const { instrumentation, collect } = await instrumented(ToolModel, { now: () => at });
    const metrics = await collect();
    const stats = await ToolModel.getSyncStats({ now: at, full: true });
    const expected = expectedPoints(stats);
    for (const [name, values] of Object.entries(expected)) expect(points(metrics, name), name).toEqual(values);
    expect(instrumentation.latest()).toEqual(stats);
    // The catalog shows in them: not a comparison of zeros.
    expect(stats.inFlight.usecases).toBe(3);
    expect(SYNC_COLLECTION_NAMES.filter((name) => (expected['tool_sync.lag']?.[`collection=${name}`] ?? 0) > 0).sort()).toEqual(['interface', 'usecases']);
    expect(stats.deletions.usecases.pending + stats.deletions.tools.pending).toBeGreaterThan(0);
    expect(expected['tool_sync.vectors']).toMatchObject({ 'collection=tools,embedding_model=(not recorded)': expect.any(Number) as number, 'collection=functionality,embedding_model=e1': expect.any(Number) as number });
    expect(stats.legacyWithoutMetadata).toBe(1);
    expect(metrics.get('tool_sync.lag')?.descriptor.unit).toBe('s');
  });

  it('reads the collection at most once per collectEveryMs, whatever the reader asks; collect() reads now', async () => {
    await ToolModel.create(toolInput());
    let clock = Date.now();
    const model = await models.shared();
    const reads = vi.spyOn(model, 'getSyncStats');
    const { instrumentation, collect } = await instrumented(model, { collectEveryMs: 60_000, now: () => new Date(clock) });
    await collect();
    await collect();
    expect(reads).toHaveBeenCalledTimes(1);
    await model.create(toolInput());
    clock += 59_999;
    expect(points(await collect(), 'tool_sync.tools')).toMatchObject({ 'status=pending': 1 });
    expect(reads).toHaveBeenCalledTimes(1);
    clock += 1;
    expect(points(await collect(), 'tool_sync.tools')).toMatchObject({ 'status=pending': 2 });
    expect(reads).toHaveBeenCalledTimes(2);
    // A forced sample reads at once, and the reader's next collection reuses it.
    await model.create(toolInput());
    expect((await instrumentation.collect()).total).toBe(3);
    expect(points(await collect(), 'tool_sync.tools')).toMatchObject({ 'status=pending': 3 });
    expect(reads).toHaveBeenCalledTimes(3);
    expect(reads.mock.calls.every(([options]) => options?.full === true)).toBe(true);
  });

  it('a failed read (the database down) never fails the collection: the last sample is reported, the failure counted', async () => {
    await ToolModel.create(toolInput());
    // Commands on a closed connection fail at once (not buffered until it reconnects).
    const connection = await mongoose.createConnection(inject('mongoUri'), { dbName: database.name, bufferCommands: false }).asPromise();
    const model = createToolModel(connection);
    let clock = Date.now();
    const { instrumentation, collect } = await instrumented(model, { collectEveryMs: 1_000, now: () => new Date(clock) });
    const before = await collect();
    expect(points(before, 'tool_sync.collect.errors')).toEqual({ '': 0 });
    await connection.close(true);
    clock += 1_000;
    const after = await collect();
    expect(points(after, 'tool_sync.collect.errors')).toEqual({ '': 1 });
    expect(points(after, 'tool_sync.tools')).toEqual(points(before, 'tool_sync.tools'));
    // Asked again only after collectEveryMs, like a read that succeeded; collect() asks at once.
    expect(points(await collect(), 'tool_sync.collect.errors')).toEqual({ '': 1 });
    await expect(instrumentation.collect()).rejects.toThrow();
    expect(points(await collect(), 'tool_sync.collect.errors')).toEqual({ '': 2 });
    clock += 1_000;
    expect(points(await collect(), 'tool_sync.collect.errors')).toEqual({ '': 3 });
    expect(instrumentation.latest()?.total).toBe(1);
  });
});

describe('bad options', () => {
  it('are refused with a SyncArgumentError naming the field and the value, before anything is registered', async () => {
    const reader = new TestReader();
    const provider = new MeterProvider({ readers: [reader] });
    cleanup.push(() => provider.shutdown());
    const meter = provider.getMeter('refused');
    const refused = async (options: Record<string, unknown>): Promise<unknown> => instrumentSync(options as unknown as Parameters<typeof instrumentSync>[0]).then(() => 'accepted', (error: unknown) => error);
    for (const [value, shown] of [[0, '0'], [-5, '-5'], [Number.NaN, 'NaN'], [1.5, '1.5'], [Number.POSITIVE_INFINITY, 'Infinity'], ['1000', '1000'], [null, 'null']] as const) {
      const error = await refused({ model: ToolModel, meter, collectEveryMs: value });
      expect(error, String(value)).toBeInstanceOf(SyncArgumentError);
      expect(String(error)).toMatch(/collectEveryMs/);
      expect(String(error)).toContain(shown);
    }
    expect(String(await refused({ model: {}, meter }))).toMatch(/^SyncArgumentError: model/);
    expect(String(await refused({ model: ToolModel, meter: { createCounter: 1 } }))).toMatch(/^SyncArgumentError: meter/);
    expect(String(await refused({ model: ToolModel, meter, now: 'today' }))).toMatch(/^SyncArgumentError: now/);
    expect(String(await refused({ model: ToolModel, meter, colectEveryMs: 5 }))).toMatch(/^SyncArgumentError: colectEveryMs/);
    expect(String(await refused(null as unknown as Record<string, unknown>))).toMatch(/^SyncArgumentError: options/);
    const { resourceMetrics } = await reader.collect();
    expect(resourceMetrics.scopeMetrics.flatMap(({ metrics }) => metrics)).toEqual([]);
  });
});

describe('bad events', () => {
  it('an event given by hand that lacks what its count needs is refused naming the field; nothing is counted of it', async () => {
    const { instrumentation, collect } = await instrumented(ToolModel);
    const refused = (event: unknown): string => {
      try {
        instrumentation.onEvent(event as Parameters<SyncInstrumentation['onEvent']>[0]);
        return 'accepted';
      } catch (error) {
        expect(error).toBeInstanceOf(SyncArgumentError);
        return String(error);
      }
    };
    expect(refused({ type: 'claimed', workerId: 'w' })).toMatch(/^SyncArgumentError: event\.pairs/);
    expect(refused({ type: 'claimed', workerId: 'w', pairs: [{ collection: 'tools' }, { collection: 'nope' }] })).toMatch(/^SyncArgumentError: event\.pairs\[1\]\.collection.*nope/);
    expect(refused({ type: 'synced', workerId: 'w' })).toMatch(/^SyncArgumentError: event\.collection/);
    expect(refused({ type: 'call', workerId: 'w', stage: 'embed', collection: 'tools', items: 1, durationMs: Number.NaN })).toMatch(/^SyncArgumentError: event\.durationMs.*NaN/);
    expect(refused(null)).toMatch(/^SyncArgumentError: event/);
    // A later worker's event type: not this version's to count, and no reason to throw at the worker.
    expect(refused({ type: 'something-new', workerId: 'w' })).toBe('accepted');
    const metrics = await collect();
    expect(points(metrics, 'tool_sync.pairs.claimed')).toEqual(Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [`collection=${name}`, 0])));
    expect(points(metrics, 'tool_sync.pairs.synced')).toEqual(Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [`collection=${name}`, 0])));
  });
});

describe('without instrumentSync', () => {
  it('importing the package loads no OpenTelemetry module and registers nothing; instrumentSync without a meter loads the API then', { timeout: 20_000 }, async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'tool-sync-otel-'));
    cleanup.push(() => { rmSync(dir, { recursive: true, force: true }); return Promise.resolve(); });
    const log = join(dir, 'resolved.txt');
    // Every module the ESM loader resolves (hooks run off-thread: each is written down before the import goes on); CommonJS ones are in require.cache.
    const hooks = `import { appendFileSync } from 'node:fs'; let file;
      export function initialize(data) { file = data.file; }
      export async function resolve(specifier, context, next) { const found = await next(specifier, context); appendFileSync(file, found.url + '\\n'); return found; }`;
    const child = `
      import { register, createRequire } from 'node:module';
      import { readFileSync } from 'node:fs';
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}), import.meta.url, { data: { file: ${JSON.stringify(log)} } });
      const require = createRequire(import.meta.url);
      const loaded = () => [...readFileSync(${JSON.stringify(log)}, 'utf8').split('\\n'), ...Object.keys(require.cache)].filter((one) => one.includes('@opentelemetry'));
      const pkg = await import(${JSON.stringify(new URL('dist/index.js', `file://${root}`).href)});
      const before = { loaded: loaded(), registered: Object.getOwnPropertySymbols(globalThis).map(String).filter((one) => one.includes('opentelemetry')), mongoose: readFileSync(${JSON.stringify(log)}, 'utf8').includes('mongoose') };
      const model = pkg.createToolModel(require('mongoose').createConnection());
      const instrumentation = await pkg.instrumentSync({ model });
      instrumentation.shutdown();
      console.log(JSON.stringify({ before, after: loaded().length }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--no-warnings', '--input-type=module', '-e', child], { cwd: root });
    const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { before: { loaded: string[]; registered: string[]; mongoose: boolean }; after: number };
    expect(report.before).toEqual({ loaded: [], registered: [], mongoose: true });
    // The same check sees the API once instrumentSync needs it: the check can fail.
    expect(report.after).toBeGreaterThan(0);
    expect(readFileSync(log, 'utf8')).toContain('dist/observability/instrument-sync.js');
  });
});

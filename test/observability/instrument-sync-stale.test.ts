import { MeterProvider, MetricReader, type DataPoint, type MetricData } from '@opentelemetry/sdk-metrics';
import { afterAll, describe, expect, it } from 'vitest';
import { instrumentSync, SYNC_COLLECTION_NAMES, ToolModel, type SyncInstrumentation } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { toolInput } from '../helpers/tools.js';

/*
 * Series that a later sample lacks: OpenTelemetry's SDK keeps exporting the last value of an
 * asynchronous instrument's attribute set no callback observes any more (cumulative temporality),
 * so instrumentSync must report such a set itself (as 0), or it shows a frozen value for ever.
 */

useTestDatabase(import.meta.url);

class TestReader extends MetricReader {
  protected override onShutdown(): Promise<void> { return Promise.resolve(); }
  protected override onForceFlush(): Promise<void> { return Promise.resolve(); }
}

let stop: () => Promise<void> = () => Promise.resolve();
afterAll(async () => { await stop(); });

/** A metric's points as `attributes → value`, attributes as JSON. */
function points(metrics: Map<string, MetricData>, name: string): Record<string, number> {
  const metric = metrics.get(name);
  return Object.fromEntries((metric?.dataPoints as DataPoint<number>[] | undefined ?? []).map(({ attributes, value }) => [JSON.stringify(attributes), value]));
}

describe('series a later sample lacks', () => {
  it('an embedding model whose vectors a migration replaced reports 0, and the lag 0 once none waits (not their last values)', async () => {
    const reader = new TestReader();
    const provider = new MeterProvider({ readers: [reader] });
    const instrumentation: SyncInstrumentation = await instrumentSync({ model: ToolModel, meter: provider.getMeter('tool-sync-test') });
    stop = async () => { instrumentation.shutdown(); await provider.shutdown(); };
    const collect = async (): Promise<Map<string, MetricData>> => {
      // A sample now, whatever collectEveryMs: the reader's collection then reports it.
      await instrumentation.collect();
      const { resourceMetrics, errors } = await reader.collect();
      expect(errors).toEqual([]);
      return new Map(resourceMetrics.scopeMetrics.flatMap(({ metrics }) => metrics).map((metric) => [metric.descriptor.name, metric]));
    };
    const tool = await ToolModel.create(toolInput());
    const hashes = tool.syncMetadata.collections;
    await ToolModel.markCollectionSynced(tool._id, 'tools', { contentHash: hashes.tools.contentHash, embeddingModel: 'old-model' });

    const before = await collect();
    expect(points(before, 'tool_sync.vectors')).toEqual({ '{"collection":"tools","embedding_model":"old-model"}': 1 });
    const waiting = SYNC_COLLECTION_NAMES.filter((name) => (points(before, 'tool_sync.lag')[JSON.stringify({ collection: name })] ?? 0) > 0);
    expect(waiting).toEqual(SYNC_COLLECTION_NAMES.filter((name) => name !== 'tools'));

    // The migration: the tool's vectors re-made by another model; every pair synced, none waits.
    for (const name of SYNC_COLLECTION_NAMES) await ToolModel.markCollectionSynced(tool._id, name, { contentHash: hashes[name].contentHash, embeddingModel: 'new-model' });
    const after = await collect();
    const stats = instrumentation.latest();
    expect(stats?.vectorsByEmbeddingModel?.tools).toEqual([{ model: 'new-model', vectors: 1 }]);
    expect(points(after, 'tool_sync.vectors')).toEqual({
      '{"collection":"tools","embedding_model":"old-model"}': 0,
      ...Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [JSON.stringify({ collection: name, embedding_model: 'new-model' }), 1])),
    });
    expect(points(after, 'tool_sync.lag')).toEqual(Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [JSON.stringify({ collection: name }), 0])));
  });
});
